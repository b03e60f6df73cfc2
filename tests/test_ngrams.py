"""spacy_rnn.NgramLinear.v1: hashed n-gram features with count, l2 and
log_l2 weights, alone and as the linear part of TextCatRNNEnsemble."""
import math

import pytest
from spacy.lang.en import English
from spacy.util import registry

from test_ensemble import ensemble_config
from test_textcat import assert_fits_and_round_trips


def ngram_linear(exclusive=True, **settings):
    return {"@architectures": "spacy_rnn.NgramLinear.v1", "exclusive_classes": exclusive, "length": 4096, **settings}


def build(**settings):
    config = ngram_linear(**settings)
    return registry.resolve({"model": config})["model"]


def features(model, texts):
    nlp = English()
    keys, weights, lengths = model.layers[0].layers[0].predict([nlp.make_doc(text) for text in texts])
    return keys, weights.tolist(), lengths.tolist()


@pytest.mark.parametrize(
    "weighting,expected",
    [
        ("count", [2.0, 1.0]),
        ("l2", [2 / math.sqrt(5), 1 / math.sqrt(5)]),
        ("log_l2", [(1 + math.log(2)) / math.hypot(1 + math.log(2), 1), 1 / math.hypot(1 + math.log(2), 1)]),
    ],
)
def test_weights_of_a_docs_distinct_ngrams(weighting, expected):
    model = build(ngram_size=1, weighting=weighting, nO=2)
    keys, weights, lengths = features(model, ["good good bad", "", "film"])
    assert lengths == [2, 0, 1]
    by_key = dict(zip(keys[:2].tolist(), weights[:2]))
    nlp = English()
    good, bad = (nlp.vocab.strings[word] for word in ("good", "bad"))
    assert [by_key[good], by_key[bad]] == pytest.approx(expected)
    assert weights[2] == pytest.approx(1.0)


def test_bigrams_are_counted_and_short_or_empty_docs_have_only_what_they_have():
    model = build(ngram_size=3, weighting="count", nO=2)
    _, weights, lengths = features(model, ["a b a b", "a", ""])
    assert lengths == [2 + 2 + 2, 1, 0]  # unigrams a, b; bigrams "a b" (twice), "b a"; trigrams "a b a", "b a b"
    assert sorted(weights[:6]) == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize("weighting", ["l2", "log_l2"])
def test_normalized_scores_do_not_grow_with_repetition(weighting):
    model = build(ngram_size=1, weighting=weighting, nO=3)
    nlp = English()
    model.initialize()
    linear = model.layers[0].layers[1]
    linear.set_param("W", linear.ops.xp.random.default_rng(0).normal(size=linear.get_param("W").shape).astype("f"))
    once, thrice = model.predict([nlp.make_doc("good film"), nlp.make_doc("good film " * 3)])
    assert once.tolist() == pytest.approx(thrice.tolist(), abs=1e-6)
    counted = build(ngram_size=1, weighting="count", nO=3)
    counted.initialize()
    counted.layers[0].layers[1].set_param("W", linear.get_param("W"))
    once, thrice = counted.predict([nlp.make_doc("good film"), nlp.make_doc("good film " * 3)])
    assert thrice.tolist() == pytest.approx((3 * once).tolist(), abs=1e-5)  # no bias: W only


@pytest.mark.parametrize("weighting", ["count", "log_l2"])
def test_ensemble_with_ngram_linear_overfits_and_round_trips(weighting, tmp_path):
    config = ensemble_config()
    config["model"]["linear_model"] = ngram_linear(weighting=weighting)
    assert_fits_and_round_trips(config, 40, tmp_path)


def test_ensemble_with_ngram_linear_scores_an_empty_doc():
    nlp = English()
    config = ensemble_config()
    config["model"]["linear_model"] = ngram_linear(ngram_size=3)
    nlp.add_pipe("textcat", config=config)
    nlp.get_pipe("textcat").add_label("POS")
    nlp.get_pipe("textcat").add_label("NEG")
    nlp.initialize()
    docs = list(nlp.pipe(["", "great", "a fine film", ""]))
    assert all(sum(doc.cats.values()) == pytest.approx(1.0) for doc in docs)


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"weighting": "tfidf"}, "weighting.*'tfidf' is not .*'count', 'l2', 'log_l2'"),
        ({"ngram_size": 0}, "ngram_size must be 1 or more"),
        ({"length": 0}, "length .* must be 1 or more"),
        ({"attr": "NOPE"}, "unknown attr 'NOPE'"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        build(**settings)
