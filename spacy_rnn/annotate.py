"""Annotate large corpora with a saved pipeline on a Dask cluster.

The client cuts the input files into partitions from their sizes and metadata,
without reading their records: a JSONL file into byte ranges of `blocksize`
(each line belongs to the range it begins in), a Parquet file between row
groups (about `blocksize` of data each), and a `.jsonl.gz` file is one
partition (gzip cannot be read from the middle). Each partition is one Dask
task: the worker, which loaded the pipeline once (`PipelinePlugin`), reads its
records, runs `nlp.pipe` over their texts and writes one output file, first
under a hidden temporary name, then renamed. A partition is finished exactly
when its output file exists: a rerun skips it, and a task that runs twice
(retried, or moved off a dead worker) replaces the file with the same rows.
Nothing is lost or duplicated.

Each output row holds `id` (the record's id field as a string; without one
`<file name>:<byte offset>` of a JSONL line, or `<file name>:<row>` of a
Parquet row), `cats` when the pipeline sets `doc.cats`, and the generated text
of each `rnn_seq2seq` component under its `output_attr`.

    python -m spacy_rnn.annotate PIPELINE "corpus/*.jsonl" annotations/ --n-workers 2
"""
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
from enum import Enum
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import spacy
import typer
from spacy.language import Language
from tqdm import tqdm

from .pipeline.rnn_seq2seq import RNNSeq2Seq

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # annotate() says what to install
    WorkerPlugin = object

JOB_FILE = "_annotate.json"
INPUT_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
DEFAULT_BLOCKSIZE = "8MiB"
app = typer.Typer(add_completion=False)


class OutputFormat(str, Enum):
    parquet = "parquet"
    jsonl = "jsonl"


FORMATS = tuple(output_format.value for output_format in OutputFormat)


class AnnotateError(ValueError):
    """An annotation job that cannot run, with what to change."""


@dataclass(frozen=True)
class Job:
    """What the output folder holds: a rerun must describe the same job."""

    pipeline: str
    inputs: List[str]
    input_sizes: List[int]
    text_field: str
    id_field: str
    output_format: str
    blocksize: int


@dataclass(frozen=True)
class Partition:
    """One task's share of an input file: the lines that begin in bytes
    start..stop-1 of a JSONL file (stop None: to the end of the file), or row
    groups start..stop-1 of a Parquet file, whose first row is `first_row`."""

    path: str
    index: int
    start: int
    stop: Optional[int]
    first_row: int = 0

    @property
    def is_parquet(self) -> bool:
        return self.path.endswith(".parquet")

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


class PipelinePlugin(WorkerPlugin):
    """The pipeline on a Dask worker: loaded once when the plugin is
    registered, and on each worker that joins later (one that replaces a dead
    worker, say). Tasks take turns on it."""

    def __init__(self, pipeline: str, gpu_id: int):
        self.pipeline = pipeline
        self.gpu_id = gpu_id
        self.nlp: Optional[Language] = None

    def setup(self, worker) -> None:
        self.lock = threading.Lock()
        try:
            self.use_device()
            self.nlp = spacy.load(self.pipeline)
        except (OSError, ValueError) as err:
            device = f" on GPU {self.gpu_id}" if self.gpu_id >= 0 else ""
            raise AnnotateError(
                f"The Dask worker {worker.address} cannot load the pipeline {self.pipeline!r}{device}: {err} "
                "(every worker must see the pipeline at the same path, or have its package installed)."
            ) from None
        self.writes_cats, self.generated_attrs = _writes_cats(self.nlp), _generated_attrs(self.nlp)

    def use_device(self) -> None:
        """thinc's and torch's current device belong to a thread: call this in
        each thread that runs the pipeline."""
        if self.gpu_id >= 0:
            spacy.require_gpu(self.gpu_id)


def annotate(
    pipeline: Union[str, Path],
    inputs: Union[str, Path, Sequence[Union[str, Path]]],
    output_dir: Union[str, Path],
    *,
    text_field: str = "text",
    id_field: str = "id",
    output_format: str = "parquet",
    blocksize: Union[int, str] = DEFAULT_BLOCKSIZE,
    batch_size: int = 128,
    scheduler: Optional[str] = None,
    n_workers: Optional[int] = None,
    retries: int = 2,
    gpu_id: int = -1,
    dashboard_address: Optional[str] = ":0",
    progress: bool = True,
) -> Report:
    """Write the pipeline's predictions for every record of `inputs` (paths or
    glob patterns) to one file per partition in `output_dir`.

    blocksize: bytes of input per partition, as a number or a string such as
        "8MiB" (see the module's docstring).
    scheduler: address of a running Dask scheduler; None starts a LocalCluster
        of `n_workers` single-threaded worker processes (None: one per core).
        The workers must see the pipeline, the inputs and `output_dir` at the
        same paths (a shared file system).
    retries: how often a failing partition is tried again before it is
        reported in `Report.failed`; a rerun then does only the missing ones.
    gpu_id: each worker calls `spacy.require_gpu(gpu_id)` before loading.
    dashboard_address: where the LocalCluster serves Dask's dashboard (":0": a
        free port; None: no dashboard). With `progress`, its link is printed.
    """
    _require_distributed()
    if output_format not in FORMATS:
        raise AnnotateError(f"Unknown output format {output_format!r}: use one of {', '.join(FORMATS)}.")
    blocksize = parse_blocksize(blocksize)
    if not scheduler and n_workers is not None:
        _check_n_workers(n_workers)  # before the output folder is made
    paths = find_inputs(inputs)
    pipeline = _pipeline_location(pipeline)
    load_pipeline(pipeline)  # fail here, with a clear message, rather than in every worker
    partitions = plan_partitions(paths, text_field, blocksize)
    job = Job(
        pipeline, [str(path) for path in paths], [path.stat().st_size for path in paths], text_field, id_field,
        output_format, blocksize,
    )
    output_dir = _prepare_output_dir(Path(output_dir).resolve(), job)

    report = Report()
    finished = {path.name for path in output_dir.iterdir()}
    todo = []
    for partition in partitions:
        name = partition.output_name(output_format)
        if name in finished:
            report.skipped.append(name)
        else:
            todo.append(partition)
    if not todo:
        return report
    with _dask_client(scheduler, n_workers, dashboard_address) as client:
        if progress and client.dashboard_link:
            print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
        with _on_workers(client, pipeline, gpu_id) as plugin:
            task = functools.partial(
                annotate_partition, job=job, output_dir=str(output_dir), batch_size=batch_size, plugin_name=plugin
            )
            futures = client.map(task, todo, retries=retries, pure=False)
            _collect(futures, [partition.output_name(output_format) for partition in todo], report, progress)
    return report


def _collect(futures: List, names: List[str], report: Report, progress: bool) -> None:
    """Add each partition's outcome to `report` as it comes in, with a progress bar.

    Not Dask's own `distributed.progress`: in a terminal it ends at the first failed task (here the
    others go on and failures are listed at the end) and shows neither rate nor time left."""
    from distributed import as_completed

    names = dict(zip(futures, names))
    with tqdm(total=len(futures), unit="partition", disable=not progress) as bar:
        for future, result in as_completed(futures, with_results=True, raise_errors=False):
            if future.status == "finished":
                report.written.append(names[future])
                report.rows += result
            else:
                report.failed[names[future]] = f"{type(future.exception()).__name__}: {future.exception()}"
            bar.update()
            bar.set_postfix(rows=f"{report.rows:,}", failed=len(report.failed))


def parse_blocksize(blocksize: Union[int, str]) -> int:
    """Bytes from a number or a string such as "8MiB" or "64 MB"."""
    from dask.utils import parse_bytes

    try:
        size = parse_bytes(blocksize)
    except (ValueError, TypeError):
        size = 0
    if size < 1:
        raise AnnotateError(f"'blocksize' must be a positive number of bytes, such as 8MiB or 100000: {blocksize!r}")
    return size


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


def plan_partitions(paths: Sequence[Path], text_field: str, blocksize: int) -> List[Partition]:
    """Cut every input file into partitions from its size (JSONL) or its
    metadata (Parquet), reading no more than its first record, which must
    have `text_field`."""
    partitions = []
    for path in paths:
        if path.name.endswith(".parquet"):
            partitions.extend(_parquet_partitions(path, text_field, blocksize))
            continue
        first = next(_jsonl_records(path, 0, None), None)
        if first is not None:
            _check_text_field(path, first[1], text_field)
        if path.suffix == ".gz":
            partitions.append(Partition(str(path), 0, 0, None))
        else:
            size = path.stat().st_size
            starts = enumerate(range(0, size, blocksize))
            partitions.extend(Partition(str(path), i, start, min(start + blocksize, size)) for i, start in starts)
    return partitions


def _parquet_partitions(path: Path, text_field: str, blocksize: int) -> List[Partition]:
    """Consecutive row groups, cut once they hold `blocksize` bytes (uncompressed)."""
    import pyarrow.parquet as pq

    metadata = pq.read_metadata(path)
    if text_field not in metadata.schema.names:
        raise AnnotateError(_missing_text_field(path, text_field, metadata.schema.names))
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    partitions, start, first_row, size = [], 0, 0, 0
    for i, group in enumerate(groups):
        size += group.total_byte_size
        if size >= blocksize or i == len(groups) - 1:
            partitions.append(Partition(str(path), len(partitions), start, i + 1, first_row))
            first_row += sum(group.num_rows for group in groups[start : i + 1])
            start, size = i + 1, 0
    return partitions


def annotate_partition(partition: Partition, job: Job, output_dir: str, batch_size: int, plugin_name: str) -> int:
    """The Dask task: predict one partition with the worker's pipeline, write
    its file, return its row count."""
    from distributed import get_worker

    loaded = get_worker().plugins[plugin_name]
    if loaded.nlp is None:
        raise AnnotateError(f"This worker could not load the pipeline {job.pipeline!r}: see the worker's log.")
    records = read_partition(partition, [job.text_field, job.id_field])
    texts = [_text(partition, position, record, job.text_field) for position, record in records]
    file_name = Path(partition.path).name
    rows = []
    with loaded.lock:
        loaded.use_device()
        for (position, record), doc in zip(records, loaded.nlp.pipe(texts, batch_size=batch_size)):
            prediction = {"id": str(record.get(job.id_field, f"{file_name}:{position}"))}
            if loaded.writes_cats:
                prediction["cats"] = dict(doc.cats)
            prediction.update((attr, doc._.get(attr)) for attr in loaded.generated_attrs)
            rows.append(prediction)
    path = Path(output_dir) / partition.output_name(job.output_format)
    _write_atomically(path, lambda tmp: _write_rows(tmp, rows, job.output_format))
    return len(rows)


def read_partition(partition: Partition, columns: Sequence[str]) -> List[Tuple[int, Dict]]:
    """(position, record) for the records of one partition: the byte offset
    of a JSONL line, the row number of a Parquet row (for Parquet, only the
    given columns that exist)."""
    if not partition.is_parquet:
        return list(_jsonl_records(Path(partition.path), partition.start, partition.stop))
    import pyarrow.parquet as pq

    file_ = pq.ParquetFile(partition.path)
    columns = [name for name in columns if name in file_.schema_arrow.names]
    table = file_.read_row_groups(range(partition.start, partition.stop), columns=columns)
    return list(enumerate(table.to_pylist(), partition.first_row))


def _jsonl_records(path: Path, start: int, stop: Optional[int]) -> Iterator[Tuple[int, Dict]]:
    """(byte offset, record) for each non-blank line that begins in bytes
    start..stop-1 of a JSONL file (stop None: to the end; offsets of a .gz file
    are those of its decompressed text)."""
    with _open_jsonl(path) as file_:
        if start:
            file_.seek(start - 1)
            file_.readline()  # the end of the line that began before `start`, or the newline just before it
        offset = file_.tell()
        for line in file_:
            if stop is not None and offset >= stop:
                break
            if line.strip():
                yield offset, _parse_record(path, line, offset)
            offset += len(line)


def _writes_cats(nlp: Language) -> bool:
    return any("doc.cats" in nlp.get_pipe_meta(name).assigns for name in nlp.pipe_names)


def _generated_attrs(nlp: Language) -> List[str]:
    return [pipe.cfg["output_attr"] for _, pipe in nlp.pipeline if isinstance(pipe, RNNSeq2Seq)]


def _text(partition: Partition, position: int, record: Dict, text_field: str) -> str:
    text = record.get(text_field)
    if not isinstance(text, str):
        where = f"row {position}" if partition.is_parquet else f"the line at byte {position}"
        raise AnnotateError(f"{partition.path}: {where} has no string '{text_field}' (got {text!r}).")
    return text


def _open_jsonl(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _parse_record(path: Path, line: bytes, offset: int) -> Dict:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnnotateError(f"{path}: the line at byte {offset} is not valid JSON ({err}).") from None
    if not isinstance(record, dict):
        raise AnnotateError(f"{path}: the line at byte {offset} is not a JSON object.")
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


def start_local_cluster(n_workers: Optional[int] = None, dashboard_address: Optional[str] = None):
    """A LocalCluster of `n_workers` worker processes (None: one per core) with
    one thread each. Dask starts them with OMP_NUM_THREADS=1, so torch computes
    on one thread per worker: workers x threads never exceed the cores.

    Dask also starts them with MALLOC_TRIM_THRESHOLD_=65536, which turns off
    glibc's dynamic mmap threshold: torch's larger buffers are then mapped and
    unmapped again at every use, and the pipeline ran 10-25% slower
    (docs/scaling.md). These workers start without it."""
    import dask
    from dask.system import CPU_COUNT
    from distributed import LocalCluster

    if n_workers is not None:
        _check_n_workers(n_workers)
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(
            n_workers=n_workers or CPU_COUNT, threads_per_worker=1, dashboard_address=dashboard_address
        )


def _check_n_workers(n_workers: int) -> None:
    from dask.system import CPU_COUNT

    if not 1 <= n_workers <= CPU_COUNT:
        raise AnnotateError(
            f"n_workers={n_workers}, but this machine has {CPU_COUNT} cores and each worker computes on one: "
            f"use 1 to {CPU_COUNT} (more workers would only take turns on the cores)."
        )


@contextmanager
def _dask_client(scheduler: Optional[str], n_workers: Optional[int], dashboard_address: Optional[str]):
    """A client of the scheduler at `scheduler`, or of a new LocalCluster."""
    from distributed import Client

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as err:
            raise AnnotateError(f"Cannot reach the Dask scheduler at {scheduler}: {err}") from None
        with client:
            yield client
    else:
        with start_local_cluster(n_workers, dashboard_address) as cluster, Client(cluster) as client:
            yield client


@contextmanager
def _on_workers(client, pipeline: str, gpu_id: int) -> Iterator[str]:
    """The pipeline loaded on every worker of `client` (and on each that joins
    later) until the block ends; yields the name of its PipelinePlugin."""
    name = f"spacy_rnn.annotate-{uuid.uuid4().hex}"  # one per job: jobs that share a cluster do not clash
    try:
        client.register_plugin(PipelinePlugin(pipeline, gpu_id), name=name)
        yield name
    finally:
        client.unregister_worker_plugin(name)


def _require_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise AnnotateError("Annotating on Dask needs dask.distributed: pip install 'spacy-rnn[dask]'.") from None


@app.command()
def main(
    pipeline: str = typer.Argument(..., help="folder of a saved pipeline, or an installed pipeline package"),
    inputs: List[str] = typer.Argument(..., help="JSONL, JSONL.gz or Parquet files (paths or quoted glob patterns)"),
    output_dir: str = typer.Argument(..., help="folder for the output partitions"),
    text_field: str = typer.Option("text", help="field that holds the text"),
    id_field: str = typer.Option("id", help="field that holds the record id"),
    output_format: OutputFormat = typer.Option(OutputFormat.parquet, "--format", help="output format"),
    blocksize: str = typer.Option(DEFAULT_BLOCKSIZE, help="input bytes per partition"),
    batch_size: int = typer.Option(128, help="nlp.pipe batch size"),
    scheduler: str = typer.Option("", help="address of a running Dask scheduler ('': a LocalCluster)"),
    n_workers: int = typer.Option(0, help="LocalCluster workers (0: one per core)"),
    dashboard_address: str = typer.Option(":0", help="LocalCluster dashboard address (:0, a free port; '': none)"),
    retries: int = typer.Option(2, help="retries of a failing partition"),
    gpu_id: int = typer.Option(-1, help="GPU of each worker (-1: CPU)"),
) -> None:
    """Write the predictions of PIPELINE for every record of INPUTS to one
    file per partition in OUTPUT_DIR, on a Dask cluster. A rerun does only
    the partitions that are missing (see the docstring of spacy_rnn.annotate)."""
    try:
        report = annotate(
            pipeline, inputs, output_dir, text_field=text_field, id_field=id_field,
            output_format=output_format.value, blocksize=blocksize, batch_size=batch_size,
            scheduler=scheduler or None, n_workers=n_workers or None, retries=retries,
            gpu_id=gpu_id, dashboard_address=dashboard_address or None,
        )
    except AnnotateError as err:
        typer.echo(f"✘ {err}", err=True)
        raise typer.Exit(1) from None
    for name, error in sorted(report.failed.items()):
        typer.echo(f"✘ {name}: {error}", err=True)
    typer.echo(("✘ " if report.failed else "✔ ") + f"{output_dir}: {report.summary()}")
    if report.failed:
        typer.echo("Run the same command again to retry only the missing partitions.", err=True)
        raise typer.Exit(1)


if __name__ == "__main__":
    # Run the imported module's app, so that Dask ships `spacy_rnn.annotate.annotate_partition` and
    # `PipelinePlugin` by reference, not as copies of this __main__.
    from spacy_rnn.annotate import app as module_app

    module_app(prog_name="python -m spacy_rnn.annotate")
