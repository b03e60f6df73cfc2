"""A smoke slice of the speed benchmark: it runs end to end and writes
sensible figures and README tables (the real run is not part of CI)."""
import json
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "project" / "scripts" / "bench_speed.py"


def test_speed_benchmark_smoke(shared_data, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench-speed:start -->\nold\n<!-- bench-speed:end -->\noutro\n")
    systems = ["spaCy TextCatBOW.v3", "spacy-rnn LSTM (textcat_lstm.cfg)"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--texts", str(shared_data / "stars" / "marc_en" / "marc_en_train.jsonl"), "--n-docs", "60",
         "--batch-size", "16", "--pipe-batch-size", "32",
         "--repeats", "1", "--systems", *systems, "--out", str(tmp_path / "speed"), "--readme", str(readme)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "speed.json").read_text())
    assert [row["system"] for row in figures["rows"]] == systems
    for row in figures["rows"]:
        assert row["words"] > 1000 and row["train_wps"] > 0 and row["pipe_wps"] > 0 and row["peak_rss_mb"] > 0
    for row in figures["roofline"]:
        assert 0 < row["infer_gflops"] < row["matmul_gflops"] * 1.5
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert "| spacy-rnn LSTM (textcat_lstm.cfg) |" in text and "Ratios" in text
