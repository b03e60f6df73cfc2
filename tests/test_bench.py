"""Smoke slices of the speed and scaling benchmarks: they run end to end and
write sensible figures and tables (the real runs are not part of CI)."""
import json
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "project" / "scripts" / "bench_speed.py"
SCALE_SCRIPT = REPO / "project" / "scripts" / "bench_scale.py"


def test_speed_benchmark_smoke(shared_data, tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("intro\n<!-- bench-speed:start -->\nold\n<!-- bench-speed:end -->\noutro\n")
    systems = ["spaCy TextCatBOW.v3", "spacy-rnn LSTM (textcat_lstm.cfg)", "fastText (1 thread, bigrams, dim 50)"]
    texts = [shared_data / "stars" / "sst5" / "sst5_train.jsonl", shared_data / "stars" / "marc_en" / "marc_en_train.jsonl"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *[arg for path in texts for arg in ("--texts", str(path))], "--n-docs", "60",
         "--batch-size", "16", "--pipe-batch-size", "32", "--repeats", "1", "--load", "0", "--load", "1",
         *[arg for system in systems for arg in ("--system", system)], "--out", str(tmp_path / "speed"),
         "--doc", str(doc)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "speed.json").read_text())
    assert [result["name"] for result in figures["results"]] == ["sst5", "marc_en"]
    for table in figures["results"]:
        assert sorted(table["rows"]) == ["0", "1"]  # idle, one busy process
        for rows in table["rows"].values():
            assert [row["system"] for row in rows] == systems
            for row in rows:
                assert row["docs"] == 60 and row["words"] > 500
                assert row["train_wps"] > 0 and row["pipe_wps"] > 0 and row["train_words_per_cpu_s"] > 0
        for row in table["roofline"]:
            assert 0 < row["infer_gflops"] < row["matmul_gflops_one_thread"] * 1.5
            assert 0 < row["dense_gflops"] < row["matmul_gflops_one_thread"] * 1.5
    text = doc.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert "| spacy-rnn LSTM (textcat_lstm.cfg) |" in text and "#### sst5: 60 texts" in text
    assert "training words/s, 1 busy process" in text


def test_scaling_benchmark_smoke(tmp_path):
    doc = tmp_path / "scaling.md"
    doc.write_text("intro\n<!-- bench-scale:start -->\nold\n<!-- bench-scale:end -->\noutro\n")
    result = subprocess.run(
        [sys.executable, str(SCALE_SCRIPT), "--workdir", str(tmp_path / "work"), "--n-records", "3000",
         "--job-records", "1000", "--blocksize", "8KiB", "--train-steps", "2", "--max-workers", "2",
         "--out", str(tmp_path / "scale.json"), "--doc", str(doc), "--plot", str(tmp_path / "scaling.png")],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "scale.json").read_text())
    size = (tmp_path / "work" / "reviews-3000.jsonl").stat().st_size
    assert figures["planning"]["records"] == 3000 and figures["planning"]["partitions"] == -(-size // 8192)
    assert 0 < figures["planning"]["plan_s"] < 1
    assert [(run["workers"], run["records"]) for run in figures["strong"]] == [(1, 3000), (2, 3000)]
    assert [(run["workers"], run["records"]) for run in figures["weak"]] == [(1, 1500), (2, 3000)]
    job = [(run["workers"], run["start_method"]) for run in figures["job"]]
    assert job == [(1, "spawn"), (2, "spawn"), (2, "fork")]
    assert figures["pipe"][1]["threads"] == 1  # one process on torch's default threads, then on one
    runs = figures["job"] + figures["strong"] + figures["weak"]
    assert all(run["threads"] == 1 and 0 < run["cluster_start_s"] < run["first_task_s"] < run["wall_s"] for run in runs)
    text = doc.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert "| `spacy_rnn.annotate` | 2 × 1 |" in text and "**Weak scaling**: 1,500 records per worker" in text
    assert (tmp_path / "scaling.png").read_bytes().startswith(b"\x89PNG")
