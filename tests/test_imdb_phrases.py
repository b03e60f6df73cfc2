"""The data of the IMDB and SST-5 phrase studies and SARC's pair ids:
SST's trees read into every labelled phrase (a toy tree with a known answer,
malformed trees, and the real training trees when the data is there), IMDB's
classes taken from another field of gzipped JSONL, aclImdb's files turned
into the offline copy's records, and the `--group-by` value kept on each Doc."""
import gzip
import json
import sys

import pytest
import spacy
import srsly
from spacy.tokens import DocBin

from conftest import REPO

SCRIPTS = REPO / "project" / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))

from rnnproject import canonical, corpora, datasets  # noqa: E402
from spacy_rnn.corpus import DataError  # noqa: E402

TOY_TREE = "(3 (2 It) (4 (4 works) (2 (2 -LRB-) (2 8\xa01\\/2))))"  # a word with a no-break space


def read_split(folder, split):
    return list(DocBin().from_disk(folder / f"{split}.spacy").get_docs(spacy.blank("en").vocab))


def write_jsonl(path, records):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf8") as file_:
        file_.write("".join(json.dumps(record) + "\n" for record in records))
    return path


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf8")
    return path


# --- SST trees ------------------------------------------------------------------------------------------


def test_every_node_of_a_tree_is_a_phrase_root_first():
    assert canonical.sst_phrases(TOY_TREE) == [
        (3, "It works ( 8\xa01/2"),
        (2, "It"),
        (4, "works ( 8\xa01/2"),
        (4, "works"),
        (2, "( 8\xa01/2"),
        (2, "("),
        (2, "8\xa01/2"),
    ]
    assert canonical.sst_record(TOY_TREE) == {"text": "It works ( 8\xa01/2", "label": 4, "label_text": "positive"}


@pytest.mark.parametrize("tree,message", [
    ("(3 (2 It)", "the brackets do not balance"),
    ("(3 (2 It)))", "a ')' closes no node"),
    ("(7 It)", "expected a class 0-4 after '(', got '7'"),
    ("((2 It))", "expected a class 0-4 after '(', got '('"),
    ("(2 It) (3 works)", "a second tree starts"),
    ("(2 (3 ) (2 It))", "a node of class 3 has no words"),
    ("It (2 works)", "'It' lies outside the tree's brackets"),
    ("   ", "no tree on the line"),
])
def test_malformed_trees_say_what_is_wrong(tree, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        canonical.sst_phrases(tree)


def test_a_bad_tree_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(f"{TOY_TREE}\n\n(2 (2 fine) (3 still fine)\n", encoding="utf8")
    with pytest.raises(DataError, match=f"{path}:3: the brackets do not balance"):
        corpora.read_phrases(path)
    with pytest.raises(DataError, match="missing.txt: cannot be read"):
        corpora.read_phrases(tmp_path / "missing.txt")


def test_phrases_train_and_whole_sentences_evaluate(tmp_path):
    trees = write_lines(tmp_path / "train.txt", [TOY_TREE, "(0 (1 Dull) (0 .))"])
    sentences = write_jsonl(tmp_path / "dev.jsonl", [{"text": "It works .", "label": 4}, {"text": "Bad", "label": 1}])
    corpora.convert("textcat", tmp_path / "corpus", [trees], sentences, dev=[sentences], phrases=True)
    train = read_split(tmp_path / "corpus", "train")
    assert [doc.text for doc in train][:2] == ["It works ( 8\xa01/2", "It"] and len(train) == 7 + 3
    assert [max(doc.cats, key=doc.cats.get) for doc in train[7:]] == ["1", "2", "1"]
    assert list(train[0].cats) == ["1", "2", "3", "4", "5"] and train[0].cats["4"] == 1.0
    for split in ("dev", "test"):
        assert [doc.text for doc in read_split(tmp_path / "corpus", split)] == ["It works .", "Bad"]


def test_phrases_need_dev_sentences(tmp_path, capsys):
    trees = write_lines(tmp_path / "train.txt", [TOY_TREE])
    with pytest.raises(SystemExit):
        corpora.convert("textcat", tmp_path / "corpus", [trees], trees, phrases=True)
    assert "give the dev sentences as dev" in capsys.readouterr().err
    assert not (tmp_path / "corpus").exists()


def test_every_labelled_phrase_of_the_real_training_trees(shared_data):
    """8,544 training sentences; one phrase per '(' of train.txt, repeats
    kept; each sentence's root is the JSONL record, but for the 3 sentences
    whose no-break-space token ("8 1/2") the offline copy lost."""
    sst = shared_data / "stars" / "sst5"
    tree_file = sst / "ptb" / "train.txt"
    phrases = corpora.read_phrases(tree_file)
    assert len(phrases) == tree_file.read_text(encoding="utf8").count("(") == 318582
    assert len({record["text"] for record in phrases}) == 159274
    assert {record["label"] for record in phrases} == {1, 2, 3, 4, 5}
    trees = [line for line in tree_file.read_text(encoding="utf8").splitlines() if line.strip()]
    roots = [canonical.sst_phrases(tree)[0] for tree in trees]
    sentences = list(srsly.read_jsonl(sst / "sst5_train.jsonl"))
    assert len(roots) == len(sentences) == 8544
    assert [label + 1 for label, _ in roots] == [record["label"] for record in sentences]
    differ = [(text, record["text"]) for (_, text), record in zip(roots, sentences) if text != record["text"]]
    assert len(differ) == 3 and all("\xa0" in ours and "\xa0" not in theirs for ours, theirs in differ)


# --- IMDB -------------------------------------------------------------------------------------------------


def imdb_rows(split, n):
    return [{"text": f"review {split} {i}", "label": 10 - i % 10, "sentiment": "pos" if i % 2 else "neg",
             "id": f"{split}_{i}"} for i in range(n)]


def test_imdb_classes_come_from_the_sentiment_field_of_gzipped_jsonl(tmp_path):
    train = write_jsonl(tmp_path / "imdb_train.jsonl.gz", imdb_rows("train", 40))
    test = write_jsonl(tmp_path / "imdb_test.jsonl.gz", imdb_rows("test", 10))
    corpora.convert("textcat", tmp_path / "corpus", [train], test, dev_share=0.25, label_field="sentiment")
    docs = {split: read_split(tmp_path / "corpus", split) for split in ("train", "dev", "test")}
    assert [len(docs[split]) for split in ("train", "dev", "test")] == [30, 10, 10]
    assert all(list(doc.cats) == ["neg", "pos"] and sum(doc.cats.values()) == 1.0 for split in docs.values()
               for doc in split)
    gold = {row["text"]: row["sentiment"] for row in imdb_rows("train", 40) + imdb_rows("test", 10)}
    assert all(doc.cats[gold[doc.text]] == 1.0 for split in docs.values() for doc in split)


@pytest.mark.parametrize("row,message", [
    ({"text": "no sentiment", "label": 3}, "missing field(s) sentiment"),
    ({"text": "a list", "label": 3, "sentiment": ["pos"]}, "'sentiment' must be a string or an integer"),
])
def test_a_bad_label_field_is_named_by_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "imdb_train.jsonl.gz", imdb_rows("train", 2) + [row])
    with pytest.raises(DataError) as err:
        corpora.read_records(path, "textcat", label_field="sentiment")
    assert f"{path}:3: {message}" in str(err.value)


def test_real_imdb_files_read_as_pos_and_neg(shared_data):
    for split in ("train", "test"):
        records = corpora.read_records(shared_data / "stars" / "imdb" / f"imdb_{split}.jsonl.gz", "textcat",
                                       label_field="sentiment")
        assert len(records) == datasets.DATASETS["imdb"].counts[split] == 25000
        assert sum(record["label"] == "pos" for record in records) == sum(record["label"] == "neg" for record in records)


def test_aclimdb_files_become_the_offline_copys_records():
    files = [("aclImdb/train/pos/10_9.txt", "Great.<br />"), ("aclImdb/train/neg/2_1.txt", " Awful "),
             ("aclImdb/train/pos/9_7.txt", "Fine"), ("aclImdb/test/neg/0_4.txt", "Meh"),
             ("aclImdb/train/unsup/5_0.txt", "unlabelled"), ("aclImdb/imdb.vocab", "the\nand")]
    assert canonical.imdb_records(files) == {
        "train": [{"text": " Awful ", "label": 1, "sentiment": "neg", "id": "train_neg_2"},
                  {"text": "Fine", "label": 7, "sentiment": "pos", "id": "train_pos_9"},
                  {"text": "Great.<br />", "label": 9, "sentiment": "pos", "id": "train_pos_10"}],
        "test": [{"text": "Meh", "label": 4, "sentiment": "neg", "id": "test_neg_0"}],
    }


def test_downloads_are_written_in_their_assets_formats(tmp_path):
    rows = [{"text": "a", "label": 1}, {"text": "b", "label": 10}]
    datasets.write_split(tmp_path / "imdb_train.jsonl.gz", rows)
    assert list(srsly.read_gzip_jsonl(tmp_path / "imdb_train.jsonl.gz")) == rows
    datasets.write_split(tmp_path / "trees.txt", [TOY_TREE, "(2 x)"])
    assert (tmp_path / "trees.txt").read_text(encoding="utf8") == f"{TOY_TREE}\n(2 x)\n"
    datasets.write_split(tmp_path / "plain.jsonl", rows)
    assert list(srsly.read_jsonl(tmp_path / "plain.jsonl")) == rows


# --- SARC pair ids ---------------------------------------------------------------------------------------


def test_every_doc_keeps_its_group(tmp_path):
    rows = [{"text": f"reply {pair}{side}", "label": "SARCASM" if side == "a" else "NOT_SARCASM", "pair_id": pair}
            for pair in range(20) for side in "ab"]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    corpora.convert("textcat", tmp_path / "corpus", [path], path, dev_share=0.25, group_by="pair_id")
    pair_of = {row["text"]: row["pair_id"] for row in rows}
    for split in ("train", "dev", "test"):
        docs = read_split(tmp_path / "corpus", split)
        assert docs and all(doc.user_data["group"] == pair_of[doc.text] for doc in docs)
        assert all(sum(other.user_data["group"] == doc.user_data["group"] for other in docs) == 2 for doc in docs)
    corpora.convert("textcat", tmp_path / "plain", [path], path, dev_share=0.25)
    assert all("group" not in doc.user_data for doc in read_split(tmp_path / "plain", "train"))


def test_reddit_rows_become_pairs_with_context_without_sarc_test_replies():
    rows = [{"post_id": "p1", "post": "Title one", "reply": "Sure, great idea", "sarcasm": "1"},
            {"post_id": "p1", "post": "Title one", "reply": "I disagree", "sarcasm": "0"},
            {"post_id": "p2", "post": "Title two", "reply": "Held OUT reply", "sarcasm": "0"},
            {"post_id": "p2", "post": "Title two", "reply": "oh wonderful", "sarcasm": "1"}]
    records = canonical.reddit_records(rows, held_out={"held out reply"})
    assert records == [
        {"text": "Sure, great idea", "label": "SARCASM", "context": ["Title one"], "post_id": "p1"},
        {"text": "I disagree", "label": "NOT_SARCASM", "context": ["Title one"], "post_id": "p1"},
    ]  # the whole pair p2 goes: one of its replies is a SARC-pol test reply
