"""The benchmarks project (benchmarks/project.yml) end to end with smoke-size
vars on slices of the real data, in a copy of the project beside copies of
the README and docs/ (the benches replace tables there): each bench writes
sensible figures, and replaces only the tables between its markers (the real
runs are not part of CI)."""
import json
import re
import shutil

import pytest

from conftest import REPO, data_dir
from test_project import QUIET_THREADS, SMOKE_TIMEOUT, copy_project, load_json, run

SPEED_SYSTEMS = ["spaCy TextCatBOW.v3", "spacy-rnn LSTM (textcat_lstm.cfg)", "fastText (1 thread, bigrams, dim 50)"]
PAGES = {"README.md": ["bench-summary"], "docs/performance.md": ["bench-accuracy", "bench-speed"],
         "docs/pretraining.md": ["confirm", "bench-accuracy"], "docs/scaling.md": ["bench-scale"]}


def outside(text: str, markers) -> str:
    """A page without what lies between the lines of its markers."""
    for marker in markers:
        start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
        text = text[:text.index(start)] + text[text.index(end):]
    return text


@pytest.fixture(scope="module")
def benchmarks(tmp_path_factory):
    """The `all` workflow with smoke-size vars, run once: the project folder."""
    if not data_dir().is_dir():
        pytest.skip(f"no real data: SPACY_RNN_DATA={data_dir()} is not a directory (point it at shared/data)")
    root = tmp_path_factory.mktemp("benchmarks")
    shutil.copytree(REPO / "docs", root / "docs")
    shutil.copy(REPO / "README.md", root / "README.md")
    project = copy_project(root, "benchmarks")
    variables = {
        "data_dir": data_dir(), "datasets": "sst5", "configs": "textcat_lstm.cfg", "baselines": "tfidf", "seeds": "0",
        "max_steps": 4, "limit_train": 200, "limit_eval": 50, "pretrain_configs": "pretrain_textcat_lstm_w256.cfg",
        "pretrain_datasets": "marc", "pretrain_max_words": 2000,
        "movies_epochs": 1, "products_epochs": 1, "reddit_epochs": 1,
        "confirm_configs": "pretrain_textcat_lstm_w256_frozen.cfg", "confirm_datasets": "sst5", "speed_docs": 60,
        "speed_repeats": 1, "speed_loads": "0 1",
        "speed_systems": ";".join(SPEED_SYSTEMS), "speed_roofline": "textcat_lstm.cfg", "memory_tokens": 300, "scale_records": 3000, "scale_job_records": 1000,
        "scale_repeats": 1, "scale_blocksize": "8KiB", "scale_train_steps": 2, "scale_max_workers": 2,
        "scale_workdir": root / "scale",
    }
    result = run(["-m", "spacy", "project", "run", "all", str(project),
                  *[f"--vars.{name}={value}" for name, value in variables.items()]],
                 env=QUIET_THREADS, timeout=SMOKE_TIMEOUT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return project


def test_benches_replace_only_the_tables_between_their_markers(benchmarks):
    root = benchmarks.parent
    for page, markers in PAGES.items():
        text = (root / page).read_text(encoding="utf8")
        assert outside(text, markers) == outside((REPO / page).read_text(encoding="utf8"), markers), page
        assert text != (REPO / page).read_text(encoding="utf8"), f"{page}: no table replaced"


def test_accuracy_and_pretraining_tables(benchmarks):
    accuracy = load_json(benchmarks / "metrics" / "accuracy" / "accuracy.json")
    assert set(accuracy["sst5"]) == {"textcat_lstm", "tfidf"} and len(accuracy["sst5"]["textcat_lstm"]) == 1
    pretraining = load_json(benchmarks / "metrics" / "pretraining" / "accuracy.json")
    config = "pretrain_textcat_lstm_w256"
    assert set(pretraining) == {"marc"}
    assert set(pretraining["marc"]) == {config, f"{config}+pretrained", "tfidf", "fasttext"}
    table = (benchmarks / "metrics" / "pretraining" / "accuracy.md").read_text(encoding="utf8")
    assert " vs itself from scratch " in table
    # the header names each encoder with its pretraining budget (pretrain.json beside it)
    assert re.search(r"encoder of marc: training/pretrain/products/model-last\.bin "
                     r"\([\d,]+ words × 1 epoch, spacy_rnn\.BiLM\.v2, \d+ minutes at [\d,]+ words/s\)", table), table[:2000]
    # the confirm bench: the frozen-features config from scratch and from the movies encoder, in its own block
    confirm = load_json(benchmarks / "metrics" / "confirm" / "accuracy.json")
    frozen = "pretrain_textcat_lstm_w256_frozen"
    assert set(confirm["sst5"]) == {frozen, f"{frozen}+pretrained", "tfidf"}
    block = (benchmarks.parent / "docs" / "pretraining.md").read_text(encoding="utf8").split("<!-- confirm:start -->")[1]
    assert f"- `{frozen}` pretrained " in block.split("<!-- confirm:end -->")[0]
    summary = (benchmarks.parent / "README.md").read_text(encoding="utf8")
    assert "| spacy-rnn `textcat_lstm.cfg` |" in summary.split("<!-- bench-summary:start -->")[1]


def test_speed_benchmark_figures(benchmarks):
    figures = json.loads((benchmarks / "metrics" / "speed.json").read_text())
    assert [result["name"] for result in figures["results"]] == ["sst5", "marc_en"]
    for table in figures["results"]:
        assert sorted(table["rows"]) == ["0", "1"]  # idle, one busy process
        for rows in table["rows"].values():
            assert [row["system"] for row in rows] == SPEED_SYSTEMS
            for row in rows:
                assert row["docs"] == 60 and row["words"] > 500
                assert row["train_wps"] > 0 and row["pipe_wps"] > 0 and row["train_words_per_cpu_s"] > 0
        assert [row["system"] for row in table["roofline"]] == ["LSTM w128 (textcat_lstm.cfg)"]
        for row in table["roofline"]:
            assert 0 < row["infer_gflops"] < row["matmul_gflops_one_thread"] * 1.5
            assert 0 < row["dense_gflops"] < row["ceiling_fp32"] * 1.5 and row["ceiling_bf16"] > 0
    environment = figures["machine"]["environment"]
    assert environment["cpu_model"] and environment["torch_cpu_capability"] and environment["blis_kernels"]
    assert figures["machine"]["thinc_gemm"] in ("blis", "numpy") and figures["machine"]["keep_env"] is False
    text = (benchmarks.parent / "docs" / "performance.md").read_text(encoding="utf8")
    assert "Environment of the run" in text and f"CPU: {environment['cpu_model']}" in text
    assert "| spacy-rnn LSTM (textcat_lstm.cfg) |" in text and "#### sst5: 60 texts" in text
    assert "training words/s, 1 busy process" in text


def test_memory_table_has_every_case(benchmarks):
    rows = [line for line in (benchmarks / "metrics" / "memory.md").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 11 and all(row.endswith(" KiB |") for row in rows[1:])


def test_scaling_benchmark_figures(benchmarks):
    root = benchmarks.parent
    figures = json.loads((benchmarks / "metrics" / "scale.json").read_text())
    size = (root / "scale" / "reviews-3000.jsonl").stat().st_size
    assert figures["planning"]["records"] == 3000 and figures["planning"]["partitions"] == -(-size // 8192)
    assert 0 < figures["planning"]["plan_s"] < 1
    assert [(run["workers"], run["records"]) for run in figures["strong"]] == [(1, 3000), (2, 3000)]
    assert [(run["workers"], run["records"]) for run in figures["weak"]] == [(1, 1500), (2, 3000)]
    job = [(run["workers"], run["start_method"]) for run in figures["job"]]
    assert job == [(1, "spawn"), (2, "spawn"), (2, "fork")]
    assert figures["pipe"][1]["threads"] == 1  # one process on torch's default threads, then on one
    runs = figures["job"] + figures["strong"] + figures["weak"]
    assert all(run["threads"] == 1 and 0 < run["cluster_start_s"] < run["first_task_s"] < run["wall_s"] for run in runs)
    text = (root / "docs" / "scaling.md").read_text(encoding="utf8")
    assert "| `spacy_rnn.annotate` | 2 × 1 |" in text and "**Weak scaling**: 1,500 records per worker" in text
    assert (root / "docs" / "scaling.png").read_bytes().startswith(b"\x89PNG")
