"""spacy_rnn.annotate: a saved pipeline over JSONL/Parquet partitions on a
2-worker Dask LocalCluster, against plain nlp.pipe."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.dataset
import pyarrow.parquet as pq
import pytest
import spacy
from distributed import Client, LocalCluster

import spacy_rnn.annotate as annotate_module
from spacy_rnn.annotate import AnnotateError, annotate, main
from tiny_pipeline import TEXTS, make_pipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The saved pipeline and its plain nlp.pipe predictions of TEXTS."""
    path = tmp_path_factory.mktemp("annotate") / "pipeline"
    make_pipeline().to_disk(path)
    nlp = spacy.load(path)
    expected = [{"cats": doc.cats, "generated": doc._.generated} for doc in nlp.pipe(TEXTS, batch_size=16)]
    return path, expected


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as dask_client:
            yield dask_client


def write_inputs(folder, texts=TEXTS):
    """The first half as JSONL with ids (and a blank line), the rest as
    Parquet without ids in row groups of 7; returns the expected row ids."""
    half = len(texts) // 2
    lines = [json.dumps({"id": f"r{i}", "text": text}) for i, text in enumerate(texts[:half])]
    lines.insert(3, "")
    (folder / "reviews.jsonl").write_text("\n".join(lines) + "\n", encoding="utf8")
    rows = [{"text": text, "stars": i % 5} for i, text in enumerate(texts[half:])]
    pq.write_table(pa.Table.from_pylist(rows), folder / "more.parquet", row_group_size=7)
    return [f"r{i}" for i in range(half)] + [f"more.parquet:{i}" for i in range(len(texts) - half)]


def read_output(folder, output_format="parquet"):
    if output_format == "parquet":
        return pyarrow.dataset.dataset(folder, format="parquet").to_table().to_pylist()
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]


def assert_equal_to_plain_pipe(rows, ids, expected):
    assert sorted(row["id"] for row in rows) == sorted(ids)  # every record once
    by_id = {row["id"]: row for row in rows}
    for row_id, plain in zip(ids, expected):
        assert by_id[row_id]["generated"] == plain["generated"]
        assert by_id[row_id]["cats"] == pytest.approx(plain["cats"], abs=1e-6)


def test_output_equals_plain_nlp_pipe_doc_by_doc(saved, client, tmp_path):
    pipeline, expected = saved
    ids = write_inputs(tmp_path)
    assert len({round(plain["cats"]["POS"], 6) for plain in expected}) > 10  # predictions differ between Docs
    report = annotate(
        pipeline, [tmp_path / "reviews.jsonl", tmp_path / "*.parquet"], tmp_path / "out", partition_size=9,
        batch_size=4, scheduler=client.scheduler.address, progress=False,
    )
    assert report.failed == {} and report.skipped == [] and report.rows == len(TEXTS)
    assert len(report.written) == 7 + 7  # 60 JSONL records and 60 Parquet rows in partitions of 9
    assert_equal_to_plain_pipe(read_output(tmp_path / "out"), ids, expected)
    loads = client.run(lambda: annotate_module._worker_pipeline.cache_info().misses)
    assert sorted(loads.values()) == [1, 1]  # each worker loaded the pipeline once


def test_a_killed_worker_loses_and_duplicates_nothing(saved, client, tmp_path):
    pipeline, expected = saved
    texts, expected = TEXTS * 3, expected * 3
    ids = write_inputs(tmp_path, texts)
    pids = client.run(os.getpid)
    result = {}

    def run():
        result["report"] = annotate(
            pipeline, [tmp_path / "reviews.jsonl", tmp_path / "more.parquet"], tmp_path / "out",
            partition_size=3, batch_size=3, scheduler=client.scheduler.address, progress=False,
        )

    runner = threading.Thread(target=run)
    runner.start()
    busy = []
    while not busy or not list((tmp_path / "out").glob("*.parquet")):
        time.sleep(0.01)
        busy = [address for address, keys in client.processing().items() if keys]
    os.kill(pids[busy[0]], signal.SIGKILL)
    done_at_kill = len(list((tmp_path / "out").glob("*.parquet")))
    runner.join(timeout=120)

    assert done_at_kill < 120  # the worker died mid-run
    assert pids[busy[0]] not in client.run(os.getpid).values()  # and was replaced
    report = result["report"]
    assert report.failed == {} and len(report.written) == 120 and report.rows == len(texts)
    assert_equal_to_plain_pipe(read_output(tmp_path / "out"), ids, expected)


def test_a_failed_partition_is_reported_and_a_rerun_completes_only_it(saved, client, tmp_path):
    pipeline, expected = saved
    ids = write_inputs(tmp_path)
    good = (tmp_path / "reviews.jsonl").read_text()
    broken_line = json.dumps({"id": "r40", "text": TEXTS[40]})
    assert broken_line in good
    (tmp_path / "reviews.jsonl").write_text(good.replace(broken_line, json.dumps({"id": "r40", "text": 1})))
    settings = dict(output_format="jsonl", partition_size=10, scheduler=client.scheduler.address, progress=False)

    first = annotate(pipeline, [tmp_path / "reviews.jsonl", tmp_path / "more.parquet"], tmp_path / "out", **settings)
    assert list(first.failed) == ["reviews.jsonl-00004.jsonl"]
    assert "record 41 has no string 'text'" in first.failed["reviews.jsonl-00004.jsonl"]
    assert len(first.written) == 11
    finished = {path.name: path.stat().st_mtime_ns for path in (tmp_path / "out").glob("*.jsonl")}
    assert len(finished) == 11

    (tmp_path / "reviews.jsonl").write_text(good)
    (tmp_path / "out" / ".more.parquet-00001.jsonl.0123.tmp").write_text("half a partition")  # a dead writer's
    second = annotate(pipeline, [tmp_path / "reviews.jsonl", tmp_path / "more.parquet"], tmp_path / "out", **settings)
    assert second.written == ["reviews.jsonl-00004.jsonl"] and second.failed == {}
    assert sorted(second.skipped) == sorted(finished)
    assert {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in finished} == finished
    assert not list((tmp_path / "out").glob(".*"))
    assert_equal_to_plain_pipe(read_output(tmp_path / "out", "jsonl"), ids, expected)


def test_command_line_on_its_own_local_cluster(saved, tmp_path):
    pipeline, expected = saved
    ids = write_inputs(tmp_path)
    command = [sys.executable, "-m", "spacy_rnn.annotate", str(pipeline), str(tmp_path / "*.jsonl"),
               str(tmp_path / "more.parquet"), str(tmp_path / "out"), "--n-workers", "1", "--partition-size", "50"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "4 partitions written (120 rows), 0 already done, 0 failed" in result.stdout
    assert_equal_to_plain_pipe(read_output(tmp_path / "out"), ids, expected)


def test_missing_input_is_named(saved, tmp_path):
    with pytest.raises(AnnotateError, match="No input file matches .*nothing-here"):
        annotate(saved[0], tmp_path / "nothing-here*.jsonl", tmp_path / "out")


def test_bad_pipeline_location_says_what_a_pipeline_is(tmp_path):
    write_inputs(tmp_path)
    with pytest.raises(AnnotateError, match="No pipeline at .*: give the folder of a saved pipeline"):
        annotate(tmp_path / "no-such-pipeline", tmp_path / "reviews.jsonl", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnnotateError, match="Cannot load the pipeline"):
        annotate(tmp_path / "empty", tmp_path / "reviews.jsonl", tmp_path / "out")


@pytest.mark.parametrize("file_name", ["reviews.jsonl", "more.parquet"])
def test_input_without_the_text_field_says_which_field_to_pass(saved, tmp_path, capsys, file_name):
    write_inputs(tmp_path)
    status = main([str(saved[0]), str(tmp_path / file_name), str(tmp_path / "out"), "--text-field", "body"])
    error = capsys.readouterr().err
    assert status == 1
    assert "have no field 'body'" in error and "text" in error.split("their fields:")[1]
    assert "--text-field" in error.split("their fields:")[1]
    assert not (tmp_path / "out").exists()


def test_output_folder_of_another_job_is_refused(saved, tmp_path):
    write_inputs(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "_annotate.json").write_text(json.dumps({"partition_size": 5}))
    with pytest.raises(AnnotateError, match="holds partitions of another job .*partition_size"):
        annotate(saved[0], tmp_path / "reviews.jsonl", tmp_path / "out", partition_size=10)
