"""spacy_rnn.corpus: reading JSONL with errors that name file and line; the
projects' rnnproject.corpora: cats and seq2seq targets on Docs."""
import gzip
import json
import sys

import pytest
import spacy
from spacy.tokens import DocBin

from conftest import REPO
from spacy_rnn import get_target
from spacy_rnn.corpus import DataError, read_jsonl

sys.path.append(str(REPO / "project" / "scripts"))
from rnnproject.corpora import cats_for, label_names, seq2seq_docs, textcat_docbin, textcat_docs  # noqa: E402


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf8")
    return path


GOOD = json.dumps({"text": "fine", "label": "A"})


@pytest.mark.parametrize(
    "bad_line,message",
    [
        ('{"text": "cut off", "label": "A"', "not valid JSON"),
        ('["text", "label"]', "expected a JSON object, got list"),
        ('{"text": "no label"}', "missing field(s) label"),
        ('{"text": 3, "label": "A"}', "'text' must be a string"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    path = write_lines(tmp_path / "data.jsonl", [GOOD, "", bad_line, GOOD])
    with pytest.raises(DataError) as err:
        list(read_jsonl(path, required=("text", "label")))
    assert f"{path}:3:" in str(err.value)
    assert message in str(err.value)


def test_target_must_be_a_string(tmp_path):
    path = write_lines(tmp_path / "pairs.jsonl", [json.dumps({"text": "a review", "target": None})])
    with pytest.raises(DataError, match=r"pairs.jsonl:1: 'target' must be a string"):
        list(read_jsonl(path, required=("text", "target")))


def test_reads_gzip_and_skips_blank_lines(tmp_path):
    path = tmp_path / "data.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf8") as file_:
        file_.write(GOOD + "\n\n" + json.dumps({"text": "two", "label": "B"}) + "\n")
    assert [r["text"] for r in read_jsonl(path)] == ["fine", "two"]


def test_unreadable_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="missing.jsonl: cannot be read"):
        list(read_jsonl(tmp_path / "missing.jsonl"))


def test_labels_sort_stars_numerically_and_cats_are_one_hot():
    labels = label_names([{"label": 10}, {"label": 2}, {"label": 1}])
    assert labels == ["1", "2", "10"]
    assert cats_for(2, labels) == {"1": 0.0, "2": 1.0, "10": 0.0}
    with pytest.raises(DataError, match="not one of the expected labels"):
        cats_for(3, labels)


def test_textcat_docs_keep_order_and_survive_a_docbin():
    nlp = spacy.blank("en")
    records = [{"text": f"text number {i}", "label": "POS" if i % 3 else "NEG"} for i in range(20)]
    docs = list(textcat_docs(nlp, records, ["NEG", "POS"], batch_size=4))
    assert [doc.text for doc in docs] == [r["text"] for r in records]
    restored = list(textcat_docbin(nlp, records, ["NEG", "POS"]).get_docs(nlp.vocab))
    assert [doc.cats for doc in restored] == [doc.cats for doc in docs]
    assert restored[0].cats == {"NEG": 1.0, "POS": 0.0} and restored[1].cats == {"NEG": 0.0, "POS": 1.0}


def test_seq2seq_targets_survive_a_docbin(tmp_path):
    nlp = spacy.blank("en")
    records = [{"text": "Love this dress, it fits.", "target": "Perfect dress"}, {"text": "Too small.", "target": ""}]
    docbin = DocBin(docs=seq2seq_docs(nlp, records), store_user_data=True)
    docbin.to_disk(tmp_path / "pairs.spacy")
    restored = list(DocBin().from_disk(tmp_path / "pairs.spacy").get_docs(nlp.vocab))
    assert [get_target(doc) for doc in restored] == ["Perfect dress", ""]
    assert [doc.text for doc in restored] == [r["text"] for r in records]
