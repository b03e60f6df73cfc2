"""Speed benchmark: spacy-rnn text classifiers against spaCy's built-in ones,
every row measured in the same run on the same texts and batches.

For each system, in a fresh subprocess (so that peak memory is its own):
training words/s (nlp.update over one epoch, pre-tokenized, batches of
--batch-size Docs), inference words/s with `nlp.pipe` (tokenizer included)
and with the model alone (batches of --pipe-batch-size Docs), and peak
resident memory. Then a roofline line:
the machine's fp32 matrix-product rate against the FLOPs the RNN does.
With --gpu-id, every system and the roofline run on that GPU
(spacy.require_gpu), as `spacy train --gpu-id` would.

    python project/scripts/bench_speed.py --texts ../shared/data/stars/marc_en/marc_en_train.jsonl --out bench/speed
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

from common import write_between_markers, write_json, write_text

REPO = Path(__file__).resolve().parents[2]
LABELS = ["1", "2", "3", "4", "5"]

SPACY_SYSTEMS = {
    "spaCy TextCatBOW.v3": {
        "@architectures": "spacy.TextCatBOW.v3",
        "exclusive_classes": True,
        "ngram_size": 1,
        "no_output_layer": False,
        "length": 262144,
    },
    "spaCy TextCatEnsemble.v2 (default textcat)": None,  # the textcat factory's default model
    "spaCy TorchBiLSTMEncoder w128 + TextCatReduce": {
        "@architectures": "spacy.TextCatReduce.v1",
        "exclusive_classes": True,
        "use_reduce_first": False,
        "use_reduce_last": True,
        "use_reduce_max": True,
        "use_reduce_mean": False,
        "tok2vec": {
            "@architectures": "spacy.Tok2Vec.v2",
            "embed": {
                "@architectures": "spacy.MultiHashEmbed.v2",
                "width": 128,
                "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
                "rows": [5000, 1000, 2500, 2500],
                "include_static_vectors": False,
            },
            "encode": {"@architectures": "spacy.TorchBiLSTMEncoder.v1", "width": 128, "depth": 1, "dropout": 0.0},
        },
    },
}
RNN_SYSTEMS = {
    "spacy-rnn LSTM (textcat_lstm.cfg)": "textcat_lstm.cfg",
    "spacy-rnn GRU (textcat_gru.cfg)": "textcat_gru.cfg",
    "spacy-rnn Elman RNN (textcat_rnn.cfg)": "textcat_rnn.cfg",
    "spacy-rnn LSTM + bigram NgramLinear (textcat_ensemble_lstm.cfg)": "textcat_ensemble_lstm.cfg",
    "spacy-rnn LSTM w64 + bigram NgramLinear (textcat_ensemble_lstm_w64.cfg)": "textcat_ensemble_lstm_w64.cfg",
}


def read_texts(path: Path, n_docs: int) -> List[str]:
    from spacy_rnn.corpus import read_jsonl

    texts = []
    for record in read_jsonl(path):
        texts.append(record["text"])
        if len(texts) == n_docs:
            break
    return texts


def build_nlp(system: str):
    import spacy
    from spacy.util import load_config

    if system in RNN_SYSTEMS:
        config = load_config(REPO / "configs" / RNN_SYSTEMS[system])
        model = config["components"]["textcat"]["model"]
        nlp = spacy.blank("en")
        nlp.add_pipe("textcat", config={"model": model})
        return nlp
    nlp = spacy.blank("en")
    model = SPACY_SYSTEMS[system]
    nlp.add_pipe("textcat", config={"model": model} if model else {})
    return nlp


def synchronize() -> None:
    """Wait for queued GPU work, so that a timer read after it counts it."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def measure(system: str, texts: List[str], batch_size: int, pipe_batch_size: int, gpu_id: int = -1) -> Dict:
    """One system, one run: the figures for one row."""
    import spacy
    import torch
    from spacy.training import Example
    from thinc.api import Adam, fix_random_seed

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    fix_random_seed(0)
    nlp = build_nlp(system)
    docs = list(nlp.tokenizer.pipe(texts))
    n_words = sum(len(doc) for doc in docs)
    examples = [
        Example.from_dict(doc, {"cats": {label: float(label == LABELS[i % 5]) for label in LABELS}})
        for i, doc in enumerate(docs)
    ]
    optimizer = nlp.initialize(lambda: examples[:100], sgd=Adam(0.001))
    batches = [examples[i : i + batch_size] for i in range(0, len(examples), batch_size)]
    nlp.update(batches[0], sgd=optimizer, drop=0.1)  # warm-up: one-time lazy imports and allocations
    list(nlp.pipe(texts[:pipe_batch_size], batch_size=pipe_batch_size))
    start = time.perf_counter()
    for batch in batches:
        nlp.update(batch, sgd=optimizer, drop=0.1)
    synchronize()
    train_s = time.perf_counter() - start

    start = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=pipe_batch_size):
        pass
    pipe_s = time.perf_counter() - start

    model = nlp.get_pipe("textcat").model
    start = time.perf_counter()
    for i in range(0, len(docs), pipe_batch_size):
        model.predict(docs[i : i + pipe_batch_size])
    synchronize()
    model_s = time.perf_counter() - start
    return {
        "system": system,
        "words": n_words,
        "train_wps": n_words / train_s,
        "pipe_wps": n_words / pipe_s,
        "model_wps": n_words / model_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
    }


def matmul_size(device: str) -> int:
    """The side of the square matrix product that measures the ceiling: one
    that fills the device."""
    return 1024 if device == "cpu" else 8192


def matmul_gflops(device: str, size: int, repeats: int = 20) -> float:
    import torch

    a = torch.randn(size, size, device=device)
    a @ a
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def median_seconds(run: Callable[[], None], repeats: int = 3) -> float:
    """The median wall time of `repeats` calls of run, after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        run()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def dense_direction_gflops(network, d: int, flops_per_token: int, n_seqs: int = 16, steps: int = 100) -> float:
    """GFLOP/s of one direction's network on a dense batch (n_seqs sequences
    of `steps` tokens: no padding, no gathers): what the layer's shape allows."""
    import torch

    x = torch.randn(n_seqs, steps, d, device=next(network.parameters()).device)
    with torch.inference_mode():
        seconds = median_seconds(lambda: [network(x) for _ in range(5)])
    return 5 * n_seqs * steps * flops_per_token / seconds / 1e9


def roofline_row(system: str, texts: List[str], batch_size: int, pipe_batch_size: int, device: str) -> Dict:
    """Tokens/s and GFLOP/s of the torch RNN module that `system`'s config
    builds, alone, in inference (batches of pipe_batch_size) and in training
    (forward + backward, batches of batch_size); medians of 3 timings."""
    import spacy
    import torch
    from spacy.util import load_config

    from spacy_rnn.nn.recurrent import RecurrentEncoder, build_direction

    nlp = spacy.blank("en")
    lengths = [len(doc) for doc in nlp.tokenizer.pipe(texts)]

    def split(size: int) -> List[List[int]]:
        return [lengths[i : i + size] for i in range(0, len(lengths), size)]
    per_gate_flops = {"lstm": 8, "gru": 6, "rnn": 2}  # × N(d+N) per direction, forward
    model_cfg = load_config(REPO / "configs" / RNN_SYSTEMS[system])["components"]["textcat"]["model"]
    d = model_cfg["tok2vec"]["width"]
    width, cell = model_cfg["width"], model_cfg["cell"]
    directions = 2 if model_cfg["bidirectional"] else 1
    n = width // directions
    encoder = RecurrentEncoder(
        d, width, cell=cell, depth=1, bidirectional=model_cfg["bidirectional"], activation=model_cfg["activation"]
    ).to(device)
    direction_flops = per_gate_flops[cell] * n * (d + n)
    flops_per_token = direction_flops * directions
    direction = build_direction(cell, d, n, model_cfg["activation"]).to(device)
    dense_gflops = dense_direction_gflops(direction, d, direction_flops)
    batches = split(pipe_batch_size)
    inputs = [torch.randn(sum(batch), d, device=device) for batch in batches]
    with torch.inference_mode():
        infer_s = median_seconds(lambda: [encoder(x, batch) for x, batch in zip(inputs, batches)])
    train_batches = split(batch_size)
    train_inputs = [torch.randn(sum(batch), d, device=device) for batch in train_batches]

    def train_epoch() -> None:
        for x, batch in zip(train_inputs, train_batches):
            states, final = encoder(x, batch)
            (states.sum() + final.sum()).backward()
    train_s = median_seconds(train_epoch)
    tokens = sum(lengths)
    return {
        "system": system,
        "flops_per_token": flops_per_token,
        "infer_tokens_per_s": tokens / infer_s,
        "infer_gflops": tokens * flops_per_token / infer_s / 1e9,
        "train_tokens_per_s": tokens / train_s,
        "train_gflops": 3 * tokens * flops_per_token / train_s / 1e9,
        "dense_gflops": dense_gflops,
    }


def run_in_subprocess(system: str, args, roofline: bool = False) -> Dict:
    """One row (or, with roofline, one roofline row) measured in a fresh process."""
    cmd = [
        sys.executable, __file__, "--one", system, *(["--roofline"] if roofline else []),
        "--texts", str(args.texts), "--n-docs", str(args.n_docs),
        "--batch-size", str(args.batch_size), "--pipe-batch-size", str(args.pipe_batch_size),
        "--threads", str(args.threads), "--gpu-id", str(args.gpu_id),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark of {system!r} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def median_rows(runs: List[Dict]) -> Dict:
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    return {**runs[0], **{k: statistics.median(run[k] for run in runs) for k in keys}}


def markdown(rows: List[Dict], roofline: List[Dict], machine: Dict) -> str:
    lines = [
        f"Machine: {machine['cpu']} · {machine['cores']} cores · run on {machine['device']} · "
        f"torch threads {machine['torch_threads']} · "
        f"{machine['n_docs']:,} reviews ({machine['words']:,} words) · training batches of {machine['batch_size']} "
        f"Docs, inference batches of {machine['pipe_batch_size']} · median of {machine['repeats']} runs",
        "",
        "| system | training words/s | inference words/s (nlp.pipe) | model-only words/s | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['system']} | {row['train_wps']:,.0f} | {row['pipe_wps']:,.0f} | "
            f"{row['model_wps']:,.0f} | {row['peak_rss_mb']:,.0f} |"
        )
    builtins = [row for row in rows if row["system"] in SPACY_SYSTEMS]
    ours = [row for row in rows if row["system"] in RNN_SYSTEMS]
    lines += ["", "Ratios, spacy-rnn / spaCy built-in (training · nlp.pipe inference):", ""]
    lines += ["| spacy-rnn | " + " | ".join(row["system"] for row in builtins) + " |"]
    lines += ["|---|" + "---:|" * len(builtins)]
    for row in ours:
        cells = [
            f"{row['train_wps'] / b['train_wps']:.2f}× · {row['pipe_wps'] / b['pipe_wps']:.2f}×" for b in builtins
        ]
        lines.append(f"| {row['system']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Roofline: fp32 {machine['matmul_size']}² matrix product {roofline[0]['matmul_gflops']:.0f} GFLOP/s "
        f"on this machine. "
        "FLOPs per token, forward: LSTM 8N(d+N), GRU 6N(d+N), Elman 2N(d+N) per direction; training ≈ 3×. "
        "Each module is timed alone in its own process (median of 3 interleaved runs), on the pipe batches "
        "as they come (variable lengths, chunks padded, both directions); "
        "the last column is one direction of the same layer on a dense batch, the most that shape allows.",
        "",
        "| RNN module alone | FLOPs/token | inference tokens/s | inference GFLOP/s (share) | training tokens/s "
        "| training GFLOP/s (share) | one direction, dense 16×100 batch, GFLOP/s (share) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in roofline:
        ceiling = row["matmul_gflops"]
        lines.append(
            f"| {row['system']} | {row['flops_per_token']:,} | {row['infer_tokens_per_s']:,.0f} | "
            f"{row['infer_gflops']:.1f} ({row['infer_gflops'] / ceiling:.0%}) | {row['train_tokens_per_s']:,.0f} | "
            f"{row['train_gflops']:.1f} ({row['train_gflops'] / ceiling:.0%}) | "
            f"{row['dense_gflops']:.1f} ({row['dense_gflops'] / ceiling:.0%}) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=Path, default=REPO.parent / "shared" / "data" / "stars" / "marc_en" /
                        "marc_en_train.jsonl", help="a JSONL file with a 'text' field")
    parser.add_argument("--n-docs", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64, help="Docs per training batch")
    parser.add_argument("--pipe-batch-size", type=int, default=256, help="Docs per inference batch")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--systems", nargs="*", default=None, help="names to run (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    parser.add_argument("--readme", type=Path, default=None, help="replace the speed tables in this README")
    parser.add_argument("--gpu-id", type=int, default=-1, help="run on this GPU (default -1: the CPU)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--roofline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = read_texts(args.texts, args.n_docs)
    device = "cpu" if args.gpu_id < 0 else f"cuda:{args.gpu_id}"
    if args.one and args.roofline:
        print(json.dumps(roofline_row(args.one, texts, args.batch_size, args.pipe_batch_size, device)))
        return
    if args.one:
        print(json.dumps(measure(args.one, texts, args.batch_size, args.pipe_batch_size, args.gpu_id)))
        return
    from tqdm import tqdm

    systems = args.systems or [*SPACY_SYSTEMS, *RNN_SYSTEMS]
    jobs = [(system, repeat) for repeat in range(args.repeats) for system in systems]  # interleaved runs
    runs: Dict[str, List[Dict]] = {system: [] for system in systems}
    for system, _ in tqdm(jobs, desc="systems × repeats"):
        runs[system].append(run_in_subprocess(system, args))
    rows = [median_rows(runs[system]) for system in systems]
    ceiling = statistics.median(matmul_gflops(device, matmul_size(device)) for _ in range(3))
    roofline_runs: Dict[str, List[Dict]] = {system: [] for system in RNN_SYSTEMS}
    for system, _ in tqdm([(system, r) for r in range(args.repeats) for system in RNN_SYSTEMS], desc="roofline"):
        roofline_runs[system].append(run_in_subprocess(system, args, roofline=True))
    roofline = [{**median_rows(runs), "matmul_gflops": ceiling} for runs in roofline_runs.values()]
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "device": "CPU" if device == "cpu" else torch.cuda.get_device_name(device),
        "matmul_size": matmul_size(device),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "n_docs": len(texts),
        "words": rows[0]["words"],
        "batch_size": args.batch_size,
        "pipe_batch_size": args.pipe_batch_size,
        "repeats": args.repeats,
    }
    report = markdown(rows, roofline, machine)
    print(report)
    if args.out:
        write_json(args.out.with_suffix(".json"), {"machine": machine, "rows": rows, "roofline": roofline})
        write_text(args.out.with_suffix(".md"), report)
    if args.readme:
        write_between_markers(args.readme, "bench-speed", report)


if __name__ == "__main__":
    main()
