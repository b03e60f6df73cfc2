"""spacy_rnn.TextCatRNN.v1 inside spaCy's own textcat / textcat_multilabel,
and spacy_rnn.RNNEncoder.v1 inside a shared tok2vec."""
import json

import numpy
import pytest
import spacy
import torch
from spacy.lang.en import English
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

TRAIN = [
    ("I loved this movie", "POS"),
    ("what a great film", "POS"),
    ("wonderful acting and a fine story", "POS"),
    ("best thing I saw this year", "POS"),
    ("really good fun", "POS"),
    ("I hated this movie", "NEG"),
    ("what an awful film", "NEG"),
    ("boring acting and a dull story", "NEG"),
    ("worst thing I saw this year", "NEG"),
    ("really bad", "NEG"),
]
MULTI = [
    ("cheap and fast", {"PRICE": 1.0, "SPEED": 1.0}),
    ("cheap but slow", {"PRICE": 1.0, "SPEED": 0.0}),
    ("fast delivery", {"PRICE": 0.0, "SPEED": 1.0}),
    ("nice color", {"PRICE": 0.0, "SPEED": 0.0}),
    ("low price", {"PRICE": 1.0, "SPEED": 0.0}),
    ("arrived quickly", {"PRICE": 0.0, "SPEED": 1.0}),
]
EMBED = {
    "@architectures": "spacy.MultiHashEmbed.v2",
    "width": 16,
    "attrs": ["NORM", "PREFIX", "SUFFIX"],
    "rows": [500, 100, 100],
    "include_static_vectors": False,
}


def textcat_config(cell="lstm", exclusive=True, **settings):
    model = {
        "@architectures": "spacy_rnn.TextCatRNN.v1",
        "exclusive_classes": exclusive,
        "cell": cell,
        "width": 16,
        "tok2vec": EMBED,
        **settings,
    }
    return {"model": model}


def train(nlp, examples, steps):
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.01))
    for _ in range(steps):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses, drop=0.0)
    return losses


def exclusive_examples(nlp):
    return [
        Example.from_dict(nlp.make_doc(text), {"cats": {"POS": float(label == "POS"), "NEG": float(label == "NEG")}})
        for text, label in TRAIN
    ]


@pytest.mark.parametrize(
    "cell,settings",
    [
        ("lstm", {}),
        ("gru", {"pooling": ["attention"]}),
        ("rnn", {"activation": "sigmoid", "pooling": ["mean", "last"]}),
        ("rnn", {"activation": "tanh", "bidirectional": False, "pooling": ["last"]}),
        ("lstm", {"depth": 2, "dropout": 0.1, "pooling": ["max"]}),
    ],
)
def test_textcat_overfits_and_round_trips(cell, settings, tmp_path):
    assert_fits_and_round_trips(textcat_config(cell, **settings), 60, tmp_path)


def assert_fits_and_round_trips(config, steps, tmp_path):
    """A textcat with `config` learns TRAIN in `steps` updates, and gives the
    same cats in nlp.pipe batches, after spacy.load and after from_bytes."""
    nlp = English()
    nlp.add_pipe("textcat", config=config)
    losses = train(nlp, exclusive_examples(nlp), steps=steps)
    assert losses["textcat"] < 0.05
    texts = [text for text, _ in TRAIN]
    for text, label in TRAIN:
        cats = nlp(text).cats
        assert max(cats, key=cats.get) == label, (text, cats)
    expected = [nlp(text).cats for text in texts]

    for doc, cats in zip(nlp.pipe(texts, batch_size=3), expected):
        assert doc.cats == pytest.approx(cats, abs=1e-6)

    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert [loaded(text).cats for text in texts] == expected

    restored = English()
    restored.add_pipe("textcat", config=config)
    restored.from_bytes(nlp.to_bytes())
    assert [restored(text).cats for text in texts] == expected


def test_multilabel_overfits_and_round_trips(tmp_path):
    nlp = English()
    nlp.add_pipe("textcat_multilabel", config=textcat_config("lstm", exclusive=False))
    examples = [Example.from_dict(nlp.make_doc(text), {"cats": cats}) for text, cats in MULTI]
    losses = train(nlp, examples, steps=80)
    assert losses["textcat_multilabel"] < 0.05
    for text, cats in MULTI:
        predicted = nlp(text).cats
        assert {label: round(score) for label, score in predicted.items()} == cats, text
    nlp.to_disk(tmp_path / "multi")
    loaded = spacy.load(tmp_path / "multi")
    assert [loaded(text).cats for text, _ in MULTI] == [nlp(text).cats for text, _ in MULTI]


def test_rnn_encoder_in_shared_tok2vec_feeds_textcat_tagger_and_ner(tmp_path):
    nlp = English()
    nlp.add_pipe(
        "tok2vec",
        config={
            "model": {
                "@architectures": "spacy.Tok2Vec.v2",
                "embed": EMBED,
                "encode": {"@architectures": "spacy_rnn.RNNEncoder.v1", "width": 16, "cell": "gru"},
            }
        },
    )
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 16, "upstream": "tok2vec"}
    nlp.add_pipe(
        "textcat",
        config={
            "model": {
                "@architectures": "spacy.TextCatReduce.v1",
                "exclusive_classes": True,
                "use_reduce_first": False,
                "use_reduce_last": False,
                "use_reduce_max": True,
                "use_reduce_mean": True,
                "tok2vec": listener,
            }
        },
    )
    nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": listener}})
    ner_model = {
        "@architectures": "spacy.TransitionBasedParser.v2",
        "state_type": "ner",
        "hidden_width": 16,
        "maxout_pieces": 2,
        "use_upper": True,
        "extra_state_tokens": False,
        "tok2vec": listener,
    }
    nlp.add_pipe("ner", config={"model": ner_model})
    examples = []
    for text, label in TRAIN:
        doc = nlp.make_doc(text)
        tags = ["ADJ" if word in {"great", "good", "bad", "awful", "dull", "boring"} else "X" for word in text.split()]
        entities = [(text.index("film"), text.index("film") + 4, "WORK")] if "film" in text else []
        cats = {"POS": float(label == "POS"), "NEG": float(label == "NEG")}
        examples.append(Example.from_dict(doc, {"tags": tags, "cats": cats, "entities": entities}))
    train(nlp, examples, steps=80)
    for example in examples:
        doc = nlp(example.reference.text)
        assert [t.tag_ for t in doc] == [t.tag_ for t in example.reference]
        assert [(e.text, e.label_) for e in doc.ents] == [(e.text, e.label_) for e in example.reference.ents]
        assert max(doc.cats, key=doc.cats.get) == max(example.reference.cats, key=example.reference.cats.get)
    nlp.to_disk(tmp_path / "shared")
    loaded = spacy.load(tmp_path / "shared")
    doc = loaded("what a great film")
    assert [t.tag_ for t in doc] == ["X", "X", "ADJ", "X"]


@pytest.mark.parametrize(
    "setting,value,message",
    [
        ("cell", "lsmt", "textcat.model -> cell"),
        ("activation", "softsign", "textcat.model -> activation"),
        ("width", 0, "'width' must be a positive integer"),
        ("width", 15, "'width' must be even"),
        ("depth", 0, "'depth' must be a positive integer"),
        ("dropout", 1.5, "'dropout' must be in [0, 1)"),
        ("pooling", ["median"], "unknown pooling 'median'"),
        ("pooling", [], "'pooling' is empty"),
    ],
)
def test_bad_settings_fail_with_a_message_naming_them(setting, value, message):
    nlp = English()
    with pytest.raises(Exception) as error:
        nlp.add_pipe("textcat", config=textcat_config(**{setting: value}))
    assert message in str(error.value)


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_same_seed_same_data_gives_identical_predictions(cell):
    runs = []
    for _ in range(2):
        nlp = English()
        nlp.add_pipe("textcat", config=textcat_config(cell))
        train(nlp, exclusive_examples(nlp), steps=5)
        runs.append([nlp(text).cats for text, _ in TRAIN])
    assert runs[0] == runs[1]


def test_nlp_pipe_with_two_processes_gives_the_same_cats(tmp_path):
    import subprocess
    import sys

    nlp = English()
    nlp.add_pipe("textcat", config=textcat_config("lstm"))
    train(nlp, exclusive_examples(nlp), steps=3)
    nlp.to_disk(tmp_path / "pipeline")
    script = (
        "import json, spacy, sys\n"
        "nlp = spacy.load(sys.argv[1])\n"
        "texts = [t for t in json.loads(sys.argv[2])] * 20\n"
        "one = [d.cats for d in nlp.pipe(texts, batch_size=8)]\n"
        "two = [d.cats for d in nlp.pipe(texts, batch_size=8, n_process=2)]\n"
        "print(json.dumps([one, two]))\n"
    )
    texts = json.dumps([text for text, _ in TRAIN])
    # A forked worker that deadlocks would hang: bound it.
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "pipeline"), texts], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-2000:]
    one, two = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(one) == len(two) == 200
    for a, b in zip(one, two):
        assert a == pytest.approx(b, abs=1e-6)


def test_averaged_weights_reach_the_torch_module_and_are_restored():
    """spaCy evaluates and saves inside `nlp.use_params(optimizer.averages)`:
    the recurrent module must then hold the averages, and its own trained
    weights afterwards."""
    nlp = English()
    nlp.add_pipe("textcat", config=textcat_config())
    examples = exclusive_examples(nlp)
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.01, use_averages=True))
    for _ in range(5):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    shim = next(node.shims[0] for node in nlp.get_pipe("textcat").model.walk() if node.shims)
    name, parameter = next(iter(shim.module.named_parameters()))
    trained = parameter.detach().clone()
    average = optimizer.averages[(shim.id, name)]
    assert not numpy.allclose(average, trained.numpy())
    with nlp.use_params(optimizer.averages):
        assert numpy.allclose(parameter.detach().numpy(), average)
        averaged_cats = nlp(TRAIN[0][0]).cats
    assert torch.equal(parameter.detach(), trained)
    assert nlp(TRAIN[0][0]).cats != averaged_cats
