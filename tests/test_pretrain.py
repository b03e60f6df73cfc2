"""Pretraining the recurrent encoders with the language model spacy_rnn.BiLM.v1
(`spacy pretrain`), and loading the weights back (`[initialize] init_tok2vec`,
or the "encoder" ref of the text classifiers)."""
import gzip
import json
import math
import subprocess
import sys

import numpy
import pytest
import spacy
import srsly
import torch
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.training.pretrain import make_update
from spacy.util import load_config_from_str, registry
from thinc.api import Adam, fix_random_seed
from typer.testing import CliRunner

from spacy_rnn.layers.bilm import BiLM, perplexity
from spacy_rnn.lm_words import app as lm_words_app
from spacy_rnn.nn.lm_heads import BOUNDARY, N_SPECIAL, UNKNOWN, neighbour_targets
from spacy_rnn import set_target

CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the rug",
    "a cat lay on a mat",
    "a dog lay on a rug",
    "the cat saw the dog",
    "the dog saw the cat",
    "a bird sat on the cat",
    "the bird saw a dog",
    "my cat sat on my mat",
    "my dog lay on my rug",
]
HELD_OUT = ["the cat lay on the rug", "a dog saw the cat"]
LABELLED = [("the cat sat on the mat", "CAT"), ("the dog sat on the rug", "DOG"), ("a cat lay", "CAT"),
            ("a dog lay", "DOG"), ("my cat saw", "CAT"), ("my dog saw", "DOG")]
EMBED = {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 12, "attrs": ["NORM", "SUFFIX"], "rows": [500, 100]}
TEXTCAT_RNN = "spacy_rnn.TextCatRNN.v1"
ENSEMBLE = "spacy_rnn.TextCatRNNEnsemble.v1"
LINEAR = {"@architectures": "spacy_rnn.NgramLinear.v1", "exclusive_classes": True, "length": 1024}


@pytest.fixture
def words(tmp_path):
    """The word list of CORPUS, as `python -m spacy_rnn.lm_words` writes it."""
    raw = tmp_path / "corpus.txt"
    raw.write_text("\n".join(CORPUS) + "\n", encoding="utf8")
    path = tmp_path / "words.txt"
    result = CliRunner().invoke(lm_words_app, [str(raw), str(path), "--max-words", "100"])
    assert result.exit_code == 0, result.output
    return path


def textcat_nlp(architecture=TEXTCAT_RNN, **settings):
    nlp = spacy.blank("en")
    model = {"@architectures": architecture, "exclusive_classes": True, "width": 16, "tok2vec": EMBED, **settings}
    if architecture == ENSEMBLE:
        model["linear_model"] = LINEAR
    nlp.add_pipe("textcat", config={"model": model})
    return nlp


def tok2vec_nlp(**settings):
    nlp = spacy.blank("en")
    encode = {"@architectures": "spacy_rnn.RNNEncoder.v1", "width": 16, **settings}
    nlp.add_pipe("tok2vec", config={"model": {"@architectures": "spacy.Tok2Vec.v2", "embed": EMBED, "encode": encode}})
    return nlp


def pretrainable(nlp):
    """The layer that [pretraining] component/layer names, initialized as `spacy pretrain` does."""
    model = nlp.get_pipe(nlp.pipe_names[0]).model
    layer = model.get_ref("encoder") if model.has_ref("encoder") else model
    layer.initialize(X=[nlp.make_doc("Give it a doc to infer shapes")])
    return layer


def objective(nlp, layer, words, **settings):
    model = registry.architectures.get("spacy_rnn.BiLM.v1")(str(words), **settings)(nlp.vocab, layer)
    return model.initialize(X=[nlp.make_doc("Give it a doc to infer shapes")])


def pretrain(nlp, layer, words, steps, bilm=None):
    """`steps` updates of the objective on CORPUS, as `spacy pretrain` makes them: (objective, losses)."""
    bilm = bilm or objective(nlp, layer, words)
    docs = [nlp.make_doc(text) for text in CORPUS]
    optimizer = Adam(0.02)
    return bilm, [make_update(bilm, docs, optimizer, bilm.attrs["loss"]) for _ in range(steps)]


def weights(data):
    """Every array of a saved thinc model: its params and the states of its torch modules."""
    msg = srsly.msgpack_loads(data)
    arrays = [value for params in msg["params"] for value in params.values() if value is not None]
    for shims in msg["shims"]:
        for shim in shims:
            state = srsly.msgpack_loads(shim)["state"]
            arrays.extend(state[key] for key in sorted(state))
    return arrays


def assert_same_weights(data, other):
    ours, theirs = weights(data), weights(other)
    assert len(ours) == len(theirs) > 0
    for array, expected in zip(ours, theirs):
        numpy.testing.assert_array_equal(array, expected)


ENCODERS = [
    ("textcat", TEXTCAT_RNN, {"cell": "lstm"}),
    ("textcat", TEXTCAT_RNN, {"cell": "gru", "bidirectional": False, "depth": 2}),
    ("textcat", TEXTCAT_RNN, {"cell": "rnn", "activation": "sigmoid", "pooling": ["attention"]}),
    ("textcat", ENSEMBLE, {"cell": "lstm"}),
    ("tok2vec", None, {"cell": "lstm"}),
    ("tok2vec", None, {"cell": "rnn", "activation": "tanh", "bidirectional": False}),
]


def make_nlp(component, architecture, settings):
    return textcat_nlp(architecture, **settings) if component == "textcat" else tok2vec_nlp(**settings)


def test_neighbour_targets_stay_within_each_sequence():
    ids = torch.tensor([5, 6, 7, 8, 9])
    following, preceding = neighbour_targets(ids, [3, 0, 2])
    assert following.tolist() == [6, 7, BOUNDARY, 9, BOUNDARY]
    assert preceding.tolist() == [BOUNDARY, 5, 6, BOUNDARY, 8]


@pytest.mark.parametrize("component,architecture,settings", ENCODERS)
def test_loss_falls_and_held_out_perplexity_with_it(component, architecture, settings, words):
    fix_random_seed(0)
    nlp = make_nlp(component, architecture, settings)
    layer = pretrainable(nlp)
    held_out = [nlp.make_doc(text) for text in HELD_OUT]
    bilm = objective(nlp, layer, words)
    n_classes = N_SPECIAL + len(words.read_text().split())
    before = perplexity(bilm, held_out)
    bilm, losses = pretrain(nlp, layer, words, steps=40, bilm=bilm)
    # Random weights predict about uniformly; a few updates learn the toy grammar.
    assert losses[0] == pytest.approx(math.log(n_classes), rel=0.15)
    assert losses[-1] < 0.6 * losses[0]
    after = perplexity(bilm, held_out)
    assert after["mean"] < 0.3 * before["mean"]
    assert set(after) == ({"forward", "backward", "mean"} if settings.get("bidirectional", True) else
                          {"forward", "mean"})
    # The perplexity is exp(the objective's loss) on the same Docs.
    loss, _ = bilm.attrs["loss"](bilm.ops, held_out, bilm.predict(held_out))
    assert math.log(after["mean"]) == pytest.approx(loss, rel=1e-5)


def distributions(bilm, doc):
    """Each direction's predicted log-probabilities over the classes at every token, (n_tokens, n_classes)."""
    states = torch.from_numpy(bilm.get_ref("tok2vec").predict([doc])[0])
    heads = bilm.shims[0].module.heads
    with torch.no_grad():
        return [head.log_prob(half).numpy() for head, half in zip(heads, states.chunk(len(heads), dim=1))]


def assert_no_state_sees_its_target(bilm, nlp):
    text = "the cat sat on the mat".split()
    original = distributions(bilm, nlp.make_doc(" ".join(text)))
    for k in range(len(text)):
        changed = distributions(bilm, nlp.make_doc(" ".join(text[:k] + ["bird"] + text[k + 1:])))
        # forward: rows before k (row k-1 predicts token k) have not read token k
        numpy.testing.assert_allclose(changed[0][:k], original[0][:k], atol=1e-6)
        assert not numpy.allclose(changed[0][k:], original[0][k:], atol=1e-4)
        if len(original) == 2:  # backward: rows after k (row k+1 predicts token k)
            numpy.testing.assert_allclose(changed[1][k + 1:], original[1][k + 1:], atol=1e-6)
            assert not numpy.allclose(changed[1][: k + 1], original[1][: k + 1], atol=1e-4)


@pytest.mark.parametrize("component,architecture,settings", ENCODERS)
def test_no_state_sees_the_token_it_predicts(component, architecture, settings, words):
    fix_random_seed(1)
    nlp = make_nlp(component, architecture, settings)
    bilm, _ = pretrain(nlp, pretrainable(nlp), words, steps=3)
    assert_no_state_sees_its_target(bilm, nlp)


@pytest.mark.parametrize("component,architecture,settings", ENCODERS)
def test_predictions_are_the_log_likelihoods_of_the_neighbours(component, architecture, settings, words):
    """The model's output is, at each token, the log-probability of the next
    token under the forward distribution (the boundary after the last one)
    and of the previous token under the backward one: the distributions that
    the test above finds free of leaks."""
    fix_random_seed(0)
    nlp = make_nlp(component, architecture, settings)
    bilm, _ = pretrain(nlp, pretrainable(nlp), words, steps=3)
    listed = words.read_text().split()
    doc = nlp.make_doc("the cat sat on a zebra")  # "zebra" is not in the word list
    ids = [listed.index(t.norm_) + N_SPECIAL if t.norm_ in listed else UNKNOWN for t in doc]
    assert ids[-1] == UNKNOWN
    predicted = bilm.predict([doc])
    expected = distributions(bilm, doc)
    assert predicted.shape == (len(doc), len(expected))
    targets = [ids[1:] + [BOUNDARY], [BOUNDARY] + ids[:-1]]
    for column, (log_probs, target) in enumerate(zip(expected, targets)):
        numpy.testing.assert_allclose(predicted[:, column], log_probs[range(len(doc)), target], atol=1e-5)


def test_empty_docs_and_batches_predict_nothing(words):
    nlp = textcat_nlp()
    bilm = objective(nlp, pretrainable(nlp), words)
    doc = nlp.make_doc("the cat sat")
    with_empty = bilm.predict([nlp.make_doc(""), doc, nlp.make_doc("")])
    numpy.testing.assert_allclose(with_empty, bilm.predict([doc]), atol=1e-6)
    for batch in ([], [nlp.make_doc("")]):
        predictions, backprop = bilm.begin_update(batch)
        assert predictions.shape == (0, 2)
        loss, gradient = bilm.attrs["loss"](bilm.ops, batch, predictions)
        assert loss == 0.0 and gradient.shape == (0, 2)
        backprop(gradient)
    with pytest.raises(ValueError, match="without tokens"):
        perplexity(bilm, [nlp.make_doc("")])


def test_stacked_bidirectional_layers_would_leak_and_are_refused(words):
    fix_random_seed(0)
    nlp = textcat_nlp(depth=2)
    layer = pretrainable(nlp)
    with pytest.raises(ValueError, match="bidirectional encoder with depth 2.*depth = 1.*bidirectional = false"):
        objective(nlp, layer, words)
    # Why: built anyway, the forward prediction at token k-1 depends on token k.
    bilm = BiLM(layer, words.read_text().split(), bidirectional=True).initialize()
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        assert_no_state_sees_its_target(bilm, nlp)


def test_bad_objectives_fail_with_a_message_saying_how_to_fix_them(words, tmp_path):
    build = registry.architectures.get("spacy_rnn.BiLM.v1")
    nlp = textcat_nlp()
    encoder = pretrainable(nlp)
    with pytest.raises(ValueError, match="states of a spacy-rnn recurrent encoder.*layer = \"encoder\""):
        build(str(words))(nlp.vocab, nlp.get_pipe("textcat").model.get_ref("tok2vec"))
    with pytest.raises(ValueError, match="no word list.*spacy_rnn.lm_words"):
        build(None)(nlp.vocab, encoder)
    with pytest.raises(ValueError, match="does not exist.*spacy_rnn.lm_words"):
        build(str(tmp_path / "missing.txt"))(nlp.vocab, encoder)
    twice = tmp_path / "twice.txt"
    twice.write_text("the\ncat\nthe\n", encoding="utf8")
    with pytest.raises(ValueError, match="lists 'the' twice"):
        build(str(twice))(nlp.vocab, encoder)
    with pytest.raises(ValueError, match="'max_words' must be a positive integer"):
        build(str(words), max_words=0)
    with pytest.raises(ValueError, match="'cutoffs' must be increasing positive integers"):
        build(str(words), cutoffs=[100, 50])


def test_max_words_keeps_the_most_frequent_words(words):
    nlp = textcat_nlp()
    bilm = objective(nlp, pretrainable(nlp), words, max_words=3)
    first = words.read_text().split()[:3]
    doc = nlp.make_doc(" ".join(first + ["dog", "rug"]))
    assert bilm.attrs["word_ids"]([doc]).tolist() == [N_SPECIAL, N_SPECIAL + 1, N_SPECIAL + 2, UNKNOWN, UNKNOWN]


def examples(nlp):
    return [Example.from_dict(nlp.make_doc(text), {"cats": {"CAT": float(label == "CAT"),
                                                            "DOG": float(label == "DOG")}})
            for text, label in LABELLED]


@pytest.mark.parametrize("architecture,settings", [
    (TEXTCAT_RNN, {"cell": "lstm"}),
    (TEXTCAT_RNN, {"cell": "gru", "pooling": ["mean", "last"]}),
    (TEXTCAT_RNN, {"cell": "rnn", "activation": "sigmoid", "pooling": ["attention"]}),
    (ENSEMBLE, {"cell": "lstm"}),
])
def test_pretrained_encoder_loads_into_the_classifier_and_round_trips(architecture, settings, words, tmp_path):
    fix_random_seed(0)
    source = textcat_nlp(architecture, **settings)
    encoder = pretrainable(source)
    pretrain(source, encoder, words, steps=5)
    pretrained = encoder.to_bytes()
    docs = [source.make_doc(text) for text in HELD_OUT]

    # What [initialize] init_tok2vec does: initialize the pipeline, then load into its layer.
    nlp = textcat_nlp(architecture, **settings)
    nlp.initialize(lambda: examples(nlp))
    model = nlp.get_pipe("textcat").model
    random_states = model.get_ref("encoder").predict(docs)
    model.get_ref("encoder").from_bytes(pretrained)
    assert_same_weights(model.get_ref("encoder").to_bytes(), pretrained)
    for states, expected, random in zip(model.get_ref("encoder").predict(docs), encoder.predict(docs), random_states):
        numpy.testing.assert_array_equal(states, expected)
        assert not numpy.allclose(states, random)
    # The classifier's own recurrent network now has the pretrained weights (one shim, shared).
    tok2vec, rnn = model.get_ref("tok2vec"), model.get_ref("rnn")
    source_model = source.get_pipe("textcat").model
    numpy.testing.assert_array_equal(rnn.predict(tok2vec.predict(docs)),
                                     source_model.get_ref("rnn").predict(source_model.get_ref("tok2vec").predict(docs)))

    optimizer = nlp.create_optimizer()
    for _ in range(3):
        nlp.update(examples(nlp), sgd=optimizer)
    texts = [text for text, _ in LABELLED] + HELD_OUT
    expected = [nlp(text).cats for text in texts]
    assert len({round(cats["CAT"], 6) for cats in expected}) > 1

    # Saved as before: the ref outside the layer tree is not part of the saved format.
    msg = srsly.msgpack_loads(model.to_bytes())
    assert len(msg["nodes"]) == len(list(model.walk()))
    assert "encoder" not in msg["nodes"][0]["refs"] and {"tok2vec", "rnn"} <= set(msg["nodes"][0]["refs"])

    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert [loaded(text).cats for text in texts] == expected
    restored = textcat_nlp(architecture, **settings)
    restored.from_bytes(nlp.to_bytes())
    assert [restored(text).cats for text in texts] == expected
    # ... and after loading, the ref still shares the loaded weights.
    for pipeline in (loaded, restored):
        assert_same_weights(pipeline.get_pipe("textcat").model.get_ref("encoder").to_bytes(),
                            model.get_ref("encoder").to_bytes())


def test_the_encoder_follows_replace_listeners(words):
    """A textcat that listens to a shared tok2vec has nothing to pretrain
    until spaCy's replace_listeners gives it its own copy; then its encoder
    ref reads that copy too, and pretrains it."""
    nlp = tok2vec_nlp()
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 16, "upstream": "tok2vec"}
    model_config = {"@architectures": TEXTCAT_RNN, "exclusive_classes": True, "width": 16, "tok2vec": listener}
    nlp.add_pipe("textcat", config={"model": model_config})
    nlp.initialize(lambda: examples(nlp))
    nlp.replace_listeners("tok2vec", "textcat", ["model.tok2vec"])
    model = nlp.get_pipe("textcat").model
    assert model.get_ref("encoder").layers[0] is model.get_ref("tok2vec")
    assert model.get_ref("tok2vec").name != "tok2vec-listener"
    nlp.remove_pipe("tok2vec")
    _, losses = pretrain(nlp, model.get_ref("encoder"), words, steps=5)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("setting,value,message", [
    ("width", 32, "'nO' of the layer .*rnn_states_view' is 16 in the weights, 32 in the config"),
    ("cell", "gru", "cell = 'lstm' in the weights, 'gru' in the config"),
])
def test_weights_of_another_encoder_are_refused_with_a_message_naming_the_difference(setting, value, message):
    source = textcat_nlp()
    encoder = pretrainable(source)
    other = textcat_nlp(**{setting: value})
    other.initialize(lambda: examples(other))
    before = other.get_pipe("textcat").model.to_bytes()
    with pytest.raises(ValueError, match=message):
        other.get_pipe("textcat").model.get_ref("encoder").from_bytes(encoder.to_bytes())
    assert other.get_pipe("textcat").model.to_bytes() == before


PRETRAIN_CONFIG = """
[paths]
raw_text = null
lm_words = null
init_tok2vec = null
train = null
dev = null

[nlp]
lang = "en"
pipeline = ["{component}"]

[components]

[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
@architectures = "spacy.Tok2Vec.v2"

[components.tok2vec.model.embed]
@architectures = "spacy_rnn.HashEmbed.v1"
width = 12
attrs = ["NORM","SUFFIX"]
rows = [500,100]

[components.tok2vec.model.encode]
@architectures = "spacy_rnn.RNNEncoder.v1"
width = 16

[components.textcat]
factory = "textcat"

[components.textcat.model]
@architectures = "spacy_rnn.TextCatRNN.v1"
exclusive_classes = true
width = 16

[components.textcat.model.tok2vec]
@architectures = "spacy_rnn.HashEmbed.v1"
width = 12
attrs = ["NORM","SUFFIX"]
rows = [500,100]

[corpora]

[corpora.pretrain]
@readers = "spacy.JsonlCorpus.v1"
path = ${{paths.raw_text}}

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${{paths.train}}

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${{paths.dev}}

[training]
max_steps = 4
eval_frequency = 2

[pretraining]
max_epochs = 2
dropout = 0.0
n_save_every = null
n_save_epoch = null
component = "{component}"
layer = "{layer}"
corpus = "corpora.pretrain"

[pretraining.batcher]
@batchers = "spacy.batch_by_words.v1"
size = 200
discard_oversize = false
tolerance = 0.2
get_length = null

[pretraining.objective]
@architectures = "spacy_rnn.BiLM.v1"
words = ${{paths.lm_words}}

[pretraining.optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.01

[initialize]
init_tok2vec = ${{paths.init_tok2vec}}
"""


def pretrain_config(component, layer, **paths):
    """The config of a pipeline of `component`, with `paths` set, filled with spaCy's defaults."""
    other = "textcat" if component == "tok2vec" else "tok2vec"
    config = load_config_from_str(PRETRAIN_CONFIG.format(component=component, layer=layer))
    config["components"].pop(other)
    config["paths"].update({key: str(value) for key, value in paths.items()})
    return spacy.util.load_model_from_config(config, auto_fill=True).config


def test_rnn_encoder_in_a_tok2vec_loads_through_init_tok2vec(words, tmp_path):
    fix_random_seed(0)
    nlp = tok2vec_nlp()
    layer = pretrainable(nlp)
    pretrain(nlp, layer, words, steps=5)
    (tmp_path / "model.bin").write_bytes(layer.to_bytes())

    fresh = spacy.util.load_model_from_config(pretrain_config("tok2vec", "", init_tok2vec=tmp_path / "model.bin"))
    fresh.initialize()
    assert_same_weights(fresh.get_pipe("tok2vec").model.to_bytes(), layer.to_bytes())
    doc = fresh("the cat saw a bird")
    numpy.testing.assert_allclose(doc.tensor, layer.predict([nlp.make_doc("the cat saw a bird")])[0], atol=1e-6)


def spacy_cli(*args):
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def test_spacy_pretrain_then_spacy_train_from_the_pretrained_encoder(tmp_path):
    raw = tmp_path / "raw.jsonl"
    srsly.write_jsonl(raw, [{"text": text, "label": "x"} for text in CORPUS * 10])
    words = tmp_path / "words.txt"
    spacy_cli("spacy_rnn.lm_words", str(raw), str(words), "--max-words", "20")
    config = pretrain_config("textcat", "encoder", raw_text=raw, lm_words=words)
    config.to_disk(tmp_path / "pretrain.cfg")

    out = spacy_cli("spacy", "pretrain", str(tmp_path / "pretrain.cfg"), str(tmp_path / "pretrained"))
    assert "Successfully finished pretrain" in out
    saved = sorted(path.name for path in (tmp_path / "pretrained").glob("model*.bin"))
    assert saved == ["model-last.bin", "model0.bin", "model1.bin"]
    log = list(srsly.read_jsonl(tmp_path / "pretrained" / "log.jsonl"))
    assert log[1]["epoch_loss"] < log[0]["epoch_loss"]

    nlp = spacy.blank("en")
    train = [Example.from_dict(nlp.make_doc(text), {"cats": {"CAT": float(label == "CAT"),
                                                             "DOG": float(label == "DOG")}})
             for text, label in LABELLED]
    spacy.tokens.DocBin(docs=[eg.reference for eg in train]).to_disk(tmp_path / "train.spacy")
    pretrained = tmp_path / "pretrained" / "model1.bin"
    config = pretrain_config("textcat", "encoder", init_tok2vec=pretrained, train=tmp_path / "train.spacy",
                             dev=tmp_path / "train.spacy")
    config.to_disk(tmp_path / "train.cfg")
    # What `spacy train` does before its first update: the encoder holds the pretrained weights.
    initialized = init_nlp(spacy.util.load_config(tmp_path / "train.cfg"))
    assert_same_weights(initialized.get_pipe("textcat").model.get_ref("encoder").to_bytes(), pretrained.read_bytes())

    out = spacy_cli("spacy", "train", str(tmp_path / "train.cfg"), "--output", str(tmp_path / "trained"), "--verbose")
    assert f"Loaded pretrained weights from {pretrained}" in out
    assert (tmp_path / "trained" / "model-last").is_dir()


def test_lm_words_writes_the_most_frequent_norms_first(tmp_path):
    jsonl = tmp_path / "a.jsonl.gz"
    with gzip.open(jsonl, "wt", encoding="utf8") as file_:
        file_.write(json.dumps({"text": "The cat.  The DOG", "label": 1}) + "\n\n")
    txt = tmp_path / "b.txt"
    txt.write_text("the cat\nthe end\n", encoding="utf8")
    output = tmp_path / "out" / "words.txt"
    result = CliRunner().invoke(lm_words_app, [str(jsonl), str(txt), str(output), "--max-words", "3"])
    assert result.exit_code == 0, result.output
    # NORMs are lower case; the run of two spaces is a whitespace token, left out.
    assert output.read_text(encoding="utf8") == "the\ncat\n.\n"
    assert "Wrote 3 NORMs" in result.output and "77.8% of the 9 tokens" in result.output


def test_lm_words_refuses_bad_input_with_a_clear_message(tmp_path):
    runner = CliRunner()
    output = str(tmp_path / "words.txt")
    csv = tmp_path / "a.csv"
    csv.write_text("text\nhello\n", encoding="utf8")
    result = runner.invoke(lm_words_app, [str(csv), output])
    assert result.exit_code == 1 and "unknown kind of input" in result.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n{"txt": "no text field"}\n', encoding="utf8")
    result = runner.invoke(lm_words_app, [str(broken), output])
    assert result.exit_code == 1 and "broken.jsonl:2: missing field(s) text" in result.output
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf8")
    result = runner.invoke(lm_words_app, [str(empty), output])
    assert result.exit_code == 1 and "No tokens" in result.output
    result = runner.invoke(lm_words_app, [str(broken), output, "--lang", "klingon"])
    assert result.exit_code == 2 and "unknown language 'klingon'" in result.output
    assert not (tmp_path / "words.txt").exists()


def encoder_and_head_weights(model):
    """Copies of the encoder's weights (tok2vec params, the RNN's torch state) and of the other layers' params."""
    encoder_nodes = {node.id for ref in ("tok2vec", "rnn") for node in model.get_ref(ref).walk()}

    def params(nodes):
        return [node.get_param(name).copy() for node in nodes for name in node.param_names if node.has_param(name)]

    encoder = params(model.get_ref("tok2vec").walk())
    encoder += [value.detach().clone().numpy() for shim in model.get_ref("rnn").shims
                for value in shim._model.state_dict().values()]
    return encoder, params(node for node in model.walk() if node.id not in encoder_nodes)


def moved(before, after):
    return [float(numpy.abs(numpy.asarray(a) - numpy.asarray(b)).sum()) for a, b in zip(before, after)]


def assert_frozen_then_half_rate(nlp, schedule_name, make_examples, split_weights):
    """Under plain SGD steps, with learn_rate_scale 0.5 and frozen_steps 2: the
    encoder (the first list of split_weights(model)) does not move during two
    updates while the rest does; then it moves exactly half as far as the same
    update, from the same weights and gradients, at the full rate."""
    from thinc.api import SGD

    model = nlp.get_pipe(nlp.pipe_names[0]).model
    schedule = registry.callbacks.get(schedule_name)(learn_rate_scale=0.5, frozen_steps=2)
    optimizer = SGD(0.1)
    for step in range(2):
        encoder, rest = split_weights(model)
        schedule(nlp, {"step": step, "epoch": 0})
        nlp.update(make_examples(nlp), sgd=optimizer)
        encoder_after, rest_after = split_weights(model)
        assert max(moved(encoder, encoder_after)) == 0  # frozen
        assert max(moved(rest, rest_after)) > 0
    schedule(nlp, {"step": 2, "epoch": 0})
    start = model.to_bytes()
    encoder, _ = split_weights(model)
    fix_random_seed(1)
    nlp.update(make_examples(nlp), sgd=optimizer, drop=0.0)
    half = moved(encoder, split_weights(model)[0])
    model.from_bytes(start)
    registry.callbacks.get(schedule_name)()(nlp, {"step": 2, "epoch": 0})
    fix_random_seed(1)
    nlp.update(make_examples(nlp), sgd=optimizer, drop=0.0)
    full = moved(encoder, split_weights(model)[0])
    assert sum(half) > 0
    numpy.testing.assert_allclose(half, [0.5 * value for value in full], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("architecture", [TEXTCAT_RNN, ENSEMBLE])
def test_encoder_schedule_freezes_then_scales_the_encoder_only(architecture, version):
    fix_random_seed(0)
    nlp = textcat_nlp(architecture)
    nlp.initialize(lambda: examples(nlp))
    assert_frozen_then_half_rate(nlp, f"spacy_rnn.pretrained_encoder_schedule.{version}", examples,
                                 encoder_and_head_weights)


def test_encoder_schedule_is_not_saved_with_the_weights():
    nlp = textcat_nlp()
    nlp.initialize(lambda: examples(nlp))
    model = nlp.get_pipe("textcat").model
    registry.callbacks.get("spacy_rnn.pretrained_encoder_schedule.v1")(learn_rate_scale=0.25)(nlp, {"step": 0})
    data = model.to_bytes()
    assert all("learn_rate_scale" not in attrs for attrs in srsly.msgpack_loads(data)["attrs"])
    assert b"learn_rate_scale" not in data
    assert model.get_ref("tok2vec").attrs["learn_rate_scale"] == 0.25  # still set on the model in training


def test_encoder_schedule_refuses_negative_settings():
    with pytest.raises(ValueError, match="0 or more"):
        registry.callbacks.get("spacy_rnn.pretrained_encoder_schedule.v1")(learn_rate_scale=-0.1)


# --- the rnn_seq2seq encoder: starts from an encoder pretrained through a text classifier ---------------------

TITLES = [("the cat sat on the mat", "cat on mat"), ("the dog sat on the rug", "dog on rug"),
          ("a cat lay on a mat", "cat on mat"), ("a dog lay on a rug", "dog on rug"),
          ("the cat saw the dog", "cat saw dog"), ("the dog saw the cat", "dog saw cat")]


def seq2seq_nlp(width=16, cell="lstm", pretraining=None, init_tok2vec=None):
    """A copy-decoder rnn_seq2seq whose tok2vec and encoder settings are those of textcat_nlp()."""
    config = {
        "nlp": {"lang": "en", "pipeline": ["rnn_seq2seq"]},
        "components": {"rnn_seq2seq": {
            "factory": "rnn_seq2seq", "min_freq": 1, "beam_size": 1, "max_length": 6,
            "model": {"@architectures": "spacy_rnn.Seq2Seq.v2", "width": width, "cell": cell, "target_width": 8,
                      "tok2vec": EMBED},
        }},
        "initialize": {"init_tok2vec": init_tok2vec},
    }
    if pretraining:
        config["pretraining"] = pretraining
    return spacy.util.load_model_from_config(load_config_from_str(spacy.util.Config(config).to_str()),
                                             auto_fill=True)


def title_examples(nlp):
    return [Example(nlp.make_doc(text), set_target(nlp.make_doc(text), title)) for text, title in TITLES]


def encoder_decoder_state(nlp):
    module = nlp.get_pipe("rnn_seq2seq").model.get_ref("encoder_decoder").shims[0].module
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


@pytest.fixture
def pretrained_encoder(words):
    """A textcat's encoder after 5 pretraining steps: (layer, saved bytes)."""
    fix_random_seed(0)
    source = textcat_nlp()
    encoder = pretrainable(source)
    pretrain(source, encoder, words, steps=5)
    return encoder, encoder.to_bytes()


def test_pretrained_encoder_loads_into_the_seq2seq_encoder_only_and_round_trips(pretrained_encoder, tmp_path):
    encoder, pretrained = pretrained_encoder
    docs = [spacy.blank("en").make_doc(text) for text in HELD_OUT]
    nlp = seq2seq_nlp()
    nlp.initialize(lambda: title_examples(nlp))
    model = nlp.get_pipe("rnn_seq2seq").model
    before = encoder_decoder_state(nlp)
    model.get_ref("encoder").from_bytes(pretrained)

    # The encoder's states are the pretrained encoder's; its tok2vec holds the pretrained embeddings.
    for states, expected in zip(model.get_ref("encoder").predict(docs), encoder.predict(docs)):
        numpy.testing.assert_array_equal(states, expected)
    for vectors, expected in zip(model.get_ref("tok2vec").predict(docs), encoder.layers[0].predict(docs)):
        numpy.testing.assert_array_equal(vectors, expected)
    # Only the encoder's weights changed (the textcat's pooling, if any, is left out); the decoder's did not.
    after = encoder_decoder_state(nlp)
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert changed == {key for key in before if key.startswith("encoder.")} != set()
    # The encoder ref saves in the classifier's format, and loads back.
    assert_same_weights(model.get_ref("encoder").to_bytes(), pretrained)
    other = seq2seq_nlp()
    other.initialize(lambda: title_examples(other))
    other.get_pipe("rnn_seq2seq").model.get_ref("encoder").from_bytes(model.get_ref("encoder").to_bytes())
    assert_same_weights(other.get_pipe("rnn_seq2seq").model.get_ref("encoder").to_bytes(), pretrained)

    # Fine-tuned, saved and loaded as any rnn_seq2seq pipeline: the ref is not part of the saved format.
    optimizer = nlp.create_optimizer()
    for _ in range(5):
        nlp.update(title_examples(nlp), sgd=optimizer)
    expected = [doc._.generated for doc in nlp.pipe(text for text, _ in TITLES)]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert [doc._.generated for doc in loaded.pipe(text for text, _ in TITLES)] == expected
    assert_same_weights(loaded.get_pipe("rnn_seq2seq").model.get_ref("encoder").to_bytes(),
                        model.get_ref("encoder").to_bytes())


def test_init_tok2vec_loads_a_pretrained_encoder_into_rnn_seq2seq(pretrained_encoder, tmp_path):
    _, pretrained = pretrained_encoder
    (tmp_path / "model.bin").write_bytes(pretrained)
    # The [pretraining] block of a seq2seq config: spaCy reads component and layer, and resolves the whole block.
    pretraining = load_config_from_str(PRETRAIN_CONFIG.format(component="rnn_seq2seq", layer="encoder"),
                                       interpolate=False)["pretraining"]
    pretraining["objective"]["words"] = None
    nlp = seq2seq_nlp(pretraining=pretraining, init_tok2vec=str(tmp_path / "model.bin"))
    nlp.initialize(lambda: title_examples(nlp))
    assert_same_weights(nlp.get_pipe("rnn_seq2seq").model.get_ref("encoder").to_bytes(), pretrained)


@pytest.mark.parametrize("settings,message", [
    ({"width": 32}, "'nO' of the layer .*rnn_states_view' is 16 in the weights, 32 in the config"),
    ({"cell": "gru"}, "cell = 'lstm' in the weights, 'gru' in the config"),
])
def test_another_encoder_is_refused_and_leaves_the_seq2seq_model_as_it_was(pretrained_encoder, settings, message):
    _, pretrained = pretrained_encoder
    nlp = seq2seq_nlp(**settings)
    nlp.initialize(lambda: title_examples(nlp))
    model = nlp.get_pipe("rnn_seq2seq").model
    before = model.to_bytes()
    with pytest.raises(ValueError, match=message):
        model.get_ref("encoder").from_bytes(pretrained)
    assert model.to_bytes() == before


def test_the_seq2seq_encoder_cannot_be_pretrained_or_loaded_before_initialize(pretrained_encoder):
    _, pretrained = pretrained_encoder
    nlp = seq2seq_nlp()
    with pytest.raises(ValueError, match="built with its decoder.*Pretrain the encoder of a text classifier"):
        pretrainable(nlp)  # what spacy pretrain does first
    with pytest.raises(ValueError, match="initialize the pipeline first"):
        nlp.get_pipe("rnn_seq2seq").model.get_ref("encoder").from_bytes(pretrained)


def seq2seq_encoder_and_decoder_weights(model):
    """Copies of the encoder's weights (tok2vec params, the encoder part of the torch module) and of the rest."""
    encoder = [node.get_param(name).copy() for node in model.get_ref("tok2vec").walk()
               for name in node.param_names if node.has_param(name)]
    state = model.get_ref("encoder_decoder").shims[0].module.state_dict()
    encoder += [value.detach().clone().numpy() for key, value in state.items() if key.startswith("encoder.")]
    return encoder, [value.detach().clone().numpy() for key, value in state.items() if not key.startswith("encoder.")]


def test_encoder_schedule_v2_freezes_then_scales_the_seq2seq_encoder_only():
    fix_random_seed(0)
    nlp = seq2seq_nlp()
    nlp.initialize(lambda: title_examples(nlp))
    model = nlp.get_pipe("rnn_seq2seq").model
    # v1 schedules text classifiers only: the seq2seq encoder learns.
    registry.callbacks.get("spacy_rnn.pretrained_encoder_schedule.v1")(frozen_steps=10)(nlp, {"step": 0})
    encoder, _ = seq2seq_encoder_and_decoder_weights(model)
    nlp.update(title_examples(nlp))
    assert max(moved(encoder, seq2seq_encoder_and_decoder_weights(model)[0])) > 0

    assert_frozen_then_half_rate(nlp, "spacy_rnn.pretrained_encoder_schedule.v2", title_examples,
                                 seq2seq_encoder_and_decoder_weights)
    assert all(key not in attrs for attrs in srsly.msgpack_loads(model.to_bytes())["attrs"]
               for key in ("learn_rate_scale", "submodule_learn_rate_scales"))  # the schedule is not saved
