"""Scaling benchmark of `spacy_rnn.annotate`: records/s on 1, 2, 4, ... Dask
workers, up to the machine's cores, against one process's `nlp.pipe`.

The corpus is --n-records short reviews generated deterministically from a
word list, written as JSONL into --workdir (a temporary folder, never the
repository), with prefixes of it for the smaller jobs. The pipeline is a
`textcat` with the model of configs/textcat_ensemble_lstm_w64.cfg (BiLSTM of
width 64 and a bigram linear model over HashEmbed), trained for --train-steps
updates on generated reviews.

Every measurement runs in a fresh Python process:
- planning: the client's `plan_partitions` for the whole corpus, beside one
  full read of the file (what planning cost before it worked from file sizes);
- one process: `nlp.pipe` over the --job-records job, texts read from the
  JSONL, in a process that has loaded the pipeline, on torch's default
  threads and on one;
- annotate: `spacy_rnn.annotate` on a LocalCluster of N single-threaded
  workers, timed from the cluster's start (the workers start, import spaCy and
  torch and load the pipeline) to the last Parquet file written, with Dask's
  task stream splitting start-up (until the first task) from processing; the
  --job-records job on 1, 2, 4, ... workers, and once more on the most
  workers started by fork instead of Dask's default, spawn;
- strong scaling: the whole corpus on 1, 2, 4, ... workers; weak scaling: the
  same records per worker (the corpus divided by the most workers).

    python scripts/bench_scale.py --doc ../docs/scaling.md --plot ../docs/scaling.png
"""
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import srsly
import typer
from wasabi import msg

import project_path  # noqa: F401 - puts the user project's helper package on sys.path
from rnnproject.files import write_between_markers

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "textcat_ensemble_lstm_w64.cfg"
NEUTRAL = (
    "the a this film movie plot story actor actress cast ending music scenes script it was is and but with "
    "very quite rather too bit of in its director camera dialogue pace characters"
).split()
POSITIVE = "great good fun lovely superb moving brilliant charming gripping funny".split()
NEGATIVE = "bad dull awful boring weak silly poor clumsy tedious flat".split()


def reviews(n: int, seed: int = 0):
    """(text, label) of n short reviews: 3 to 12 neutral words and 1 to 3 words
    of the review's polarity, shuffled; the same for the same n and seed."""
    rng = random.Random(seed)
    for _ in range(n):
        positive = rng.random() < 0.5
        words = rng.choices(NEUTRAL, k=rng.randint(3, 12)) + rng.choices(
            POSITIVE if positive else NEGATIVE, k=rng.randint(1, 3)
        )
        rng.shuffle(words)
        yield " ".join(words), "POS" if positive else "NEG"


def write_corpora(workdir: Path, sizes: List[int]) -> Dict[int, Path]:
    """reviews-<n>.jsonl for each size, each a prefix of the largest."""
    lines = [json.dumps({"text": text}) + "\n" for text, _ in reviews(max(sizes))]
    paths = {}
    for size in sorted(set(sizes)):
        paths[size] = workdir / f"reviews-{size}.jsonl"
        paths[size].write_text("".join(lines[:size]), encoding="utf8")
    return paths


def train_pipeline(path: Path, steps: int) -> None:
    import spacy
    from spacy.training import Example
    from spacy.util import load_config, minibatch
    from thinc.api import fix_random_seed

    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat", config={"model": load_config(CONFIG)["components"]["textcat"]["model"]})
    examples = [
        Example.from_dict(nlp.make_doc(text), {"cats": {"POS": float(label == "POS"), "NEG": float(label == "NEG")}})
        for text, label in reviews(64 * steps, seed=1)
    ]
    optimizer = nlp.initialize(lambda: examples[:500])
    for batch in minibatch(examples, 64):
        nlp.update(batch, sgd=optimizer)
    nlp.to_disk(path)


def measure_planning(corpus: Path, blocksize: str) -> Dict:
    from spacy_rnn.annotate import find_inputs, parse_blocksize, plan_partitions

    start = time.perf_counter()
    partitions = plan_partitions(find_inputs(corpus), "text", parse_blocksize(blocksize))
    plan_s = time.perf_counter() - start
    start = time.perf_counter()
    with corpus.open("rb") as file_:
        records = sum(1 for line in file_ if line.strip())
    return {"plan_s": plan_s, "partitions": len(partitions), "full_read_s": time.perf_counter() - start,
            "records": records, "bytes": corpus.stat().st_size}


def measure_pipe(pipeline: Path, corpus: Path, batch_size: int, threads: int) -> Dict:
    """nlp.pipe in this process, on `threads` torch threads (0: torch's default)."""
    import spacy
    import torch

    if threads:
        torch.set_num_threads(threads)
    nlp = spacy.load(pipeline)
    list(nlp.pipe(["a short warm-up review"] * batch_size, batch_size=batch_size))
    start = time.perf_counter()
    with corpus.open("rb") as file_:
        texts = [json.loads(line)["text"] for line in file_]
    n_cats = sum(len(doc.cats) for doc in nlp.pipe(texts, batch_size=batch_size))
    wall_s = time.perf_counter() - start
    assert n_cats == 2 * len(texts)
    return {"wall_s": wall_s, "records": len(texts), "workers": 1, "threads": torch.get_num_threads()}


def measure_annotate(
    pipeline: Path, corpus: Path, workers: int, blocksize: str, batch_size: int, out: Path, start_method: str
) -> Dict:
    """annotate on a new LocalCluster whose worker processes Dask starts with
    `start_method` (its distributed.worker.multiprocessing-method)."""
    import dask
    import torch
    from distributed import Client, get_task_stream

    from spacy_rnn.annotate import annotate, start_local_cluster

    dask.config.set({"distributed.worker.multiprocessing-method": start_method})
    started = time.time()
    with start_local_cluster(workers) as cluster, Client(cluster) as client:
        cluster_start_s = time.time() - started
        with get_task_stream(client) as stream:
            report = annotate(
                pipeline, corpus, out, blocksize=blocksize, batch_size=batch_size,
                scheduler=cluster.scheduler_address, progress=False,
            )
        wall_s = time.time() - started
        threads = set(client.run(torch.get_num_threads).values())
    shutil.rmtree(out)
    assert not report.failed and report.rows == sum(1 for _ in corpus.open("rb")), report.summary()
    computes = [span for task in stream.data for span in task["startstops"] if span["action"] == "compute"]
    first = min(span["start"] for span in computes)
    return {
        "wall_s": wall_s, "cluster_start_s": cluster_start_s, "first_task_s": first - started,
        "processing_s": max(span["stop"] for span in computes) - first, "records": report.rows,
        "partitions": len(report.written), "workers": workers, "threads": max(threads), "start_method": start_method,
    }


def run_child(spec: Dict) -> Dict:
    """One measurement in a fresh Python process."""
    command = [sys.executable, __file__, "--one", json.dumps(spec)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        msg.fail(f"{spec} failed", result.stderr[-3000:], exits=1)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_one(spec: Dict) -> Dict:
    if spec["kind"] == "planning":
        return measure_planning(Path(spec["corpus"]), spec["blocksize"])
    if spec["kind"] == "pipe":
        return measure_pipe(Path(spec["pipeline"]), Path(spec["corpus"]), spec["batch_size"], spec["threads"])
    return measure_annotate(
        Path(spec["pipeline"]), Path(spec["corpus"]), spec["workers"], spec["blocksize"], spec["batch_size"],
        Path(spec["out"]), spec.get("start_method", "spawn"),
    )


def worker_counts(cores: int) -> List[int]:
    """1, 2, 4, ... up to the cores, and the cores themselves."""
    counts = [2**i for i in range(cores.bit_length()) if 2**i <= cores]
    return counts if counts[-1] == cores else counts + [cores]


def rate(run: Dict) -> float:
    return run["records"] / run["wall_s"]


def processing_rate(run: Dict) -> float:
    return run["records"] / run["processing_s"]


def markdown(results: Dict) -> str:
    setup, planning, pipe = results["setup"], results["planning"], results["pipe"][0]
    lines = [
        f"{setup['cores']} CPU cores ({setup['cpu']}), load average {setup['load']}; spaCy {setup['spacy']}, "
        f"torch {setup['torch']}, Dask {setup['dask']}. Pipeline: `textcat` with the model of "
        f"`configs/textcat_ensemble_lstm_w64.cfg`, trained for {setup['train_steps']} updates. Corpus: "
        f"{planning['records']:,} generated short reviews ({planning['bytes'] / 1e6:.1f} MB of JSONL, "
        f"{setup['words_per_record']:.1f} words each on average); blocksize {setup['blocksize']}, "
        f"`nlp.pipe` batches of {setup['batch_size']}.",
        "",
        f"Planning the {planning['records']:,}-record JSONL ({planning['partitions']} partitions): "
        f"**{planning['plan_s'] * 1000:.1f} ms** of client time; one full read of the file, for comparison: "
        f"{planning['full_read_s']:.2f} s.",
        "",
        f"**A job of {pipe['records']:,} records**, end to end. For `annotate`: from the LocalCluster's start "
        "to the last Parquet file; *start-up* is the time until the first task starts (worker processes "
        "start, import spaCy and torch, load the pipeline); *processing* counts from then on. One process "
        f"(torch's default threads) and annotate on {results['job'][-2]['workers']} workers ran "
        f"{len(results['ratios'])} times, interleaved; the rows show the pair of median ratio (the ratios: "
        f"{', '.join(f'{ratio:.2f}×' for ratio in results['ratios'])}).",
        "",
        "| system | processes × torch threads | start-up (s) | wall (s) | records/s | processing records/s "
        "| vs one process |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for run in results["pipe"]:
        lines.append(
            f"| one process, `nlp.pipe` | 1 × {run['threads']} | – | {run['wall_s']:.1f} | {rate(run):,.0f} | – | "
            f"{rate(run) / rate(pipe):.2f}× |"
        )
    for run in results["job"]:
        system = "`spacy_rnn.annotate`" + (", workers started by fork" if run["start_method"] == "fork" else "")
        lines.append(
            f"| {system} | {run['workers']} × {run['threads']} | {run['first_task_s']:.1f} | {run['wall_s']:.1f} | "
            f"{rate(run):,.0f} | {processing_rate(run):,.0f} | {rate(run) / rate(pipe):.2f}× |"
        )
    strong, weak = results["strong"], results["weak"]
    lines += [
        "",
        f"**Strong scaling**: all {strong[0]['records']:,} records, end to end (*vs one process*: against the "
        "records/s of one process above).",
        "",
        "| workers | partitions | start-up (s) | wall (s) | records/s | processing records/s | speed-up | efficiency "
        "| vs one process |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in strong:
        speed_up = rate(run) / rate(strong[0])
        lines.append(
            f"| {run['workers']} | {run['partitions']} | {run['first_task_s']:.1f} | {run['wall_s']:.1f} | "
            f"{rate(run):,.0f} | {processing_rate(run):,.0f} | {speed_up:.2f}× | "
            f"{100 * speed_up / run['workers']:.0f}% | {rate(run) / rate(pipe):.2f}× |"
        )
    lines += [
        "",
        f"**Weak scaling**: {weak[0]['records']:,} records per worker, end to end.",
        "",
        "| workers | records | start-up (s) | wall (s) | records/s | efficiency (1 worker's wall / this wall) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for run in weak:
        lines.append(
            f"| {run['workers']} | {run['records']:,} | {run['first_task_s']:.1f} | {run['wall_s']:.1f} | "
            f"{rate(run):,.0f} | {100 * weak[0]['wall_s'] / run['wall_s']:.0f}% |"
        )
    return "\n".join(lines)


def plot(results: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strong, weak, pipe = results["strong"], results["weak"], results["pipe"][0]
    job = [run for run in results["job"] if run["start_method"] == "spawn"]
    forked = [run for run in results["job"] if run["start_method"] == "fork"]
    workers = [run["workers"] for run in strong]
    big, small = f"{strong[0]['records']:,} records", f"{pipe['records']:,} records"
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    left.plot(workers, [rate(run) for run in strong], "o-", label=f"annotate, {big}")
    left.plot(workers, [processing_rate(run) for run in strong], "^--", label=f"annotate, {big}, after start-up")
    left.plot(workers, [rate(run) for run in job], "s-", label=f"annotate, {small}")
    forked_label = f"annotate, {small}, workers forked"
    left.plot([run["workers"] for run in forked], [rate(run) for run in forked], "D", label=forked_label)
    left.plot(workers, [w * rate(strong[0]) for w in workers], ":", color="grey", label="linear from 1 worker")
    for run, style in zip(results["pipe"], ["--", "-."]):
        label = f"one process's nlp.pipe, {run['threads']} torch thread(s)"
        left.axhline(rate(run), color="black", linestyle=style, label=label)
    left.set(xlabel="workers (one core each)", ylabel="records/s, end to end", title="Strong scaling", xticks=workers)
    left.set_ylim(bottom=0)
    left.legend(fontsize=7, loc="lower right")
    right.plot([run["workers"] for run in weak], [run["wall_s"] for run in weak], "o-", label="annotate")
    right.axhline(weak[0]["wall_s"], color="grey", linestyle=":", label="ideal (flat)")
    right.set(xlabel="workers (one core each)", ylabel="wall time (s)", xticks=[run["workers"] for run in weak],
              title=f"Weak scaling: {weak[0]['records']:,} records per worker")
    right.set_ylim(0, 1.3 * max(run["wall_s"] for run in weak))
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(
    workdir: Path = typer.Option(Path("/tmp/spacy-rnn-bench-scale"), help="folder for the corpus and outputs"),
    n_records: int = typer.Option(1_000_000, help="records of the corpus (strong scaling)"),
    job_records: int = typer.Option(200_000, help="records of the job compared with one process's nlp.pipe"),
    blocksize: str = typer.Option("512KiB", help="annotate's blocksize"),
    batch_size: int = typer.Option(256, help="nlp.pipe batch size, for one process and for the workers"),
    train_steps: int = typer.Option(30, help="updates of the pipeline's training (batches of 64)"),
    repeats: int = typer.Option(3, help="interleaved runs of one process and of annotate on the most workers"),
    max_workers: int = typer.Option(0, help="most workers (0: the machine's cores)"),
    out: Optional[Path] = typer.Option(None, help="write the results as JSON"),
    doc: Optional[Path] = typer.Option(None, help="replace the tables between the bench-scale markers of this file"),
    plot_path: Optional[Path] = typer.Option(None, "--plot", help="write the scaling plot (PNG)"),
    one: Optional[str] = typer.Option(None, hidden=True),
) -> None:
    if one:  # a child process: one measurement
        print(json.dumps(measure_one(json.loads(one))))
        return
    import dask
    import spacy
    import torch
    from dask.system import CPU_COUNT

    counts = worker_counts(max_workers or CPU_COUNT)
    per_worker = n_records // counts[-1]
    workdir.mkdir(parents=True, exist_ok=True)
    msg.info(f"Writing {n_records:,} reviews and training the pipeline in {workdir}")
    corpora = write_corpora(workdir, [n_records, job_records] + [w * per_worker for w in counts])
    pipeline = workdir / "pipeline"
    train_pipeline(pipeline, train_steps)
    load_before = os.getloadavg()[0]
    common = {"pipeline": str(pipeline), "blocksize": blocksize, "batch_size": batch_size, "out": str(workdir / "out")}

    def pipe_run(threads: int) -> Dict:
        msg.text(f"one process's nlp.pipe: {job_records:,} records on {threads or 'default'} torch thread(s)")
        return run_child({**common, "kind": "pipe", "corpus": str(corpora[job_records]), "threads": threads})

    def annotate_run(records: int, workers: int, start_method: str = "spawn") -> Dict:
        msg.text(f"annotate: {records:,} records on {workers} worker(s), started by {start_method}")
        spec = {**common, "kind": "annotate", "corpus": str(corpora[records]), "workers": workers}
        return run_child({**spec, "start_method": start_method})

    msg.text("planning")
    results = {"planning": run_child({"kind": "planning", "corpus": str(corpora[n_records]), "blocksize": blocksize})}
    pairs = [(pipe_run(0), annotate_run(job_records, counts[-1])) for _ in range(repeats)]  # interleaved
    pairs.sort(key=lambda pair: rate(pair[1]) / rate(pair[0]))
    results["ratios"] = [rate(job) / rate(pipe) for pipe, job in pairs]
    pipe, job = pairs[len(pairs) // 2]  # the tables show the pair of median ratio
    results["pipe"] = [pipe, pipe_run(1)]
    results["job"] = [annotate_run(job_records, workers) for workers in counts[:-1]] + [
        job, annotate_run(job_records, counts[-1], "fork")
    ]
    results["strong"] = [annotate_run(n_records, workers) for workers in counts]
    strong = {run["workers"]: run for run in results["strong"]}
    results["weak"] = [strong[w] if w * per_worker == n_records else annotate_run(w * per_worker, w) for w in counts]
    texts = [text for text, _ in reviews(10_000)]
    results["setup"] = {
        "cores": os.cpu_count(), "cpu": platform.machine(), "spacy": spacy.__version__, "torch": torch.__version__,
        "dask": dask.__version__, "load": f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
        "train_steps": train_steps, "blocksize": blocksize, "batch_size": batch_size,
        "words_per_record": sum(len(text.split()) for text in texts) / len(texts),
    }
    report = markdown(results)
    print(report)
    ratios = ", ".join(f"{ratio:.2f}×" for ratio in results["ratios"])
    msg.info(f"{job_records:,} records: {counts[-1]} workers against one process's nlp.pipe, cluster start "
             f"included: {ratios} (median {results['ratios'][len(pairs) // 2]:.2f}×)")
    msg.info(f"Planning {n_records:,} records: {results['planning']['plan_s'] * 1000:.1f} ms of client time")
    if out:
        srsly.write_json(out, results)
    if doc:
        write_between_markers(doc, "bench-scale", report)
    if plot_path:
        plot(results, plot_path)
        msg.good(f"Plot: {plot_path}")


if __name__ == "__main__":
    typer.run(main)
