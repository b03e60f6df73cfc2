"""spacy_rnn.TextCatRNNEnsemble.v1: an RNN text classifier and a linear
bag-of-n-grams model, their class scores added before one activation."""
import numpy
import pytest
from spacy.lang.en import English
from spacy.training import Example

from test_textcat import EMBED, MULTI, TRAIN, assert_fits_and_round_trips, exclusive_examples, train


def bow(exclusive=True, no_output_layer=True):
    return {
        "@architectures": "spacy.TextCatBOW.v3",
        "exclusive_classes": exclusive,
        "ngram_size": 2,
        "no_output_layer": no_output_layer,
        "length": 4096,
    }


def ensemble_config(exclusive=True, **settings):
    model = {
        "@architectures": "spacy_rnn.TextCatRNNEnsemble.v1",
        "exclusive_classes": exclusive,
        "width": 16,
        "tok2vec": EMBED,
        "linear_model": bow(exclusive),
        **settings,
    }
    return {"model": model}


def test_ensemble_overfits_and_round_trips(tmp_path):
    assert_fits_and_round_trips(ensemble_config(), 40, tmp_path)


def test_ensemble_scores_are_the_softmax_of_both_models_scores():
    nlp = English()
    nlp.add_pipe("textcat", config=ensemble_config())
    train(nlp, exclusive_examples(nlp), steps=5)
    model = nlp.get_pipe("textcat").model
    docs = [nlp.make_doc(text) for text, _ in TRAIN]
    rnn_scores, linear_scores = (layer.predict(docs) for layer in model.layers[0].layers)
    summed = rnn_scores + linear_scores
    softmax = numpy.exp(summed - summed.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    assert model.predict(docs) == pytest.approx(softmax, abs=1e-6)
    assert not numpy.allclose(linear_scores, 0.0) and not numpy.allclose(rnn_scores, 0.0)


def test_multilabel_ensemble_overfits():
    nlp = English()
    nlp.add_pipe("textcat_multilabel", config=ensemble_config(exclusive=False))
    examples = [Example.from_dict(nlp.make_doc(text), {"cats": cats}) for text, cats in MULTI]
    losses = train(nlp, examples, steps=60)
    assert losses["textcat_multilabel"] < 0.05
    for text, cats in MULTI:
        assert {label: round(score) for label, score in nlp(text).cats.items()} == cats, text


@pytest.mark.parametrize(
    "linear_model,message",
    [
        (bow(no_output_layer=False), "no_output_layer = true"),
        (bow(exclusive=False), "disagree on exclusive_classes"),
    ],
)
def test_a_linear_model_that_cannot_be_added_is_refused(linear_model, message):
    nlp = English()
    config = ensemble_config()
    config["model"]["linear_model"] = linear_model
    with pytest.raises(ValueError, match=message):
        nlp.add_pipe("textcat", config=config)
