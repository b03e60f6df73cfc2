"""The title studies' checks: the choice of decoding settings on dev
(experiments/scripts/decoding.py), the reviews of other products (the
titles-other download's filter) and the title baselines on another test file."""
import json
import sys

import pytest
import spacy
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

from conftest import REPO
from spacy_rnn import set_target

PAIRS = [
    ("love this dress it fits well", "love this dress"),
    ("the top runs small and the fabric is thin", "runs small"),
    ("great jeans for the price", "great jeans"),
    ("the color is not as pictured", "not as pictured"),
]


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "experiments" / "scripts"))
    monkeypatch.syspath_prepend(str(REPO / "project" / "scripts"))
    import decoding
    from rnnproject import baselines, canonical

    return decoding, canonical, baselines


def write_pairs(path, pairs):
    path.write_text("".join(json.dumps({"text": text, "target": target}) + "\n" for text, target in pairs))
    return path


@pytest.fixture
def title_model(tmp_path):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    model = {"@architectures": "spacy_rnn.Seq2Seq.v2", "decoder": "copy", "width": 32, "target_width": 16,
             "tok2vec": {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 32, "attrs": ["NORM"], "rows": [500]}}
    nlp.add_pipe("rnn_seq2seq", config={"min_freq": 1, "model": model})
    examples = [Example(nlp.make_doc(text), set_target(nlp.make_doc(text), title)) for text, title in PAIRS]
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.02))
    for _ in range(40):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(tmp_path / "model")
    return tmp_path / "model"


def test_settings_grid_tries_greedy_once_per_blocking_and_prior(scripts):
    decoding, _, _ = scripts
    grid = decoding.settings_grid([1, 4], [0.0, 1.0], [0, 3], [0.0, 0.2])
    greedy = [setting for setting in grid if setting["beam_size"] == 1]
    assert len(greedy) == 2 * 2 and {(s["no_repeat_ngram_size"], s["prior_penalty"]) for s in greedy} == {
        (0, 0.0), (0, 0.2), (3, 0.0), (3, 0.2)}
    assert len(grid) == 4 + 2 * 2 * 2
    assert {"beam_size": 4, "length_penalty": 0.0, "no_repeat_ngram_size": 3, "prior_penalty": 0.2} in grid


def test_best_setting_breaks_ties_by_distinct_outputs(scripts):
    decoding, _, _ = scripts
    results = [{"rougeL": 0.15, "distinct": 0.2}, {"rougeL": 0.15, "distinct": 0.6}, {"rougeL": 0.14, "distinct": 0.9}]
    assert decoding.best_setting(results) is results[1]
    assert decoding.best_setting(results, min_distinct=0.7) is results[2]
    with pytest.raises(SystemExit):
        decoding.best_setting(results, min_distinct=0.95)


def test_decoding_script_scores_each_setting_and_saves_the_best(scripts, title_model, tmp_path, monkeypatch):
    decoding, _, _ = scripts
    dev = write_pairs(tmp_path / "dev.jsonl", PAIRS)
    out, saved = tmp_path / "metrics", tmp_path / "tuned"
    monkeypatch.setattr(sys, "argv", ["decoding.py", str(title_model), str(dev), str(out), "--beam-sizes", "1 3",
                                      "--length-penalties", "0 1", "--no-repeat", "0 2", "--prior-penalties", "0 0.5",
                                      "--save", str(saved)])
    with pytest.raises(SystemExit) as exit_info:
        decoding.typer.run(decoding.main)
    assert exit_info.value.code == 0
    record = json.loads((out / "decoding.json").read_text())
    assert len(record["settings"]) == 12
    best = max(record["settings"], key=lambda s: (round(s["rougeL"], 6), s["distinct"]))
    assert record["best"] == {key: best[key] for key in decoding.SETTING_KEYS}
    assert all(0 <= s["rougeL"] <= 1 and 0 < s["distinct"] <= 1 for s in record["settings"])
    assert (out / "decoding.png").stat().st_size > 0
    assert "(best)" in (out / "decoding.md").read_text()
    cfg = spacy.load(saved).get_pipe("rnn_seq2seq").cfg
    assert {key: cfg[key] for key in decoding.SETTING_KEYS} == record["best"]
    # the trained model itself keeps its settings
    assert spacy.load(title_model).get_pipe("rnn_seq2seq").cfg["beam_size"] == 4
    # run again onto the same folder: it is replaced whole, and nothing is left beside it
    monkeypatch.setattr(sys, "argv", ["decoding.py", str(title_model), str(dev), str(out), "--beam-sizes", "2",
                                      "--length-penalties", "1", "--no-repeat", "0", "--save", str(saved)])
    with pytest.raises(SystemExit) as exit_info:
        decoding.typer.run(decoding.main)
    assert exit_info.value.code == 0
    assert spacy.load(saved).get_pipe("rnn_seq2seq").cfg["beam_size"] == 2
    assert sorted(path.name for path in saved.parent.iterdir() if path.name.startswith(".tuned")) == []


@pytest.mark.parametrize(
    "options,message",
    [(["--beam-sizes", ""], "The grid is empty"), (["--prior-penalties", "0 0.1"], "saved without the counts")],
)
def test_decoding_script_explains_what_it_cannot_do(scripts, title_model, tmp_path, monkeypatch, capsys, options,
                                                    message):
    decoding, _, _ = scripts
    nlp = spacy.load(title_model)
    nlp.get_pipe("rnn_seq2seq").target_vocab.counts = None  # as saved by an older version
    nlp.to_disk(tmp_path / "old")
    dev = write_pairs(tmp_path / "dev.jsonl", PAIRS)
    monkeypatch.setattr(sys, "argv", ["decoding.py", str(tmp_path / "old"), str(dev), str(tmp_path / "out"),
                                      "--prior-penalties", "0", *options])
    with pytest.raises(SystemExit) as exit_info:
        decoding.typer.run(decoding.main)
    assert exit_info.value.code == 1 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_other_product_titles_leave_out_worn_products_and_default_titles(scripts):
    _, download, _ = scripts

    def row(category, title, body="works well", review_id="en_1"):
        return {"review_body": body, "review_title": title, "product_category": category, "stars": 4,
                "review_id": review_id, "language": "en"}

    rows = [row("electronics", "Good cable", review_id="en_1"), row("apparel", "Nice shirt"), row("shoes", "Comfy"),
            row("kitchen", "Five Stars"), row("toy", " "), row("grocery", "Tasty", body=""),
            row("pc", "one star", review_id="en_7"), row("office_product", "Sturdy stapler", review_id="en_8")]
    records = download.other_product_title_records(rows)
    assert records == [
        {"text": "works well", "target": "Good cable", "category": "electronics", "stars": 4, "source_id": "en_1"},
        {"text": "works well", "target": "Sturdy stapler", "category": "office_product", "stars": 4,
         "source_id": "en_8"},
    ]


def test_marc_training_rows_leave_out_dev_and_test_reviews_and_repeats(scripts, tmp_path):
    _, download, _ = scripts

    def row(review_id, body):
        return {"review_id": review_id, "review_body": body}

    held_out = [row("en_test", "broke in a week"), row("en_dev", "fits my desk")]
    first = tmp_path / "train_pc.json"
    first.write_text("".join(json.dumps(r) + "\n" for r in [
        row("en_1", "fast and quiet"), row("en_test", "another body, same id"), row("en_2", " broke in a week "),
        row("en_1", "fast and quiet")]))
    second = tmp_path / "train_toy.json"
    second.write_text("".join(json.dumps(r) + "\n" for r in [row("en_3", "fast and quiet"), row("en_4", "fun")]))
    rows = download.marc_train_rows([first, second], held_out)
    assert [r["review_id"] for r in rows] == ["en_1", "en_4"]


def test_convert_joins_training_files(scripts, tmp_path):
    from rnnproject import corpora  # beside the scripts the fixture put on sys.path

    clothing = write_pairs(tmp_path / "clothing.jsonl", PAIRS)
    other = write_pairs(tmp_path / "other.jsonl", [("this cable charges my phone fast", "fast cable")])
    corpora.convert("seq2seq", tmp_path / "corpus", [clothing, other], other, dev=[clothing, other])
    for split, n in (("train", 5), ("dev", 5), ("test", 1)):
        lines = (tmp_path / "corpus" / f"{split}.jsonl").read_text().splitlines()
        assert len(lines) == n and json.loads(lines[-1])["target"] == "fast cable"


def test_title_baselines_score_another_test_file(scripts, tmp_path):
    _, _, baselines = scripts
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_pairs(corpus / "train.jsonl", PAIRS)
    write_pairs(corpus / "test.jsonl", PAIRS[:2])
    other = write_pairs(tmp_path / "other.jsonl", [("this cable charges my phone fast", "fast cable"),
                                                   ("the stapler jams every day", "jams"),
                                                   ("tasty coffee", "tasty")])
    records = {record["system"]: record for record in baselines.title_baselines(corpus, tmp_path / "out", other)}
    first_words = records[baselines.TITLE_BASELINES["first_words"]]
    assert first_words["n"] == 3
    predictions = [json.loads(line) for line in (tmp_path / "out" / "first_words_predictions.jsonl").open()]
    assert [p["pred"] for p in predictions] == ["this cable charges my", "the stapler jams every", "tasty coffee"]
