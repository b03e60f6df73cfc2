"""Scaling benchmark: one spacy-rnn pipeline over the same IMDB reviews as
one process, as `nlp.pipe(n_process=2)` and as `spacy_rnn.annotate` on a
2-worker Dask LocalCluster; words/s, peak memory per worker, and the Dask
overhead against plain `nlp.pipe`.

"One process" runs with torch's default thread count (one per core) and
again with one thread, the thread count of each `n_process` or Dask worker.

The pipeline is `textcat` with the model of configs/textcat_lstm.cfg (BiLSTM
of width 128 over HashEmbed of width 128), initialized on 50 reviews and not
trained: the weights do not change the speed. The corpus is the first
--n-docs reviews of stars/imdb/imdb_test.jsonl.gz, written to one JSONL file
that every mode reads. Each mode runs in a fresh Python process. Words are
whitespace-separated; times include reading the input and, for Dask, writing
Parquet. Dask runs twice on one LocalCluster: first with fresh workers (they
import spaCy and load the pipeline), then with warm ones; the cluster start is
reported on its own.

    python project/scripts/bench_scale.py --data-dir ../shared/data --n-docs 2000
"""
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import typer
from wasabi import msg

from common import fail

REPO = Path(__file__).resolve().parents[2]
MODES = ("one", "one_thread", "n_process", "dask")


def build_pipeline(texts: List[str], labels: List[str], path: Path) -> None:
    import spacy
    from spacy.training import Example
    from spacy.util import load_config
    from thinc.api import fix_random_seed

    fix_random_seed(0)
    model = load_config(REPO / "configs" / "textcat_lstm.cfg")["components"]["textcat"]["model"]
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat", config={"model": model})
    names = sorted(set(labels))
    examples = [
        Example.from_dict(nlp.make_doc(text), {"cats": {name: float(name == label) for name in names}})
        for text, label in zip(texts, labels)
    ]
    nlp.initialize(lambda: examples)
    nlp.to_disk(path)


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def measure(mode: str, pipeline: str, corpus: str, batch_size: int, partition_size: int) -> Dict:
    """One mode in this (fresh) process: wall seconds, workers, threads, peak memory."""
    import spacy

    from spacy_rnn.corpus import read_jsonl

    if mode == "dask":
        from distributed import Client, LocalCluster

        from spacy_rnn.annotate import annotate

        start = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
        cluster_start_s = time.perf_counter() - start
        with cluster, Client(cluster) as client, tempfile.TemporaryDirectory() as output:
            wall_s = []
            for run in ("cold", "warm"):  # cold: the workers import spaCy and load the pipeline first
                start = time.perf_counter()
                report = annotate(
                    pipeline, corpus, Path(output) / run, partition_size=partition_size, batch_size=batch_size,
                    scheduler=cluster.scheduler_address, progress=False,
                )
                wall_s.append(time.perf_counter() - start)
                assert not report.failed, report.failed
            return {
                "wall_s": wall_s[0],
                "warm_wall_s": wall_s[1],
                "cluster_start_s": cluster_start_s,
                "worker_rss_mb": max(client.run(peak_rss_mb).values()),
                "threads": max(client.run(torch_threads).values()),
            }
    nlp = spacy.load(pipeline)
    n_process = 2 if mode == "n_process" else 1
    if mode == "one_thread":
        import torch

        torch.set_num_threads(1)
    list(nlp.pipe(["a short warm-up review"] * batch_size, batch_size=batch_size))
    start = time.perf_counter()
    texts = [record["text"] for record in read_jsonl(corpus)]
    cats = [doc.cats for doc in nlp.pipe(texts, batch_size=batch_size, n_process=n_process)]
    wall_s = time.perf_counter() - start
    assert len(cats) == len(texts)
    if mode == "n_process":  # the workers have been joined: their peak is RUSAGE_CHILDREN's
        return {"wall_s": wall_s, "worker_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN), "threads": 1,
                "parent_rss_mb": peak_rss_mb()}
    return {"wall_s": wall_s, "worker_rss_mb": peak_rss_mb(), "threads": torch_threads()}


def run_mode(mode: str, batch_size: int, partition_size: int, pipeline: Path, corpus: Path) -> Dict:
    command = [sys.executable, __file__, "--measure", mode, "--pipeline", str(pipeline), "--corpus", str(corpus),
               "--batch-size", str(batch_size), "--partition-size", str(partition_size)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        fail(f"{mode} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def table(results: Dict[str, Dict], n_docs: int, n_words: int, load: str) -> str:
    names = {
        "one": "one process (`nlp.pipe`)",
        "one_thread": "one process, one torch thread",
        "n_process": "`nlp.pipe(n_process=2)`",
        "dask": "`spacy_rnn.annotate`, 2-worker LocalCluster, first run",
        "dask_warm": "the same, second run (workers warm)",
    }
    results = {**results, "dask_warm": {**results["dask"], "wall_s": results["dask"]["warm_wall_s"]}}
    lines = [
        f"{n_docs:,} IMDB reviews, {n_words:,} words; {os.cpu_count()} CPU cores, load average {load}",
        "",
        "| mode | processes × torch threads | wall (s) | words/s | speed-up | peak memory per worker (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for mode, result in results.items():
        processes = 1 if mode.startswith("one") else 2
        lines.append(
            f"| {names[mode]} | {processes} × {result['threads']} | {result['wall_s']:.1f} | "
            f"{n_words / result['wall_s']:,.0f} | {results['one']['wall_s'] / result['wall_s']:.2f}× | "
            f"{result['worker_rss_mb']:,.0f} |"
        )
    dask, forked = results["dask"], results["n_process"]
    lines += [
        "",
        f"Dask against `nlp.pipe(n_process=2)`: {100 * (dask['wall_s'] / forked['wall_s'] - 1):+.0f}% wall time "
        f"on the first run (the workers import spaCy and load the pipeline), "
        f"{100 * (dask['warm_wall_s'] / forked['wall_s'] - 1):+.0f}% on the second (reading, Parquet writes, "
        f"scheduling), plus {dask['cluster_start_s']:.1f} s to start the LocalCluster. "
        f"Parent process of `n_process=2`: {forked['parent_rss_mb']:,.0f} MB.",
    ]
    return "\n".join(lines)


def main(
    # fmt: off
    data_dir: Path = typer.Option(REPO.parent / "shared" / "data", help="The shared/data folder"),
    n_docs: int = typer.Option(2000, help="Reviews in the corpus"),
    batch_size: int = typer.Option(128, help="nlp.pipe batch size"),
    partition_size: int = typer.Option(250, help="Records per Dask partition"),
    measure_mode: Optional[str] = typer.Option(None, "--measure", hidden=True),
    measure_pipeline: Optional[str] = typer.Option(None, "--pipeline", hidden=True),
    measure_corpus: Optional[str] = typer.Option(None, "--corpus", hidden=True),
    # fmt: on
):
    """One spacy-rnn pipeline over IMDB reviews as one process, with
    nlp.pipe(n_process=2) and on a 2-worker Dask LocalCluster."""
    if measure_mode:  # one mode, in the fresh process run_mode started
        print(json.dumps(measure(measure_mode, measure_pipeline, measure_corpus, batch_size, partition_size)))
        return
    source = data_dir / "stars" / "imdb" / "imdb_test.jsonl.gz"
    if not source.is_file():
        fail(f"{source} not found: pass --data-dir, the folder that holds stars/imdb/")
    with gzip.open(source, "rt", encoding="utf8") as file_:
        records = [json.loads(line) for line, _ in zip(file_, range(n_docs))]
    n_words = sum(len(record["text"].split()) for record in records)
    with tempfile.TemporaryDirectory() as tmp:
        corpus, pipeline = Path(tmp) / "imdb.jsonl", Path(tmp) / "pipeline"
        corpus.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in records))
        build_pipeline([r["text"] for r in records[:50]], [str(r["label"]) for r in records[:50]], pipeline)
        load_before = os.getloadavg()[0]
        results = {}
        for mode in MODES:
            msg.info(f"Measuring {mode} ...")
            results[mode] = run_mode(mode, batch_size, partition_size, pipeline, corpus)
    load = f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    print(table(results, len(records), n_words, load))


if __name__ == "__main__":
    typer.run(main)
