"""Damaged or tampered saved pipelines: truncated, missing or replaced files,
a config or vocabulary that does not match the weights. Each gives an error
that says so (naming the file where spaCy lets spacy-rnn know it), nothing is
unpickled, and a component that fails to load keeps its weights."""
import os
import pickle
import shutil

import pytest
import spacy
import srsly
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

from spacy_rnn import set_target
from spacy_rnn.target_vocab import WordVocab

EMBED = {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 16, "attrs": ["NORM"], "rows": [100]}
TEXTS = ["red blue", "green", "blue gold red", "pink"]


def train(nlp, examples):
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.01))
    nlp.update(examples, sgd=optimizer)
    return nlp


def textcat_nlp(cell="lstm"):
    nlp = spacy.blank("en")
    model = {"@architectures": "spacy_rnn.TextCatRNN.v1", "exclusive_classes": True, "cell": cell, "width": 16,
             "tok2vec": EMBED}
    nlp.add_pipe("textcat", config={"model": model})
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": {"A": float(i % 2), "B": float(1 - i % 2)}})
                for i, t in enumerate(TEXTS)]
    return train(nlp, examples)


def seq2seq_nlp(targets=TEXTS):
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_seq2seq", config={"min_freq": 1, "model": {"width": 16, "target_width": 8, "tok2vec": EMBED}})
    examples = [Example(nlp.make_doc(t), set_target(nlp.make_doc(t), target)) for t, target in zip(TEXTS, targets)]
    return train(nlp, examples)


def encoder_nlp():
    nlp = spacy.blank("en")
    encode = {"@architectures": "spacy_rnn.RNNEncoder.v1", "width": 16, "cell": "gru"}
    nlp.add_pipe("tok2vec", config={"model": {"@architectures": "spacy.Tok2Vec.v2", "embed": EMBED, "encode": encode}})
    nlp.initialize()
    return nlp


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved textcat, seq2seq and tok2vec pipeline; each test damages a copy."""
    root = tmp_path_factory.mktemp("saved")
    for name, make in (("textcat", textcat_nlp), ("rnn_seq2seq", seq2seq_nlp), ("tok2vec", encoder_nlp)):
        make().to_disk(root / name)
    return root


@pytest.fixture
def copy_of(saved, tmp_path):
    def copy(name):
        return shutil.copytree(saved / name, tmp_path / name)

    return copy


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_weights(copy_of):
    textcat = copy_of("textcat")
    truncate(textcat / "textcat" / "model")
    with pytest.raises(ValueError, match="file 'model' in the component's folder.*truncated"):
        spacy.load(textcat)
    seq2seq = copy_of("rnn_seq2seq")
    truncate(seq2seq / "rnn_seq2seq" / "model")
    with pytest.raises(ValueError, match=f"Cannot load the model {seq2seq / 'rnn_seq2seq' / 'model'}.*truncated"):
        spacy.load(seq2seq)


def test_missing_files_are_named(copy_of):
    textcat = copy_of("textcat")
    os.remove(textcat / "textcat" / "model")
    with pytest.raises(FileNotFoundError, match="textcat/model"):  # spaCy's own message
        spacy.load(textcat)
    for name in ("model", "target_vocab", "cfg"):
        seq2seq = copy_of("rnn_seq2seq") if name == "model" else seq2seq
        os.remove(seq2seq / "rnn_seq2seq" / name)
        with pytest.raises(ValueError, match=f"Cannot read {seq2seq / 'rnn_seq2seq' / name}"):
            spacy.load(seq2seq)
        shutil.rmtree(seq2seq)
        seq2seq = copy_of("rnn_seq2seq")


@pytest.mark.parametrize("pipeline,setting,value,message", [
    ("textcat", "cell", "gru", "cell = 'lstm' in the weights, 'gru' in the config"),
    ("textcat", "bidirectional", False, "bidirectional = True in the weights, False in the config"),
    ("textcat", "width", 32, "'nO' of the layer 'rnn_pooled' is 32 in the weights, 64 in the config"),
    ("tok2vec", "encode.activation", "tanh", "activation = 'sigmoid' in the weights, 'tanh' in the config"),
    ("rnn_seq2seq", "decoder", "repeat", "decoder = 'attention' in the weights, 'repeat' in the config"),
])
def test_config_that_does_not_match_the_weights(copy_of, pipeline, setting, value, message):
    folder = copy_of(pipeline)
    config = spacy.util.load_config(folder / "config.cfg")
    section = config["components"][pipeline]["model"]
    *parents, key = setting.split(".")
    for parent in parents:
        section = section[parent]
    section[key] = value
    config.to_disk(folder / "config.cfg")
    with pytest.raises(ValueError, match=message):
        spacy.load(folder)


def test_target_vocabulary_that_does_not_match_the_model(copy_of):
    folder = copy_of("rnn_seq2seq")
    vocab_file = folder / "rnn_seq2seq" / "target_vocab"
    vocab_file.write_bytes(WordVocab.build(["only three words"], min_freq=1).to_bytes())
    with pytest.raises(ValueError, match=f"target vocabulary \\(7 ids\\) does not match the model {folder}"):
        spacy.load(folder)
    vocab_file.write_bytes(b'{"kind": "word", "pieces": ["a"]')
    with pytest.raises(ValueError, match=f"Cannot read the target vocabulary {vocab_file}"):
        spacy.load(folder)


class CreatesAFile:
    """Unpickling this creates the file `path`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("pipeline,files", [
    ("textcat", ["textcat/model"]),
    ("tok2vec", ["tok2vec/model"]),
    ("rnn_seq2seq", ["rnn_seq2seq/model", "rnn_seq2seq/target_vocab", "rnn_seq2seq/cfg"]),
])
def test_pickle_payload_is_never_executed(copy_of, tmp_path, pipeline, files):
    for name in files:
        folder = copy_of(pipeline)
        marker = tmp_path / "unpickled"
        payload = pickle.dumps(CreatesAFile(marker))
        assert not marker.exists()
        (folder / name).write_bytes(payload)
        with pytest.raises(Exception):
            spacy.load(folder)
        assert not marker.exists(), f"{name}: the pickle was executed"
        shutil.rmtree(folder)


def test_pickle_inside_a_valid_model_record_is_refused(copy_of, tmp_path):
    """The outer record is readable; the torch weights inside are a pickle."""
    folder = copy_of("textcat")
    model_file = folder / "textcat" / "model"
    msg = srsly.msgpack_loads(model_file.read_bytes())
    marker = tmp_path / "unpickled"
    for shims in msg["shims"]:
        for i in range(len(shims)):
            shims[i] = pickle.dumps(CreatesAFile(marker))
    model_file.write_bytes(srsly.msgpack_dumps(msg))
    with pytest.raises(ValueError, match="not a spacy-rnn weights record"):
        spacy.load(folder)
    assert not marker.exists()


def test_a_failed_load_leaves_the_component_as_it_was():
    textcat, other = textcat_nlp("lstm"), textcat_nlp("gru")
    before = [textcat(text).cats for text in TEXTS]
    with pytest.raises(ValueError, match="cell = 'gru' in the weights, 'lstm' in the config"):
        textcat.get_pipe("textcat").from_bytes(other.get_pipe("textcat").to_bytes())
    assert [textcat(text).cats for text in TEXTS] == before

    seq2seq, bigger = seq2seq_nlp(), seq2seq_nlp(targets=[t + " and more" for t in TEXTS])
    pipe = seq2seq.get_pipe("rnn_seq2seq")
    before = [doc._.generated for doc in seq2seq.pipe(TEXTS)]
    vocab_size = len(pipe.target_vocab)
    with pytest.raises(ValueError, match="does not match the model"):
        pipe.from_bytes(bigger.get_pipe("rnn_seq2seq").to_bytes(exclude=["model"]))
    assert len(pipe.target_vocab) == vocab_size
    with pytest.raises(ValueError, match="Cannot load the model the 'model' bytes"):
        pipe.from_bytes(bigger.get_pipe("rnn_seq2seq").to_bytes())
    assert [doc._.generated for doc in seq2seq.pipe(TEXTS)] == before
