"""The projects' pretraining steps (rnnproject.pretraining, behind
pretrain_text.py and pretrain.py): a domain's texts and word list are
gathered; `spacy
pretrain`, skips a finished run, resumes an interrupted one, and its weights
start a text classifier (`[initialize] init_tok2vec`)."""
import gzip
import json
import sys
from pathlib import Path

import pytest
import spacy
import srsly
import torch
from spacy.tokens import DocBin
from spacy.training.initialize import init_nlp
from spacy.util import load_config

from conftest import REPO
from test_pretrain import CORPUS, LABELLED, assert_same_weights, examples, pretrain_config, textcat_nlp

SCRIPTS = REPO / "project" / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))

from rnnproject import pretraining as pretrain  # noqa: E402


def write_jsonl(path, records):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf8") as file_:
        file_.writelines(json.dumps(record) + "\n" for record in records)
    return path


def gather(tmp_path, inputs, max_words=0, seed=0, vocab=100):
    """write_texts of PATH or PATH:FIELD,FIELD... inputs."""
    parsed = [(Path(spec.rpartition(":")[0]), spec.rpartition(":")[2].split(",")) if ":" in spec else (Path(spec), ["text"])
              for spec in map(str, inputs)]
    pretrain.write_texts(parsed, tmp_path / "out", max_words=max_words, vocab=vocab, seed=seed, lang="en")
    return [record["text"] for record in srsly.read_jsonl(tmp_path / "out" / "texts.jsonl")]


@pytest.fixture
def inputs(tmp_path):
    """Replies with their thread titles as a list field (some shared), and a second file repeating a reply."""
    replies = write_jsonl(tmp_path / "reddit.jsonl.gz", [
        {"text": f"reply number {i} here", "context": [f"thread {i // 2} title", ""], "label": "x"} for i in range(20)
    ])
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "reply number 3 here"}, {"text": "  "},
                                                   {"text": "another training text"}])
    return replies, train


def test_pretrain_text_gathers_distinct_texts_shuffled_with_their_word_list(tmp_path, inputs, capsys):
    replies, train = inputs
    texts = gather(tmp_path, [f"{replies}:text,context", train])
    expected = ([f"reply number {i} here" for i in range(20)] + [f"thread {i} title" for i in range(10)]
                + ["another training text"])
    assert sorted(texts) == sorted(expected)  # duplicates, blanks and empty list items left out
    assert texts != expected  # shuffled ...
    assert gather(tmp_path, [f"{replies}:text,context", train]) == texts  # ... with a fixed seed
    assert gather(tmp_path, [f"{replies}:text,context", train], seed=1) != texts
    out = capsys.readouterr().out
    assert "Wrote 31 texts, 113 tokens" in out and "11 duplicates and 0 texts over --max-words left out" in out
    words = (tmp_path / "out" / "lm_words.txt").read_text(encoding="utf8").split("\n")
    assert words[:2] == ["reply", "number"] or words[:2] == ["number", "reply"]
    assert sorted(gather(tmp_path, [replies])) == sorted(f"reply number {i} here" for i in range(20))  # "text" alone


def test_pretrain_text_keeps_at_most_max_words_tokens(tmp_path, inputs):
    replies, _ = inputs
    everything = gather(tmp_path, [f"{replies}:text,context"])
    capped = gather(tmp_path, [f"{replies}:text,context"], max_words=20)
    nlp = spacy.blank("en")
    assert capped == everything[:len(capped)]
    assert sum(len(nlp(text)) for text in capped) <= 20 < sum(len(nlp(text)) for text in everything[:len(capped) + 1])


@pytest.mark.parametrize("name", ["sarc_pol_balanced_test.jsonl", "marc_en_dev.jsonl", "Test.jsonl.gz",
                                  "dev-2.jsonl:text,context"])
def test_pretrain_text_refuses_test_and_dev_splits(tmp_path, name, capsys):
    write_jsonl(tmp_path / name.split(":")[0], [{"text": "held out"}])
    with pytest.raises(SystemExit):
        gather(tmp_path, [tmp_path / name])
    split = "test" if "test" in name.lower() else "dev"
    assert f"looks like a {split} split. Pretrain on training or unlabelled texts only" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_pretrain_text_reads_files_whose_names_only_contain_test_or_dev(tmp_path):
    path = write_jsonl(tmp_path / "devices_contest.jsonl", [{"text": "fine to pretrain on"}])
    assert gather(tmp_path, [path]) == ["fine to pretrain on"]


@pytest.mark.parametrize("spec,records,message", [
    ("a.jsonl:text,context", [{"text": "no context"}], "a.jsonl:1: missing field 'context'"),
    ("a.jsonl:context", [{"context": ["fine"]}, {"context": ["a", 3]}],
     "a.jsonl:2: 'context' must be a string or a list of strings, got ['a', 3]"),
    ("a.csv", [], "a.csv: expected a .jsonl or .jsonl.gz file and the fields of its records that hold text"),
    ("missing.jsonl", None, "missing.jsonl: no such file. Run the download step"),
])
def test_pretrain_text_names_a_bad_input(tmp_path, spec, records, message, capsys):
    if records is not None:
        write_jsonl(tmp_path / spec.split(":")[0], records)
    with pytest.raises(SystemExit):
        gather(tmp_path, [f"{tmp_path}/{spec}"])
    assert message in capsys.readouterr().err


@pytest.fixture
def toy(tmp_path):
    """A toy pretraining config (2 epochs of 3 batches, tiny widths), its texts and word list."""
    texts = write_jsonl(tmp_path / "texts.jsonl", [{"text": text} for text in CORPUS * 10])
    words = tmp_path / "words.txt"
    words.write_text("\n".join(sorted({word for text in CORPUS for word in text.split()})) + "\n", encoding="utf8")
    pretrain_config("textcat", "encoder").to_disk(tmp_path / "pretrain.cfg")
    return tmp_path / "pretrain.cfg", {"paths.raw_text": str(texts), "paths.lm_words": str(words)}


def interrupt_in_epoch(monkeypatch, output_dir, epoch):
    """Ctrl-C at the first update of `epoch` (once epoch - 1 is saved), as the pretraining loop sees it."""
    make_update = pretrain.make_update

    def update(*args):
        if (output_dir / f"model{epoch - 1}.bin").exists():
            raise KeyboardInterrupt
        return make_update(*args)

    monkeypatch.setattr(pretrain, "make_update", update)


def epochs_logged(output_dir):
    return [row["epoch"] for row in srsly.read_jsonl(output_dir / "log.jsonl")]


def test_pretrain_resumes_after_an_interruption_and_skips_when_done(toy, tmp_path, monkeypatch, capsys):
    config, overrides = toy
    out = tmp_path / "pretrained"
    with monkeypatch.context() as patch:
        interrupt_in_epoch(patch, out, 1)
        with pytest.raises(KeyboardInterrupt):
            pretrain.pretrain(config, out, overrides)
    # spaCy saves model-last.bin even when interrupted: only pretrain.json tells that the run did not finish.
    assert (out / "model-last.bin").exists() and epochs_logged(out) == [0, 2]
    assert pretrain.read_json(out / "pretrain.json")["finished"] is False
    epoch0 = (out / "model0.bin").read_bytes()

    info = pretrain.pretrain(config, out, overrides)
    assert "resuming after epoch 0" in capsys.readouterr().out
    assert info["finished"] and info["resumed_after_epoch"] == 0 and len(info["epoch_losses"]) == 2
    assert info["words_per_epoch"] == sum(len(text.split()) for text in CORPUS) * 10
    assert epochs_logged(out) == [0, 1, 2]
    assert (out / "model0.bin").read_bytes() == epoch0
    assert pretrain.read_json(out / "pretrain.json") == info

    last = (out / "model-last.bin").read_bytes()
    assert pretrain.pretrain(config, out, overrides) is None  # done: nothing to do
    assert (out / "model-last.bin").read_bytes() == last

    # More epochs continue the run; other settings start afresh.
    info = pretrain.pretrain(config, out, {**overrides, "pretraining.max_epochs": 3})
    assert info["resumed_after_epoch"] == 1 and epochs_logged(out) == [0, 1, 2, 3]
    info = pretrain.pretrain(config, out, {**overrides, "pretraining.optimizer.learn_rate": 0.02})
    assert info["resumed_after_epoch"] is None and epochs_logged(out) == [0, 1, 2]
    assert (out / "model0.bin").read_bytes() != epoch0 and not (out / "model2.bin").exists()


def test_pretrain_starts_afresh_when_the_texts_or_the_code_change(toy, tmp_path, monkeypatch):
    config, overrides = toy
    overrides = {**overrides, "pretraining.max_epochs": 1}
    out = tmp_path / "pretrained"
    pretrain.pretrain(config, out, overrides)
    write_jsonl(tmp_path / "texts.jsonl", [{"text": text} for text in CORPUS * 5])
    info = pretrain.pretrain(config, out, overrides)
    assert info["resumed_after_epoch"] is None and info["words_per_epoch"] == 5 * sum(map(len, map(str.split, CORPUS)))
    assert pretrain.pretrain(config, out, overrides) is None
    fingerprint = pretrain.code_fingerprint
    monkeypatch.setattr(pretrain, "code_fingerprint", lambda paths: fingerprint(paths) + "changed  lm.py\n")
    assert pretrain.pretrain(config, out, overrides)["resumed_after_epoch"] is None


@pytest.mark.parametrize("overrides,message", [
    ({"paths.lm_words": None}, "paths.lm_words = None: no such file. Give --paths.lm_words PATH"),
    ({"paths.raw_text": "missing.jsonl"}, "/missing.jsonl': no such file. Give --paths.raw_text PATH"),
    ({"paths.raw_text": "texts.jsonl.gz"}, "spaCy's JsonlCorpus reads .jsonl files only"),
    ({"pretraining.max_epochs": 0}, "[pretraining] max_epochs = 0: give --pretraining.max_epochs 1 or more"),
])
def test_pretrain_names_missing_inputs(toy, tmp_path, overrides, message, capsys):
    config, paths = toy
    (tmp_path / "texts.jsonl.gz").write_bytes(b"")
    overrides = {key: str(tmp_path / value) if key.startswith("paths") and value else value
                 for key, value in overrides.items()}
    with pytest.raises(SystemExit):
        pretrain.pretrain(config, tmp_path / "pretrained", {**paths, **overrides})
    assert message in capsys.readouterr().err


def test_pretrained_weights_start_the_text_classifier(toy, tmp_path):
    config, overrides = toy
    pretrain.pretrain(config, tmp_path / "pretrained", overrides)
    weights = tmp_path / "pretrained" / "model-last.bin"
    nlp = textcat_nlp()
    DocBin(docs=[eg.reference for eg in examples(nlp)]).to_disk(tmp_path / "train.spacy")
    pretrain_config("textcat", "encoder", init_tok2vec=weights, train=tmp_path / "train.spacy",
                    dev=tmp_path / "train.spacy").to_disk(tmp_path / "train.cfg")
    initialized = init_nlp(load_config(tmp_path / "train.cfg"))
    assert_same_weights(initialized.get_pipe("textcat").model.get_ref("encoder").to_bytes(), weights.read_bytes())
    assert set(initialized.get_pipe("textcat").labels) == {label for _, label in LABELLED}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_pretrain_on_the_gpu_gives_weights_that_load_on_the_cpu(toy, tmp_path):
    pytest.importorskip("cupy", reason="spacy.require_gpu needs cupy")
    config, overrides = toy
    try:
        info = pretrain.pretrain(config, tmp_path / "pretrained", overrides, gpu_id=0)
    finally:
        spacy.require_cpu()
    assert info["gpu_id"] == 0 and info["epoch_losses"][1] < info["epoch_losses"][0]
    nlp = textcat_nlp()
    nlp.initialize(lambda: examples(nlp))
    encoder = nlp.get_pipe("textcat").model.get_ref("encoder")
    weights = (tmp_path / "pretrained" / "model-last.bin").read_bytes()
    encoder.from_bytes(weights)
    assert_same_weights(encoder.to_bytes(), weights)
