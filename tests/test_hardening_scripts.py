"""The project scripts on bad input: malformed JSONL, a missing column, a
wrong label type, an unreadable file, DocBins that cannot train, damaged
metrics. Each stops with a message naming the file and line (or Doc), and
nothing half-written is left behind."""
import json
import subprocess
import sys

import pytest
import spacy
from spacy.tokens import DocBin

from conftest import REPO
from spacy_rnn.corpus import DataError
from spacy_rnn import set_target

SCRIPTS = REPO / "project" / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))

from rnnproject import corpora, files, metrics, pipelines, reports  # noqa: E402

GOOD = json.dumps({"text": "fine", "label": "A"})


def convert_args(tmp_path, train_path, test_path, kind="textcat"):
    return {"kind": kind, "output_dir": tmp_path / "corpus", "train": [train_path], "test": test_path,
            "dev_share": 0.5, "batch_size": 8}


@pytest.mark.parametrize("bad_line,message", [
    ('{"text": "no label"}', "missing field(s) label"),
    ('{"text": "a list", "label": ["A"]}', "'label' must be a string or an integer, got ['A']"),
    ('{"text": "a bool", "label": true}', "'label' must be a string or an integer, got True"),
    ('{"text": "a float", "label": 1.5}', "'label' must be a string or an integer, got 1.5"),
    ('{"text": "cut off", "lab', "not valid JSON"),
])
def test_convert_stops_at_a_bad_record_and_writes_nothing(tmp_path, bad_line, message):
    train_path, test_path = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train_path.write_text(f"{GOOD}\n{GOOD}\n", encoding="utf8")
    test_path.write_text(f"{GOOD}\n\n{bad_line}\n{GOOD}\n", encoding="utf8")
    with pytest.raises(DataError) as err:
        corpora.convert(**convert_args(tmp_path, train_path, test_path))
    assert f"{test_path}:3: {message}" in str(err.value)
    assert not (tmp_path / "corpus").exists()


@pytest.mark.parametrize("content", [b"\xff\xfe not UTF-8\n", None])
def test_convert_names_an_unreadable_file(tmp_path, content):
    train_path = tmp_path / "train.jsonl"
    if content is None:
        train_path.mkdir()  # a folder where a file should be
    else:
        train_path.write_bytes(content)
    with pytest.raises(DataError, match=f"{train_path}: cannot be read"):
        corpora.convert(**convert_args(tmp_path, train_path, train_path))
    assert not (tmp_path / "corpus").exists()


def test_convert_command_line_says_file_and_line_without_a_traceback(tmp_path):
    folder = tmp_path / "assets" / "sst5"
    folder.mkdir(parents=True)
    for split in ("dev", "test"):
        (folder / f"sst5_{split}.jsonl").write_text(f"{GOOD}\n", encoding="utf8")
    (folder / "sst5_train.jsonl").write_text(f'{GOOD}\n{{"text": "x", "label": {{"stars": 5}}}}\n', encoding="utf8")
    result = subprocess.run([sys.executable, str(SCRIPTS / "convert.py"), "sst5"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 1
    assert "sst5_train.jsonl:2: 'label' must be a string or an integer" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "corpus").exists()


def write_docbin(path, docs):
    DocBin(docs=docs, store_user_data=True).to_disk(path)
    return path


def docs_with_cats(nlp, cats_list):
    docs = []
    for i, cats in enumerate(cats_list):
        doc = nlp.make_doc(f"text number {i}")
        doc.cats = cats
        docs.append(doc)
    return docs


POS, NEG = {"POS": 1.0, "NEG": 0.0}, {"POS": 0.0, "NEG": 1.0}


@pytest.mark.parametrize("train_cats,dev_cats,message", [
    ([POS, NEG, {}], [POS], "train.spacy: Doc 3 ('text number 2') has no cats"),
    ([POS, NEG], [POS, {"POS": 0.0, "NEG": 0.0, "MAYBE": 1.0}],
     "dev.spacy: Doc 2 ('text number 1') has the label(s) ['MAYBE']"),
    ([POS, {"POS": float("nan"), "NEG": 1.0}], [POS],
     "train.spacy: Doc 2 ('text number 1') has scores that are not numbers in [0, 1]"),
    ([], [POS], "train.spacy: no Docs"),
])
def test_training_stops_on_docs_that_cannot_train_textcat(tmp_path, train_cats, dev_cats, message):
    nlp = spacy.blank("en")
    train_path = write_docbin(tmp_path / "train.spacy", docs_with_cats(nlp, train_cats))
    dev_path = write_docbin(tmp_path / "dev.spacy", docs_with_cats(nlp, dev_cats))
    overrides = {"paths.train": str(train_path), "paths.dev": str(dev_path)}
    with pytest.raises(DataError) as err:
        pipelines.train(REPO / "configs" / "textcat_lstm.cfg", tmp_path / "training", overrides)
    assert message in str(err.value)
    assert not (tmp_path / "training").exists()


def test_training_stops_on_a_seq2seq_doc_without_target_or_a_damaged_docbin(tmp_path):
    nlp = spacy.blank("en")
    docs = [set_target(nlp.make_doc("a review"), "a title"), nlp.make_doc("no title here")]
    train_path = write_docbin(tmp_path / "train.spacy", docs)
    dev_path = write_docbin(tmp_path / "dev.spacy", docs[:1])
    config = REPO / "configs" / "seq2seq_titles.cfg"
    with pytest.raises(DataError, match=r"train.spacy: Doc 2 \('no title here'\) has no seq2seq target"):
        pipelines.check_data(config, {"paths.train": str(train_path), "paths.dev": str(dev_path)})
    dev_path.write_bytes(b"not a DocBin")
    with pytest.raises(DataError, match=f"{dev_path}: cannot be read as a DocBin"):
        pipelines.check_data(config, {"paths.train": str(train_path), "paths.dev": str(dev_path)})


def test_damaged_metrics_name_the_file_and_line(tmp_path, capsys):
    record = tmp_path / "rnn.json"
    record.write_text('{"accuracy": 0.5,\n "macro_f1": }\n', encoding="utf8")
    with pytest.raises(SystemExit):
        files.read_json(record)
    assert f"{record}:2: not valid JSON" in capsys.readouterr().err
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 0, "epoch": 0, "score": 0.1, "losses": {}}\n{"step": 200, "epoch": 1}\n')
    with pytest.raises(DataError, match=f"{log}:2: missing field\\(s\\) score, losses"):
        metrics.read_log(log)
    (tmp_path / "rnn_predictions.jsonl").write_text('{"text": "a", "gold": "A"}\n', encoding="utf8")
    with pytest.raises(DataError, match="rnn_predictions.jsonl:1: missing field\\(s\\) pred"):
        reports.example_rows(tmp_path, seq2seq=False)
