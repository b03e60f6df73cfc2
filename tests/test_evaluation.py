"""The evaluation that the accuracy tables rest on: SARC's pairwise accuracy,
the paired bootstrap interval, the fastText baseline and the bench's tables
(mean ± sd over seeds, the comparison lines in words)."""
import json
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.tokens import DocBin

from conftest import REPO


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks" / "scripts"))
    monkeypatch.syspath_prepend(str(REPO / "project" / "scripts"))
    import bench_accuracy
    from rnnproject import baselines, metrics

    return metrics, baselines, bench_accuracy


def test_pairwise_accuracy_counts_each_pair_once(scripts):
    metrics, _, _ = scripts
    groups = ["a", "a", "b", "b", "c", "c", "d", "e", "e"]
    gold = ["S", "N", "N", "S", "S", "N", "S", "S", "S"]
    scores = [0.9, 0.2, 0.6, 0.4, 0.5, 0.5, 0.9, 0.1, 0.8]  # P(S) of each Doc
    correct = metrics.pairwise_correct(groups, gold, scores, "S")
    # a: right; b: the sincere reply scored higher, wrong; c: a tie, half; d (alone) and e (one label): left out
    assert correct.tolist() == [1.0, 0.0, 0.5]
    # with exclusive classes the other label's scores give the same answer
    assert metrics.pairwise_correct(groups, gold, [1 - s for s in scores], "N").tolist() == [1.0, 0.0, 0.5]


def test_textcat_result_adds_pairwise_only_with_group_ids(scripts):
    metrics, _, _ = scripts
    cats = [{"S": 0.9, "N": 0.1}, {"S": 0.7, "N": 0.3}, {"S": 0.2, "N": 0.8}, {"S": 0.4, "N": 0.6}]
    gold, labels = ["S", "N", "N", "S"], ["S", "N"]
    with_pairs = metrics.textcat_result(["w", "x", "y", "z"], gold, cats, labels, False, [1, 1, 2, 2])
    assert with_pairs["metrics"]["accuracy"] == 0.5  # the second and fourth Docs are wrong
    assert with_pairs["metrics"]["pairwise"] == 1.0 and with_pairs["metrics"]["n_pairs"] == 2
    assert with_pairs["predictions"][3] == {"text": "z", "gold": "S", "pred": "N", "score": 0.6,
                                            "scores": {"S": 0.4, "N": 0.6}, "group": 2}
    assert "pairwise" not in metrics.textcat_result(["w", "x", "y", "z"], gold, cats, labels, False)["metrics"]


def test_paired_bootstrap_known_answers(scripts):
    _, _, bench = scripts
    same = numpy.array([1.0, 0.0, 1.0, 1.0])
    assert bench.paired_bootstrap(same, same) == (0.0, 0.0, 0.0)
    assert bench.paired_bootstrap(numpy.ones(50), numpy.zeros(50)) == (1.0, 1.0, 1.0)
    # 2,000 items: ours alone right on 400, theirs alone on 200. The difference is 0.1; its standard
    # error is sd(d)/sqrt(n) = sqrt(0.3 - 0.01)/sqrt(2000) = 0.01204, so the 95% interval is ~0.1 ± 0.0236.
    ours, theirs = numpy.zeros(2000), numpy.zeros(2000)
    ours[:400] = 1
    theirs[400:600] = 1
    difference, low, high = bench.paired_bootstrap(ours, theirs)
    assert difference == pytest.approx(0.1)
    assert low == pytest.approx(0.1 - 0.0236, abs=0.005) and high == pytest.approx(0.1 + 0.0236, abs=0.005)
    # pairing matters: right on the first 600 against the first 500 differs on only 100 items, so the
    # interval is 0.05 ± 1.96 * sqrt(0.05 - 0.0025) / sqrt(2000) = 0.05 ± 0.0096; unpaired, far wider
    ours, theirs = numpy.zeros(2000), numpy.zeros(2000)
    ours[:600], theirs[:500] = 1, 1
    difference, low, high = bench.paired_bootstrap(ours, theirs)
    assert low == pytest.approx(0.05 - 0.0096, abs=0.003) and high == pytest.approx(0.05 + 0.0096, abs=0.003)
    _, low_unpaired, high_unpaired = bench.paired_bootstrap(ours, numpy.roll(theirs, 1000))
    assert high_unpaired - low_unpaired > 2 * (high - low)


def write_run(out_dir, dataset, seed, key, golds, preds, groups=None):
    folder = out_dir / dataset / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (gold, pred) in enumerate(zip(golds, preds)):
        row = {"text": str(i), "gold": gold, "pred": pred, "score": 0.9, "scores": {"1": 0.9 if pred == "1" else 0.1,
                                                                                   "0": 0.1 if pred == "1" else 0.9}}
        if groups:
            row["group"] = groups[i]
        rows.append(row)
    (folder / f"{key}_predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    accuracy = float(numpy.mean([g == p for g, p in zip(golds, preds)]))
    record = {"accuracy": accuracy, "macro_f1": accuracy - 0.01}
    if groups:
        record["pairwise"] = float(numpy.mean([row["scores"]["1"] > 0.5 for row in rows if row["gold"] == "1"]))
    return record


def test_bench_tables_give_mean_sd_and_say_when_a_difference_is_noise(scripts, tmp_path):
    _, _, bench = scripts
    rng = numpy.random.default_rng(0)
    gold = ["1", "0"] * 200
    groups = [i // 2 for i in range(400)]

    def noisy(accuracy):
        return [g if rng.random() < accuracy else ("0" if g == "1" else "1") for g in gold]

    runs = {"textcat_lstm": [], "textcat_ensemble_lstm_w64": [], "tfidf": [], "bow": []}
    seeds = {key: [] for key in runs}
    for seed in (0, 1, 2):
        for key, accuracy in (("textcat_lstm", 0.70), ("textcat_ensemble_lstm_w64", 0.71), ("bow", 0.70)):
            runs[key].append(write_run(tmp_path, "sarcasm", seed, key, gold, noisy(accuracy), groups))
            seeds[key].append(seed)
    runs["tfidf"].append(write_run(tmp_path, "sarcasm", 0, "tfidf", gold, noisy(0.5), groups))
    seeds["tfidf"].append(0)
    table = bench.markdown(tmp_path, {"sarcasm": runs}, ["textcat_lstm.cfg", "textcat_ensemble_lstm_w64.cfg"],
                           {"sarcasm": seeds}, "header")
    lstm = [100 * run["accuracy"] for run in runs["textcat_lstm"]]
    assert f"| spacy-rnn `textcat_lstm.cfg` | {numpy.mean(lstm):.1f} ± {numpy.std(lstm, ddof=1):.1f} |" in table
    assert f"| TF-IDF + logistic regression | {100 * runs['tfidf'][0]['accuracy']:.1f} |" in table
    assert "| deterministic |" in table and "| pairwise |" in table
    lines = [line for line in table.splitlines() if line.startswith("- ")]
    assert len(lines) == 6  # accuracy and pairwise: the best config against the best baseline, the RNN alone
    # against each baseline
    assert lines[0].startswith("- `textcat_ensemble_lstm_w64`") and "vs spaCy TextCatBOW.v3" in lines[0]
    assert lines[0].endswith("inside the noise (the interval contains 0)")  # 71 vs 70 on 400 Docs
    assert lines[1].startswith("- `textcat_lstm` (the best RNN alone, no n-gram part) ")
    assert "vs TF-IDF + logistic regression 50" in lines[1] and lines[1].endswith(" outside the noise")
    assert "vs spaCy TextCatBOW.v3" in lines[2]
    compact = bench.summary({"sarcasm": runs}, ["textcat_lstm.cfg", "textcat_ensemble_lstm_w64.cfg"])
    assert compact.splitlines()[0] == "| system | SARC 2.0 pol, balanced |"
    assert f"| spacy-rnn `textcat_lstm.cfg` | {numpy.mean(lstm):.1f} ± {numpy.std(lstm, ddof=1):.1f} |" in compact
    assert "fastText" not in compact  # a baseline that was not run has no row


def test_bench_compares_a_pretrained_config_with_itself_from_scratch(scripts, tmp_path):
    _, _, bench = scripts
    rng = numpy.random.default_rng(1)
    gold = ["1", "0"] * 200
    config, pretrained = "pretrain_textcat_lstm_w256", "pretrain_textcat_lstm_w256+pretrained"
    runs, seeds = {config: [], pretrained: [], "tfidf": []}, {config: [], pretrained: [], "tfidf": []}
    for key, accuracy, run_seeds in ((config, 0.4, (0, 1)), (pretrained, 0.6, (0, 1)), ("tfidf", 0.4, (0,))):
        for seed in run_seeds:
            pred = [g if rng.random() < accuracy else ("0" if g == "1" else "1") for g in gold]
            runs[key].append(write_run(tmp_path, "sarcasm", seed, key, gold, pred, None))
            seeds[key].append(seed)
    table = bench.markdown(tmp_path, {"sarcasm": runs}, [f"{config}.cfg"], {"sarcasm": seeds}, "header")
    assert f"| spacy-rnn `{config}.cfg`, pretrained encoder | " in table
    lines = [line for line in table.splitlines() if line.startswith("- ")]
    assert len(lines) == 2  # the best (the pretrained RNN alone) against TF-IDF; pretrained against scratch
    assert lines[0].startswith(f"- `{config}` pretrained ") and "vs TF-IDF + logistic regression" in lines[0]
    assert lines[1].startswith(f"- `{config}` pretrained ") and " vs itself from scratch " in lines[1]
    assert lines[1].endswith(" outside the noise")  # 60 vs 40 on 400 Docs
    # without a baseline (e.g. the pretrained and the scratch side of one config alone) the pair is still compared
    alone = bench.markdown(tmp_path, {"sarcasm": {key: runs[key] for key in (config, pretrained)}},
                           [f"{config}.cfg"], {"sarcasm": seeds}, "header")
    assert [line for line in alone.splitlines() if line.startswith("- ")] == lines[1:]
    compact = bench.summary({"sarcasm": runs}, [f"{config}.cfg"])
    assert [line.split(" | ")[0] for line in compact.splitlines()[2:]] == [
        f"| spacy-rnn `{config}.cfg`", f"| spacy-rnn `{config}.cfg`, pretrained encoder", "| TF-IDF + logistic regression"]
    assert bench.systems_of("sst5", [f"{config}.cfg"], ["tfidf"], {"sst5": tmp_path}) == [
        f"{config}.cfg", f"{config}.cfg+pretrained", "tfidf"]
    assert bench.systems_of("marc", [f"{config}.cfg"], ["tfidf"], {"sst5": tmp_path}) == [f"{config}.cfg", "tfidf"]
    assert bench.systems_of("sst5", [f"{config}.cfg"], [], {"sst5": tmp_path}, scratch=False) == [
        f"{config}.cfg+pretrained"]
    assert bench.key_of(f"{config}.cfg+pretrained") == pretrained


@pytest.mark.parametrize("encoders,message", [
    ("sst5", "Bad --encoders entry 'sst5': write dataset=file"),
    ("films=x.bin", "Bad --encoders entry 'films=x.bin'"),
    ("sst5=no/such/encoder.bin", "No pretrained encoder file no/such/encoder.bin for sst5: run the pretrain-*"),
])
def test_bench_encoders_that_cannot_load_are_explained(scripts, capsys, encoders, message):
    _, _, bench = scripts
    with pytest.raises(SystemExit):
        bench.parse_encoders(encoders, check_files=True)
    assert message in capsys.readouterr().err


def test_bench_refuses_encoders_for_a_config_without_pretraining_before_any_training(tmp_path):
    encoder = tmp_path / "encoder.bin"
    encoder.write_bytes(b"weights")
    result = subprocess.run([sys.executable, "scripts/bench_accuracy.py", str(tmp_path / "out"), "--datasets", "sst5",
                             "--configs", "textcat_lstm.cfg", "--encoders", f"sst5={encoder}"],
                            cwd=REPO / "benchmarks", capture_output=True, text=True, timeout=300)  # else it trains
    assert result.returncode == 1 and "textcat_lstm.cfg has no [pretraining] block" in result.stderr
    assert not (tmp_path / "out").exists()


def test_fasttext_baseline_learns_a_toy_task_and_keeps_pair_ids(scripts, tmp_path):
    _, baselines, _ = scripts
    nlp = spacy.blank("en")
    words = {"POS": ["great", "lovely", "superb"], "NEG": ["awful", "boring", "dreadful"]}
    rng = numpy.random.default_rng(0)
    for split, n in (("train", 300), ("dev", 60), ("test", 60)):
        docbin = DocBin(store_user_data=True)
        for i in range(n):
            label = "POS" if i % 2 else "NEG"
            doc = nlp.make_doc(f"the film was {rng.choice(words[label])} and long")
            doc.cats = {"POS": float(label == "POS"), "NEG": float(label == "NEG")}
            doc.user_data["group"] = i // 2
            docbin.add(doc)
        docbin.to_disk(tmp_path / f"{split}.spacy")
    record = baselines.fasttext_baseline(tmp_path, tmp_path / "out", stars=False, seed=0)
    assert record["accuracy"] == 1.0 and record["pairwise"] == 1.0
    assert record["settings"]["epoch"] in baselines.FASTTEXT_GRID["epoch"]
    again = baselines.fasttext_baseline(tmp_path, tmp_path / "again", False, seed=1, settings=record["settings"])
    assert again["settings"] == record["settings"] and again["seed"] == 1
    rows = [json.loads(line) for line in (tmp_path / "out" / "fasttext_predictions.jsonl").read_text().splitlines()]
    assert rows[0]["text"] == "the film was " + rows[0]["text"].split()[3] + " and long" and "group" in rows[0]


def test_spacy_baselines_not_chosen_leave_no_records_behind(scripts, tmp_path):
    """baselines.py --spacy bow: an earlier run's ensemble and BiLSTM records
    are removed (a report would show them beside this run's), the rest kept."""
    _, baselines, _ = scripts
    kept = ["bow.json", "bow_confusion.png", "tfidf.json", "fasttext.json", "rnn.json", "rnn_pretrained.json"]
    dropped = ["ensemble.json", "ensemble_predictions.jsonl", "bilstm.json", "bilstm_learning_curve.png"]
    for name in kept + dropped:
        (tmp_path / name).write_text("{}")
    baselines.drop_unchosen_records(tmp_path, ["bow"])
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(kept)


def test_baselines_script_refuses_an_unknown_spacy_baseline(tmp_path):
    result = subprocess.run([sys.executable, "scripts/baselines.py", "sarcasm", "--spacy", "bow cnn",
                             "--metrics", str(tmp_path)], cwd=REPO / "project", capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1 and "Unknown spaCy baseline cnn: choose from bow, ensemble, bilstm." in result.stderr
    assert not any(tmp_path.iterdir())
