"""spacy_rnn.annotate: a saved pipeline over JSONL/Parquet partitions on a
2-worker Dask LocalCluster, against plain nlp.pipe."""
import gzip
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
import torch
from distributed import Client, LocalCluster
from dask.system import CPU_COUNT
from typer.testing import CliRunner

from spacy_rnn.annotate import (
    AnnotateError, annotate, app, find_inputs, plan_partitions, read_partition, start_local_cluster,
)
from tiny_pipeline import TEXTS, make_pipeline

COUNT_LOADS = """
import spacy
spacy.loads_seen = []
if not hasattr(spacy, "uncounted_load"):
    spacy.uncounted_load = spacy.load
    spacy.load = lambda *args, **kwargs: spacy.loads_seen.append(args[0]) or spacy.uncounted_load(*args, **kwargs)
"""


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


def planned(folder, names, blocksize):
    return plan_partitions(find_inputs([folder / name for name in names]), "text", blocksize)


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
    partitions = planned(tmp_path, ["reviews.jsonl", "more.parquet"], 300)
    assert sum(not p.is_parquet for p in partitions) >= 8 and sum(p.is_parquet for p in partitions) >= 3
    client.run(exec, COUNT_LOADS, {})
    report = annotate(
        pipeline, [tmp_path / "reviews.jsonl", tmp_path / "*.parquet"], tmp_path / "out", blocksize=300,
        batch_size=4, scheduler=client.scheduler.address, progress=False,
    )
    assert report.failed == {} and report.skipped == [] and report.rows == len(TEXTS)
    assert len(report.written) == len(partitions)
    assert_equal_to_plain_pipe(read_output(tmp_path / "out"), ids, expected)
    loads = client.run(lambda: spacy.loads_seen)
    assert sorted(loads.values()) == [[str(pipeline)], [str(pipeline)]]  # each worker loaded the pipeline once
    plugins = client.run(lambda dask_worker: [name for name in dask_worker.plugins if "annotate" in name])
    assert list(plugins.values()) == [[], []]  # and let go of it after the job


def write_jsonl_bytes(path, lines):
    """`lines` (str) joined by newlines, without one after the last; returns
    (byte offset, record) of each non-blank line."""
    data = "\n".join(lines).encode("utf8")
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(data)
    offsets = [0] + [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    return [(offset, json.loads(line)) for offset, line in zip(offsets, lines) if line.strip()]


@pytest.mark.parametrize("blocksize", [1, 2, 3, 17, 40, 41, 100, 10**6])
def test_byte_ranges_hold_every_line_once_with_its_offset(tmp_path, blocksize):
    lines = [json.dumps({"text": "é" * (i % 7) + "x" * (i % 5), "n": i}, ensure_ascii=False) for i in range(40)]
    lines[3:3] = ["", "   "]  # blank lines, skipped
    expected = write_jsonl_bytes(tmp_path / "a.jsonl", lines)  # the last line has no newline
    partitions = planned(tmp_path, ["a.jsonl"], blocksize)
    size = (tmp_path / "a.jsonl").stat().st_size
    assert len(partitions) == -(-size // blocksize)  # cut from the file's size alone
    assert [record for partition in partitions for record in read_partition(partition, [])] == expected


def test_a_gz_file_is_one_partition_with_offsets_of_its_text(tmp_path):
    lines = [json.dumps({"text": f"review {i}"}) for i in range(50)]
    expected = write_jsonl_bytes(tmp_path / "a.jsonl.gz", lines)
    partitions = planned(tmp_path, ["a.jsonl.gz"], 10)
    assert len(partitions) == 1 and read_partition(partitions[0], []) == expected


@pytest.mark.parametrize("blocksize,n_partitions", [(1, 8), (400, 4), (10**6, 1)])
def test_parquet_partitions_are_row_groups_with_their_row_numbers(tmp_path, blocksize, n_partitions):
    rows = [{"text": f"review {i}", "n": i} for i in range(30)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet", row_group_size=4)  # 8 groups of ~240 bytes
    partitions = planned(tmp_path, ["a.parquet"], blocksize)
    assert len(partitions) == n_partitions
    read = [record for partition in partitions for record in read_partition(partition, ["text", "n"])]
    assert read == list(enumerate(rows))


def test_planning_reads_only_the_first_record_of_a_file(tmp_path):
    good = json.dumps({"text": "fine"})
    (tmp_path / "a.jsonl").write_text(good + "\n" + "not json\n" * 10_000)
    partitions = planned(tmp_path, ["a.jsonl"], 1000)
    assert len(partitions) == 91  # 90,017 bytes
    with pytest.raises(AnnotateError, match=rf"a.jsonl: the line at byte {len(good) + 1} is not valid JSON"):
        read_partition(partitions[0], [])


def test_a_killed_worker_loses_and_duplicates_nothing(saved, client, tmp_path):
    pipeline, expected = saved
    texts, expected = TEXTS * 3, expected * 3
    ids = write_inputs(tmp_path, texts)
    pids = client.run(os.getpid)
    result = {}

    n_partitions = len(planned(tmp_path, ["reviews.jsonl", "more.parquet"], 120))
    assert n_partitions > 40

    def run():
        result["report"] = annotate(
            pipeline, [tmp_path / "reviews.jsonl", tmp_path / "more.parquet"], tmp_path / "out",
            blocksize=120, batch_size=3, scheduler=client.scheduler.address, progress=False,
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

    assert done_at_kill < n_partitions  # the worker died mid-run
    assert pids[busy[0]] not in client.run(os.getpid).values()  # and was replaced
    report = result["report"]
    assert report.failed == {} and len(report.written) == n_partitions and report.rows == len(texts)
    assert_equal_to_plain_pipe(read_output(tmp_path / "out"), ids, expected)


def test_a_failed_partition_is_reported_and_a_rerun_completes_only_it(saved, client, tmp_path):
    pipeline, expected = saved
    ids = write_inputs(tmp_path)
    good = (tmp_path / "reviews.jsonl").read_text()
    line = json.dumps({"id": "r40", "text": TEXTS[40]})
    broken = json.dumps({"id": "r40", "text": 1}).ljust(len(line))  # same length: the byte ranges stay
    (tmp_path / "reviews.jsonl").write_text(good.replace(line, broken))
    settings = dict(output_format="jsonl", blocksize=400, scheduler=client.scheduler.address, progress=False)
    broken_name = f"reviews.jsonl-{good.index(line) // 400:05d}.jsonl"
    n_partitions = len(planned(tmp_path, ["reviews.jsonl", "more.parquet"], 400))

    first = annotate(pipeline, [tmp_path / "reviews.jsonl", tmp_path / "more.parquet"], tmp_path / "out", **settings)
    assert list(first.failed) == [broken_name]
    assert f"the line at byte {good.index(line)} has no string 'text' (got 1)" in first.failed[broken_name]
    assert len(first.written) == n_partitions - 1
    finished = {path.name: path.stat().st_mtime_ns for path in (tmp_path / "out").glob("*.jsonl")}
    assert len(finished) == n_partitions - 1

    (tmp_path / "reviews.jsonl").write_text(good)
    (tmp_path / "out" / ".more.parquet-00001.jsonl.0123.tmp").write_text("half a partition")  # a dead writer's
    second = annotate(pipeline, [tmp_path / "reviews.jsonl", tmp_path / "more.parquet"], tmp_path / "out", **settings)
    assert second.written == [broken_name] and second.failed == {}
    assert sorted(second.skipped) == sorted(finished)
    assert {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in finished} == finished
    assert not list((tmp_path / "out").glob(".*"))
    assert_equal_to_plain_pipe(read_output(tmp_path / "out", "jsonl"), ids, expected)

    (tmp_path / "reviews.jsonl").write_text(good + "\n")  # its byte ranges are no longer those of the output
    with pytest.raises(AnnotateError, match="holds partitions of another job .different input_sizes"):
        annotate(pipeline, [tmp_path / "reviews.jsonl", tmp_path / "more.parquet"], tmp_path / "out", **settings)


def test_command_line_on_its_own_local_cluster(saved, tmp_path):
    pipeline, expected = saved
    ids = write_inputs(tmp_path)
    n_partitions = len(planned(tmp_path, ["reviews.jsonl", "more.parquet"], 1000))
    command = [sys.executable, "-m", "spacy_rnn.annotate", str(pipeline), str(tmp_path / "*.jsonl"),
               str(tmp_path / "more.parquet"), str(tmp_path / "out"), "--n-workers", "1", "--blocksize", "1kB"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{n_partitions} partitions written (120 rows), 0 already done, 0 failed" in result.stdout
    assert "Dask dashboard: http://" in result.stderr  # on a free port
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
def test_input_without_the_text_field_says_which_field_to_pass(saved, tmp_path, file_name):
    write_inputs(tmp_path)
    arguments = [str(saved[0]), str(tmp_path / file_name), str(tmp_path / "out"), "--text-field", "body"]
    result = CliRunner().invoke(app, arguments)
    error = result.stderr
    assert result.exit_code == 1
    assert "have no field 'body'" in error and "text" in error.split("their fields:")[1]
    assert "--text-field" in error.split("their fields:")[1]
    assert not (tmp_path / "out").exists()


def test_output_folder_of_another_job_is_refused(saved, tmp_path):
    write_inputs(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "_annotate.json").write_text(json.dumps({"blocksize": 5}))
    with pytest.raises(AnnotateError, match="holds partitions of another job .*blocksize"):
        annotate(saved[0], tmp_path / "reviews.jsonl", tmp_path / "out", blocksize=10)


@pytest.mark.parametrize("setting,message", [
    ({"blocksize": "lots"}, "'blocksize' must be a positive number of bytes, such as 8MiB"),
    ({"blocksize": 0}, "'blocksize' must be a positive number of bytes"),
    ({"n_workers": CPU_COUNT + 1}, f"this machine has {CPU_COUNT} cores and each worker computes on one"),
])
def test_settings_that_cannot_work_are_refused_before_anything_is_written(saved, tmp_path, setting, message):
    write_inputs(tmp_path)
    with pytest.raises(AnnotateError, match=message):
        annotate(saved[0], tmp_path / "reviews.jsonl", tmp_path / "out", **setting)
    assert not (tmp_path / "out").exists()


def test_the_local_cluster_computes_on_one_torch_thread_per_worker_and_core():
    with start_local_cluster(dashboard_address=":0") as cluster, Client(cluster) as client:
        threads = client.run(torch.get_num_threads)
        nthreads = client.nthreads()
    assert len(threads) == len(nthreads) == CPU_COUNT  # one worker per core the process may use
    assert set(threads.values()) == set(nthreads.values()) == {1}
    assert len(nthreads) * max(threads.values()) <= os.cpu_count()
