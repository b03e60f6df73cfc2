"""spaCy's training paths that go around `nlp.update`: rehearsal (spaCy's
guard against forgetting) and a shared tok2vec listened to by rnn_seq2seq."""
import copy

import numpy
import pytest
import spacy
from spacy.training import Example
from thinc.api import SGD, Adam, fix_random_seed

from spacy_rnn import set_target

WORDS = "good bad film plot actor dull great story long short fun awful".split()
TEXTS = [" ".join(WORDS[(i * 5 + j * 3) % len(WORDS)] for j in range(2 + i % 6)) for i in range(16)]
EMBED = {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 8, "attrs": ["NORM"], "rows": [100]}


def torch_weights(nlp, name, gradients=False):
    """Every torch parameter of a component (or its gradient), copied, by (shim, name)."""
    weights = {}
    for node in nlp.get_pipe(name).model.walk():
        for shim in node.shims:
            for key, parameter in shim._model.named_parameters():
                weights[(node.name, key)] = (parameter.grad if gradients else parameter.detach()).numpy().copy()
    return weights


@pytest.fixture(params=[
    {"@architectures": "spacy_rnn.TextCatRNN.v1", "cell": "lstm"},
    {"@architectures": "spacy_rnn.TextCatRNN.v1", "cell": "gru"},
    {"@architectures": "spacy_rnn.TextCatRNN.v1", "cell": "rnn"},
    {"@architectures": "spacy_rnn.TextCatRNNEnsemble.v1", "cell": "lstm",
     "linear_model": {"@architectures": "spacy_rnn.NgramLinear.v1", "exclusive_classes": False, "length": 512}},
], ids=["lstm", "gru", "rnn", "ensemble"])
def multilabel(request):
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat_multilabel", config={"model": {
        **request.param, "exclusive_classes": False, "width": 8, "tok2vec": EMBED}})
    return nlp


def cats_examples(nlp, texts, flip=False):
    return [Example.from_dict(nlp.make_doc(text), {"cats": {"POS": float((i % 2 == 0) != flip),
                                                            "LONG": float(len(text.split()) > 3)}})
            for i, text in enumerate(texts)]


def test_rehearse_moves_the_recurrent_weights_by_their_true_gradient(multilabel):
    nlp = multilabel
    old, new = cats_examples(nlp, TEXTS[:8]), cats_examples(nlp, TEXTS[8:], flip=True)
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: old, sgd=Adam(0.01))
    for _ in range(5):
        nlp.update(old, sgd=optimizer)
    optimizer = nlp.resume_training()
    for _ in range(3):
        nlp.update(new, sgd=optimizer)
    # The true gradients of the rehearsal loss, from a copy left without an optimizer step.
    twin = copy.deepcopy(nlp)
    twin.get_pipe("textcat_multilabel").rehearse(old, sgd=None)
    gradients = torch_weights(twin, "textcat_multilabel", gradients=True)
    before = torch_weights(nlp, "textcat_multilabel")
    learn_rate = 0.05
    nlp.rehearse(old, sgd=SGD(learn_rate, L2=0.0, grad_clip=0.0))
    after = torch_weights(nlp, "textcat_multilabel")
    assert before.keys() == gradients.keys() and gradients
    assert any(numpy.abs(gradient).max() > 0 for gradient in gradients.values())
    for key, weights in before.items():
        numpy.testing.assert_allclose(after[key], weights - learn_rate * gradients[key], rtol=1e-5, atol=1e-7,
                                      err_msg=str(key))
    assert any(not numpy.array_equal(after[key], before[key]) for key in before)


def listener_pipeline():
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": {
        "@architectures": "spacy.Tok2Vec.v2", "embed": EMBED,
        "encode": {"@architectures": "spacy_rnn.RNNEncoder.v1", "width": 8}}})
    nlp.add_pipe("rnn_seq2seq", config={"min_freq": 1, "beam_size": 1, "max_length": 4, "model": {
        "width": 8, "target_width": 8, "dropout": 0.0,
        "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 8}}})
    return nlp


def title_examples(nlp, texts):
    return [Example(nlp.make_doc(text), set_target(nlp.make_doc(text), " ".join(text.split()[:2])))
            for text in texts]


def trained_listener_pipeline():
    nlp = listener_pipeline()
    examples = title_examples(nlp, TEXTS)
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.01))
    for _ in range(2):
        nlp.update(examples, sgd=optimizer)
    return nlp, optimizer, examples


def test_listener_pipeline_skips_an_empty_target_with_a_warning():
    nlp, optimizer, examples = trained_listener_pipeline()
    twin, twin_optimizer, _ = trained_listener_pipeline()
    empty = Example(nlp.make_doc("a review without a title"), set_target(nlp.make_doc("a review without a title"), ""))
    without = nlp.update(examples, sgd=optimizer, losses={})
    with pytest.warns(UserWarning, match="target text is empty"):
        with_empty = twin.update(examples[:5] + [empty] + examples[5:], sgd=twin_optimizer, losses={})
    assert with_empty["rnn_seq2seq"] == pytest.approx(without["rnn_seq2seq"], rel=1e-5)
    probe = [nlp.make_doc(text) for text in TEXTS[:4]]
    for a, b in zip(nlp.get_pipe("tok2vec").predict(probe), twin.get_pipe("tok2vec").predict(probe)):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert [doc._.generated for doc in nlp.pipe(TEXTS)] == [doc._.generated for doc in twin.pipe(TEXTS)]


@pytest.mark.parametrize("model", [
    {"@architectures": "spacy_rnn.TextCatRNN.v1", "cell": "lstm", "pooling": ["max", "last", "mean", "attention"]},
    {"@architectures": "spacy_rnn.TextCatRNN.v1", "cell": "gru"},
    {"@architectures": "spacy_rnn.TextCatRNN.v1", "cell": "rnn"},
    {"@architectures": "spacy_rnn.TextCatRNNEnsemble.v1", "cell": "lstm",
     "linear_model": {"@architectures": "spacy_rnn.NgramLinear.v1", "exclusive_classes": True, "length": 512}},
], ids=["lstm", "gru", "rnn", "ensemble"])
def test_a_batch_of_empty_docs_trains(model):
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe("textcat", config={"model": {**model, "exclusive_classes": True, "width": 8,
                                                        "tok2vec": EMBED}})
    examples = [Example.from_dict(nlp.make_doc(text), {"cats": {"POS": float(i % 2), "NEG": float(1 - i % 2)}})
                for i, text in enumerate(TEXTS[:4])]
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.01))
    docs = [nlp.make_doc("") for _ in range(3)]
    scores, backprop = textcat.model.begin_update(docs)
    assert scores.shape == (3, 2) and numpy.isfinite(scores).all()
    backprop(numpy.ones_like(scores))
    textcat.finish_update(optimizer)
    assert textcat.model.predict([nlp.make_doc("good film")]).shape == (1, 2)


def test_a_shared_rnn_encoder_trains_on_a_batch_of_empty_docs():
    nlp = listener_pipeline()
    examples = title_examples(nlp, TEXTS[:4])
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.01))
    tok2vec = nlp.get_pipe("tok2vec")
    docs = [nlp.make_doc("") for _ in range(3)]
    vectors, backprop = tok2vec.model.begin_update(docs)
    assert [v.shape for v in vectors] == [(0, 8)] * 3
    backprop([numpy.zeros_like(v) for v in vectors])
    empty_titles = [Example(doc, set_target(nlp.make_doc(""), "a title")) for doc in docs]
    losses = nlp.update(empty_titles, sgd=optimizer)
    assert numpy.isfinite(losses["rnn_seq2seq"])
