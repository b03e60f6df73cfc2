"""Annotate large corpora with a saved pipeline on a Dask cluster.

The input files (JSONL, JSONL.gz or Parquet) are cut into partitions of
`partition_size` records. Each partition is one Dask task: the worker loads
the pipeline once (cached per worker process), runs `nlp.pipe` over the
partition's texts and writes one output file, first under a hidden temporary
name, then renamed. A partition is finished exactly when its output file
exists: a rerun skips it, and a task that runs twice (retried, or moved off a
dead worker) replaces the file with the same rows. Nothing is lost or
duplicated.

Each output row holds `id` (the record's id field as a string, or
`<file name>:<record number>`), `cats` when the pipeline sets `doc.cats`, and
the generated text of each `rnn_seq2seq` component under its `output_attr`.

    python -m spacy_rnn.annotate PIPELINE "corpus/*.jsonl" annotations/ --n-workers 2
"""
import argparse
import functools
import glob
import gzip
import json
import os
import sys
import threading
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Union

import spacy
from spacy.language import Language
from tqdm import tqdm

from .pipeline.seq2seq import RNNSeq2Seq

JOB_FILE = "_annotate.json"
FORMATS = ("parquet", "jsonl")
INPUT_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
_WORKER_LOCK = threading.Lock()  # one nlp.pipe at a time on a worker's pipeline


class AnnotateError(ValueError):
    """An annotation job that cannot run, with what to change."""


@dataclass(frozen=True)
class Job:
    """What the output folder holds: a rerun must describe the same job."""

    pipeline: str
    inputs: List[str]
    text_field: str
    id_field: str
    output_format: str
    partition_size: int


@dataclass(frozen=True)
class Partition:
    """Records start..stop-1 of one input file; `offset` is the byte offset of
    record `start` in a (decompressed) JSONL file."""

    path: str
    index: int
    start: int
    stop: int
    offset: Optional[int] = None

    def output_name(self, output_format: str) -> str:
        return f"{Path(self.path).name}-{self.index:05d}.{output_format}"


@dataclass
class Report:
    """Partitions written by this run, skipped as already finished, and failed
    (name -> error) after their retries."""

    written: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)
    rows: int = 0

    def summary(self) -> str:
        return (
            f"{len(self.written)} partitions written ({self.rows:,} rows), {len(self.skipped)} already done, "
            f"{len(self.failed)} failed"
        )


def annotate(
    pipeline: Union[str, Path],
    inputs: Union[str, Path, Sequence[Union[str, Path]]],
    output_dir: Union[str, Path],
    *,
    text_field: str = "text",
    id_field: str = "id",
    output_format: str = "parquet",
    partition_size: int = 1000,
    batch_size: int = 128,
    scheduler: Optional[str] = None,
    n_workers: Optional[int] = None,
    retries: int = 2,
    gpu_id: int = -1,
    progress: bool = True,
) -> Report:
    """Write the pipeline's predictions for every record of `inputs` (paths or
    glob patterns) to one file per partition in `output_dir`.

    scheduler: address of a running Dask scheduler; None starts a LocalCluster
        of `n_workers` single-threaded worker processes (None: one per core).
        The workers must see the pipeline, the inputs and `output_dir` at the
        same paths (a shared file system).
    retries: how often a failing partition is tried again before it is
        reported in `Report.failed`; a rerun then does only the missing ones.
    gpu_id: each worker calls `spacy.require_gpu(gpu_id)` before loading.
    """
    if output_format not in FORMATS:
        raise AnnotateError(f"Unknown output format {output_format!r}: use one of {', '.join(FORMATS)}.")
    if partition_size < 1:
        raise AnnotateError(f"'partition_size' must be a positive number of records, got {partition_size}.")
    paths = find_inputs(inputs)
    pipeline = _pipeline_location(pipeline)
    load_pipeline(pipeline)  # fail here, with a clear message, rather than in every worker
    partitions = plan_partitions(paths, text_field, partition_size)
    job = Job(pipeline, sorted(str(path) for path in paths), text_field, id_field, output_format, partition_size)
    output_dir = _prepare_output_dir(Path(output_dir).resolve(), job)

    report = Report()
    todo = []
    for partition in partitions:
        name = partition.output_name(output_format)
        if (output_dir / name).exists():
            report.skipped.append(name)
        else:
            todo.append(partition)
    if not todo:
        return report
    with _dask_client(scheduler, n_workers) as client:
        from distributed import as_completed

        futures = {
            client.submit(
                annotate_partition, partition, job, str(output_dir), batch_size, gpu_id, retries=retries, pure=False
            ): partition.output_name(output_format)
            for partition in todo
        }
        for future in tqdm(as_completed(futures), total=len(futures), desc="partitions", disable=not progress):
            name = futures[future]
            if future.status == "finished":
                report.written.append(name)
                report.rows += future.result()
            else:
                report.failed[name] = f"{type(future.exception()).__name__}: {future.exception()}"
    return report


def find_inputs(inputs: Union[str, Path, Sequence[Union[str, Path]]]) -> List[Path]:
    """The files named by `inputs` (paths or glob patterns), sorted, absolute."""
    patterns = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not patterns:
        raise AnnotateError("No input given: name JSONL or Parquet files (paths or glob patterns).")
    paths = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(pattern), recursive=True))
        if not matches:
            raise AnnotateError(f"No input file matches {str(pattern)!r}.")
        paths.extend(Path(match).resolve() for match in matches)
    for path in paths:
        if not path.is_file() or not path.name.endswith(INPUT_SUFFIXES):
            raise AnnotateError(f"{path} is not a {', '.join(INPUT_SUFFIXES)} file.")
    doubles = sorted(name for name, count in Counter(path.name for path in paths).items() if count > 1)
    if doubles:
        raise AnnotateError(
            f"Several inputs are named {', '.join(doubles)}: output partitions are named after the input "
            "file, so give each input a distinct name."
        )
    return paths


def load_pipeline(pipeline: str) -> Language:
    """spacy.load with an error that says what a pipeline location must be."""
    if not Path(pipeline).exists() and not spacy.util.is_package(pipeline):
        raise AnnotateError(
            f"No pipeline at {pipeline!r}: give the folder of a saved pipeline (nlp.to_disk, "
            "training/<task>/model-best) or the name of an installed pipeline package."
        )
    try:
        nlp = spacy.load(pipeline)
    except (OSError, ValueError) as err:
        raise AnnotateError(f"Cannot load the pipeline {pipeline!r}: {err}") from None
    if not _writes_cats(nlp) and not _generated_attrs(nlp):
        raise AnnotateError(
            f"The pipeline {pipeline!r} ({', '.join(nlp.pipe_names) or 'no components'}) sets neither "
            "doc.cats nor a generated text: there is nothing to write."
        )
    return nlp


def plan_partitions(paths: Sequence[Path], text_field: str, partition_size: int) -> List[Partition]:
    """Cut every input file into partitions of `partition_size` records,
    checking that its records have `text_field`."""
    partitions = []
    for path in paths:
        if path.name.endswith(".parquet"):
            partitions.extend(_parquet_partitions(path, text_field, partition_size))
        else:
            partitions.extend(_jsonl_partitions(path, text_field, partition_size))
    return partitions


def _jsonl_partitions(path: Path, text_field: str, size: int) -> Iterator[Partition]:
    offsets, n_records, offset = [], 0, 0
    with _open_jsonl(path) as file_:
        for line in file_:
            if line.strip():
                if n_records == 0:
                    _check_text_field(path, _parse_record(path, line, 0), text_field)
                if n_records % size == 0:
                    offsets.append(offset)
                n_records += 1
            offset += len(line)
    for index, start_offset in enumerate(offsets):
        start = index * size
        yield Partition(str(path), index, start, min(start + size, n_records), start_offset)


def _parquet_partitions(path: Path, text_field: str, size: int) -> Iterator[Partition]:
    import pyarrow.parquet as pq

    metadata = pq.read_metadata(path)
    fields = metadata.schema.names
    if text_field not in fields:
        raise AnnotateError(_missing_text_field(path, text_field, fields))
    for index, start in enumerate(range(0, metadata.num_rows, size)):
        yield Partition(str(path), index, start, min(start + size, metadata.num_rows))


def annotate_partition(partition: Partition, job: Job, output_dir: str, batch_size: int, gpu_id: int) -> int:
    """The Dask task: predict one partition, write its file, return its row count."""
    with _WORKER_LOCK:
        nlp = _worker_pipeline(job.pipeline, gpu_id)
        records = read_partition(partition, [job.text_field, job.id_field])
        if len(records) != partition.stop - partition.start:
            raise AnnotateError(f"{partition.path} changed after the job was planned: start a new output folder.")
        texts = [_text(partition, row, record, job.text_field) for row, record in enumerate(records, partition.start)]
        with_cats, attrs = _writes_cats(nlp), _generated_attrs(nlp)
        rows = []
        for row, (record, doc) in enumerate(zip(records, nlp.pipe(texts, batch_size=batch_size)), partition.start):
            prediction = {"id": str(record.get(job.id_field, f"{Path(partition.path).name}:{row}"))}
            if with_cats:
                prediction["cats"] = dict(doc.cats)
            prediction.update((attr, doc._.get(attr)) for attr in attrs)
            rows.append(prediction)
    path = Path(output_dir) / partition.output_name(job.output_format)
    _write_atomically(path, lambda tmp: _write_rows(tmp, rows, job.output_format))
    return len(rows)


def read_partition(partition: Partition, columns: Sequence[str]) -> List[Dict]:
    """The records of one partition (for Parquet, only the given columns that exist)."""
    path = Path(partition.path)
    n_records = partition.stop - partition.start
    if path.name.endswith(".parquet"):
        return _read_parquet_rows(path, partition.start, partition.stop, columns)
    records = []
    with _open_jsonl(path) as file_:
        file_.seek(partition.offset)
        for line in file_:
            if len(records) == n_records:
                break
            if line.strip():
                records.append(_parse_record(path, line, partition.start + len(records)))
    return records


def _read_parquet_rows(path: Path, start: int, stop: int, columns: Sequence[str]) -> List[Dict]:
    import pyarrow.parquet as pq

    file_ = pq.ParquetFile(path)
    columns = [name for name in columns if name in file_.schema_arrow.names]
    rows, group_start = [], 0
    for group in range(file_.num_row_groups):
        group_stop = group_start + file_.metadata.row_group(group).num_rows
        if group_start < stop and start < group_stop:
            table = file_.read_row_group(group, columns=columns)
            first = max(start, group_start)
            rows.extend(table.slice(first - group_start, min(stop, group_stop) - first).to_pylist())
        group_start = group_stop
    return rows


@functools.lru_cache(maxsize=None)
def _worker_pipeline(pipeline: str, gpu_id: int) -> Language:
    """The pipeline, loaded once per worker process."""
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    return spacy.load(pipeline)


def _writes_cats(nlp: Language) -> bool:
    return any("doc.cats" in nlp.get_pipe_meta(name).assigns for name in nlp.pipe_names)


def _generated_attrs(nlp: Language) -> List[str]:
    return [pipe.cfg["output_attr"] for _, pipe in nlp.pipeline if isinstance(pipe, RNNSeq2Seq)]


def _text(partition: Partition, row: int, record: Dict, text_field: str) -> str:
    text = record.get(text_field)
    if not isinstance(text, str):
        raise AnnotateError(f"{partition.path}: record {row + 1} has no string '{text_field}' (got {text!r}).")
    return text


def _open_jsonl(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _parse_record(path: Path, line: bytes, row: int) -> Dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise AnnotateError(f"{path}: record {row + 1} is not valid JSON ({err.msg}).") from None
    if not isinstance(record, dict):
        raise AnnotateError(f"{path}: record {row + 1} is not a JSON object.")
    return record


def _check_text_field(path: Path, record: Dict, text_field: str) -> None:
    if text_field not in record:
        raise AnnotateError(_missing_text_field(path, text_field, list(record)))


def _missing_text_field(path: Path, text_field: str, fields: Sequence[str]) -> str:
    return (
        f"{path}: the records have no field {text_field!r} (their fields: {', '.join(fields)}). "
        "Name the field that holds the text with --text-field (text_field= in Python)."
    )


def _pipeline_location(pipeline: Union[str, Path]) -> str:
    """A path made absolute (workers may run elsewhere); a package name as is."""
    return str(Path(pipeline).resolve()) if Path(pipeline).exists() else str(pipeline)


def _prepare_output_dir(output_dir: Path, job: Job) -> Path:
    """Create the folder, or check that it holds partitions of this same job;
    remove temporary files left by workers that died while writing."""
    job_file = output_dir / JOB_FILE
    if job_file.exists():
        previous = json.loads(job_file.read_text(encoding="utf8"))
        changed = [name for name, value in asdict(job).items() if previous.get(name) != value]
        if changed:
            raise AnnotateError(
                f"{output_dir} holds partitions of another job (different {', '.join(changed)}): "
                "write to another output folder, or delete this one to start over."
            )
    else:
        output_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(job_file, lambda tmp: tmp.write_text(json.dumps(asdict(job), indent=2), encoding="utf8"))
    for leftover in output_dir.glob(".*.tmp"):
        leftover.unlink()
    return output_dir


def _write_rows(path: Path, rows: List[Dict], output_format: str) -> None:
    if output_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf8")


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """`write` a hidden temporary file, then rename it to `path`: the file
    either is complete or does not exist."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _dask_client(scheduler: Optional[str], n_workers: Optional[int]):
    """A client of the scheduler at `scheduler`, or of a new LocalCluster."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise AnnotateError("Annotating on Dask needs dask.distributed: pip install 'spacy-rnn[dask]'.") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as err:
            raise AnnotateError(f"Cannot reach the Dask scheduler at {scheduler}: {err}") from None
        with client:
            yield client
    else:
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, dashboard_address=None) as cluster:
            with Client(cluster) as client:
                yield client


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spacy_rnn.annotate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pipeline", help="folder of a saved pipeline, or an installed pipeline package")
    parser.add_argument("inputs", nargs="+", help="JSONL, JSONL.gz or Parquet files (paths or quoted glob patterns)")
    parser.add_argument("output_dir", help="folder for the output partitions")
    parser.add_argument("--text-field", default="text", help="field that holds the text (default: text)")
    parser.add_argument("--id-field", default="id", help="field that holds the record id (default: id)")
    parser.add_argument("--format", dest="output_format", choices=FORMATS, default="parquet", help="output format")
    parser.add_argument("--partition-size", type=int, default=1000, help="records per partition")
    parser.add_argument("--batch-size", type=int, default=128, help="nlp.pipe batch size")
    parser.add_argument("--scheduler", default="", help="address of a running Dask scheduler (default: a LocalCluster)")
    parser.add_argument("--n-workers", type=int, default=0, help="LocalCluster workers (default: one per core)")
    parser.add_argument("--retries", type=int, default=2, help="retries of a failing partition")
    parser.add_argument("--gpu-id", type=int, default=-1, help="GPU of each worker (-1: CPU)")
    args = parser.parse_args(argv)
    try:
        report = annotate(
            args.pipeline, args.inputs, args.output_dir, text_field=args.text_field, id_field=args.id_field,
            output_format=args.output_format, partition_size=args.partition_size, batch_size=args.batch_size,
            scheduler=args.scheduler or None, n_workers=args.n_workers or None, retries=args.retries,
            gpu_id=args.gpu_id,
        )
    except AnnotateError as err:
        print(f"✘ {err}", file=sys.stderr)
        return 1
    for name, error in sorted(report.failed.items()):
        print(f"✘ {name}: {error}", file=sys.stderr)
    print(("✘ " if report.failed else "✔ ") + f"{args.output_dir}: {report.summary()}")
    if report.failed:
        print("Run the same command again to retry only the missing partitions.", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    # Run the imported module's main, so that Dask ships `spacy_rnn.annotate.annotate_partition`
    # by reference and every worker keeps one pipeline cache, not a copy of this __main__.
    from spacy_rnn.annotate import main as module_main

    sys.exit(module_main())
