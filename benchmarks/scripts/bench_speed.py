"""Speed benchmark: spacy-rnn text classifiers against spaCy's built-in ones
and fastText, every row measured in the same run on the same texts and batches,
on an idle machine and beside busy processes.

For each set of texts (e.g. short SST-5 sentences and MARC-en reviews) and
each load (0, 1, 2 other processes that keep a core busy: `while True: pass`),
each system runs in a fresh subprocess (so that peak memory is its own), the
systems interleaved and repeated: training words/s and words per CPU-second
(nlp.update over one epoch, pre-tokenized, batches of --batch-size Docs),
inference words/s with `nlp.pipe` (tokenizer included) and with the model
alone (batches of --pipe-batch-size Docs), and peak resident memory. fastText
trains on one thread on the same texts. Then, on the idle machine, a roofline:
each config's recurrent layer alone against the matrix-product rate of the
machine and of its own shapes, in fp32 and bf16. With --gpu-id, every system
and the roofline run on that GPU (spacy.require_gpu), as `spacy train
--gpu-id` would.

Ratios hold only for the kind of CPU and the kernels they were measured with,
so the report opens with the environment (rnnproject.environment): CPU model,
ISA flags, BLAS and BLIS kernels, versions, thread and kernel variables, with
a warning for each setting known to slow a library. Every library runs on its
proper kernel: the child processes drop the variables that force kernels
(--keep-env keeps them), and where BLIS, thinc's matrix product, has only its
generic kernels for the CPU, thinc multiplies with numpy's BLAS instead
(--thinc-gemm).

    python scripts/bench_speed.py --texts assets/sst5/sst5_train.jsonl \
        --texts assets/marc_en/marc_en_train.jsonl --out metrics/speed
"""
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import typer

import project_path  # noqa: F401 - puts the user project's helper package on sys.path
from rnnproject.environment import KERNEL_VARIABLES, clean_environ, environment, warnings_for
from rnnproject.environment import markdown as environment_markdown
from rnnproject.files import git_commit, write_between_markers, write_json, write_text

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
FASTTEXT = "fastText (1 thread, bigrams, dim 50)"
FASTTEXT_EPOCHS = 5  # its own default; one epoch of a few thousand texts would time mostly its set-up
RNN_SYSTEMS = {
    "spacy-rnn LSTM (textcat_lstm.cfg)": "textcat_lstm.cfg",
    "spacy-rnn GRU (textcat_gru.cfg)": "textcat_gru.cfg",
    "spacy-rnn Elman RNN (textcat_rnn.cfg)": "textcat_rnn.cfg",
    "spacy-rnn LSTM + bigram NgramLinear (textcat_ensemble_lstm.cfg)": "textcat_ensemble_lstm.cfg",
    "spacy-rnn LSTM w64 + bigram NgramLinear (textcat_ensemble_lstm_w64.cfg)": "textcat_ensemble_lstm_w64.cfg",
    "spacy-rnn LSTM w64 + bigram NgramLinear, LazyAdam (textcat_ensemble_lstm_w64.cfg)": "textcat_ensemble_lstm_w64.cfg",
}
# Systems that train a config with another optimizer than its own, by its registered name.
OPTIMIZERS = {"spacy-rnn LSTM w64 + bigram NgramLinear, LazyAdam (textcat_ensemble_lstm_w64.cfg)": "spacy_rnn.LazyAdam.v1"}
DEFAULT_SYSTEM = "spacy-rnn LSTM w64 + bigram NgramLinear (textcat_ensemble_lstm_w64.cfg)"  # project.yml's default
TARGETS = ["spaCy TextCatEnsemble.v2 (default textcat)", "spaCy TorchBiLSTMEncoder w128 + TextCatReduce"]
LOADS = {0: "idle", 1: "1 busy process", 2: "2 busy processes"}


def read_texts(path: Path, n_docs: int) -> List[str]:
    from spacy_rnn.corpus import read_jsonl

    texts = []
    for record in read_jsonl(path):
        texts.append(record["text"])
        if len(texts) == n_docs:
            break
    return texts


def build_nlp(system: str):
    """The system's pipeline and its optimizer, as `spacy train` would build
    them: a spacy-rnn config's own [training.optimizer], spaCy's default
    training config's for spaCy's built-ins."""
    import spacy
    from spacy.language import DEFAULT_CONFIG
    from spacy.util import load_config, registry

    nlp = spacy.blank("en")
    if system in RNN_SYSTEMS:
        config = load_config(REPO / "configs" / RNN_SYSTEMS[system])
        nlp.add_pipe("textcat", config={"model": config["components"]["textcat"]["model"]})
        optimizer = {**config["training"]["optimizer"], **({"@optimizers": OPTIMIZERS[system]} if system in OPTIMIZERS else {})}
    else:
        model = SPACY_SYSTEMS[system]
        nlp.add_pipe("textcat", config={"model": model} if model else {})
        optimizer = DEFAULT_CONFIG["training"]["optimizer"]
    return nlp, registry.resolve({"optimizer": optimizer})["optimizer"]


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
    from thinc.api import fix_random_seed

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    fix_random_seed(0)
    nlp, optimizer = build_nlp(system)
    docs = list(nlp.tokenizer.pipe(texts))
    n_words = sum(len(doc) for doc in docs)
    examples = [
        Example.from_dict(doc, {"cats": {label: float(label == LABELS[i % 5]) for label in LABELS}})
        for i, doc in enumerate(docs)
    ]
    nlp.initialize(lambda: examples[:100], sgd=optimizer)
    batches = [examples[i : i + batch_size] for i in range(0, len(examples), batch_size)]
    nlp.update(batches[0], sgd=optimizer, drop=0.1)  # warm-up: one-time lazy imports and allocations
    list(nlp.pipe(texts[:pipe_batch_size], batch_size=pipe_batch_size))
    start, cpu_start = time.perf_counter(), time.process_time()
    for batch in batches:
        nlp.update(batch, sgd=optimizer, drop=0.1)
    synchronize()
    train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start

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
        "docs": len(docs),
        "words": n_words,
        "train_wps": n_words / train_s,
        "train_words_per_cpu_s": n_words / train_cpu_s,
        "pipe_wps": n_words / pipe_s,
        "model_wps": n_words / model_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
    }


def measure_fasttext(texts: List[str]) -> Dict:
    """fastText's supervised classifier on the same texts and labels:
    FASTTEXT_EPOCHS epochs on one thread (training rates count the words of
    every epoch), then predictions for every text. Words are counted with
    spaCy's tokenizer, as for the other rows."""
    import fasttext
    import spacy

    n_words = sum(len(doc) for doc in spacy.blank("en").tokenizer.pipe(texts))
    lines = [" ".join(text.lower().split()) for text in texts]
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("".join(f"__label__{LABELS[i % 5]} {line}\n" for i, line in enumerate(lines)))
        start, cpu_start = time.perf_counter(), time.process_time()
        model = fasttext.train_supervised(
            str(train_file), epoch=FASTTEXT_EPOCHS, dim=50, wordNgrams=2, thread=1, verbose=0
        )
        train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    start = time.perf_counter()
    model.predict(lines)
    pipe_s = time.perf_counter() - start
    return {
        "system": FASTTEXT, "docs": len(texts), "words": n_words,
        "train_wps": n_words * FASTTEXT_EPOCHS / train_s,
        "train_words_per_cpu_s": n_words * FASTTEXT_EPOCHS / train_cpu_s, "pipe_wps": n_words / pipe_s, "model_wps": n_words / pipe_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch_threads": 0,
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


def rnn_layer(model_cfg: Dict, d: int, width: int, bidirectional: bool, device: str):
    """The recurrent layer of a config (`spacy_rnn.RNNEncoder.v1`, no length
    limit) for inputs of width d, initialized on `device`."""
    import numpy
    from spacy.util import registry
    from thinc.api import get_current_ops

    build = registry.architectures.get("spacy_rnn.RNNEncoder.v1")
    layer = build(width=width, depth=1, cell=model_cfg["cell"], bidirectional=bidirectional,
                  activation=model_cfg["activation"], max_length=0)
    layer.initialize(X=[get_current_ops().asarray2f(numpy.zeros((2, d), dtype="f"))])
    return layer


def random_inputs(lengths: List[int], d: int) -> List:
    import numpy
    from thinc.api import get_current_ops

    rng = numpy.random.default_rng(0)
    return [get_current_ops().asarray2f(rng.standard_normal((n, d), dtype="f")) for n in lengths]


GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # weight matrices per direction: FLOPs per token 2·gates·N(d+N), forward


def dense_direction_gflops(layer, d: int, flops_per_token: int, n_seqs: int = 16, steps: int = 100) -> float:
    """GFLOP/s of one direction's layer on a dense batch (n_seqs sequences of
    `steps` tokens: no padding): what the layer's shape allows."""
    inputs = random_inputs([steps] * n_seqs, d)
    seconds = median_seconds(lambda: [layer.predict(inputs) for _ in range(5)])
    return 5 * n_seqs * steps * flops_per_token / seconds / 1e9


def shape_ceiling_gflops(d: int, n: int, gates: int, dtype: str, device: str, n_seqs: int = 16,
                         steps: int = 100) -> float:
    """GFLOP/s of the matrix products alone that one direction does on that
    dense batch, at its own shapes, in `dtype`, on spacy-rnn's thread policy:
    the input projection of all steps, (n_seqs·steps × d) @ (d × gates·n),
    then `steps` recurrent products (n_seqs × n) @ (n × gates·n). The most
    the module could reach at those shapes."""
    import torch

    from spacy_rnn.threads import MODULE_THREADS, torch_threads

    kind = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    x, w = torch.randn(n_seqs * steps, d, dtype=kind, device=device), torch.randn(d, gates * n, dtype=kind, device=device)
    h, u = torch.randn(n_seqs, n, dtype=kind, device=device), torch.randn(n, gates * n, dtype=kind, device=device)

    def products() -> None:
        x @ w
        for _ in range(steps):
            h @ u

    with torch_threads(MODULE_THREADS):
        seconds = median_seconds(products, repeats=5)
    return 2 * gates * n * (d + n) * n_seqs * steps / seconds / 1e9


def roofline_row(config_name: str, texts: List[str], batch_size: int, pipe_batch_size: int, device: str) -> Dict:
    """Tokens/s and GFLOP/s of the recurrent layer that a config builds
    (`spacy_rnn.RNNEncoder.v1` with its settings), alone, in inference
    (batches of pipe_batch_size) and in training (forward + backward, batches
    of batch_size); one direction on a dense batch beside the ceilings of its
    own matrix shapes in fp32 and bf16; medians of 3 timings."""
    import spacy
    from spacy.util import load_config

    nlp = spacy.blank("en")
    lengths = [len(doc) for doc in nlp.tokenizer.pipe(texts)]

    def split(size: int) -> List[List[int]]:
        return [lengths[i : i + size] for i in range(0, len(lengths), size)]
    model_cfg = load_config(REPO / "configs" / config_name)["components"]["textcat"]["model"]
    d = model_cfg["tok2vec"]["width"]
    width, cell, bidirectional = model_cfg["width"], model_cfg["cell"], model_cfg["bidirectional"]
    directions = 2 if bidirectional else 1
    n = width // directions
    layer = rnn_layer(model_cfg, d, width, bidirectional, device)
    direction_flops = 2 * GATES[cell] * n * (d + n)
    flops_per_token = direction_flops * directions
    dense_gflops = dense_direction_gflops(rnn_layer(model_cfg, d, n, False, device), d, direction_flops)
    batches = [random_inputs(batch, d) for batch in split(pipe_batch_size)]
    infer_s = median_seconds(lambda: [layer.predict(inputs) for inputs in batches])
    train_batches = [random_inputs(batch, d) for batch in split(batch_size)]

    def train_epoch() -> None:
        for inputs in train_batches:
            states, backprop = layer.begin_update(inputs)
            backprop([layer.ops.alloc2f(*y.shape) + 1 for y in states])
    train_s = median_seconds(train_epoch)
    tokens = sum(lengths)
    return {
        "system": f"{cell.upper() if cell != 'rnn' else 'Elman'} w{width} ({config_name})",
        "flops_per_token": flops_per_token,
        "infer_tokens_per_s": tokens / infer_s,
        "infer_gflops": tokens * flops_per_token / infer_s / 1e9,
        "train_tokens_per_s": tokens / train_s,
        "train_gflops": 3 * tokens * flops_per_token / train_s / 1e9,
        "dense_gflops": dense_gflops,
        "ceiling_fp32": shape_ceiling_gflops(d, n, GATES[cell], "fp32", device),
        "ceiling_bf16": shape_ceiling_gflops(d, n, GATES[cell], "bf16", device),
    }


@contextmanager
def busy_processes(n: int) -> Iterator[None]:
    """n other processes that each keep a core busy while the block runs."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0)
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


def run_in_subprocess(system: str, texts: Path, args: Dict, roofline: bool = False) -> Dict:
    """One row (or, with roofline, one roofline row) measured in a fresh
    process, without the variables that force a library's kernels unless
    --keep-env."""
    cmd = [
        sys.executable, __file__, "--one", system, *(["--roofline-row"] if roofline else []),
        "--texts", str(texts), "--n-docs", str(args["n_docs"]),
        "--batch-size", str(args["batch_size"]), "--pipe-batch-size", str(args["pipe_batch_size"]),
        "--threads", str(args["threads"]), "--gpu-id", str(args["gpu_id"]), "--thinc-gemm", args["thinc_gemm"],
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=clean_environ(args["keep_env"]))
    if result.returncode != 0:
        raise RuntimeError(f"benchmark of {system!r} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def median_rows(runs: List[Dict]) -> Dict:
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    return {**runs[0], **{k: statistics.median(run[k] for run in runs) for k in keys}}


def speed_table(rows: Dict[int, List[Dict]]) -> List[str]:
    """Training and inference words/s of every system, one column per load."""
    loads = list(rows)
    lines = [
        "| system | " + " | ".join(f"training words/s, {LOADS[load]}" for load in loads)
        + " | " + " | ".join(f"nlp.pipe words/s, {LOADS[load]}" for load in loads)
        + " | training words per CPU-second (idle) | model-only words/s (idle) | peak RSS MB |",
        "|---|" + "---:|" * (2 * len(loads) + 3),
    ]
    for i, row in enumerate(rows[loads[0]]):
        per_load = [rows[load][i] for load in loads]
        lines.append(
            f"| {row['system']} | " + " | ".join(f"{r['train_wps']:,.0f}" for r in per_load) + " | "
            + " | ".join(f"{r['pipe_wps']:,.0f}" for r in per_load)
            + f" | {row['train_words_per_cpu_s']:,.0f} | {row['model_wps']:,.0f} | {row['peak_rss_mb']:,.0f} |"
        )
    return lines


def ratio_table(rows: Dict[int, List[Dict]]) -> List[str]:
    """spacy-rnn against the target systems, per load: training · nlp.pipe."""
    loads = list(rows)
    by_name = {load: {row["system"]: row for row in load_rows} for load, load_rows in rows.items()}
    targets = [name for name in TARGETS if name in by_name[loads[0]]]
    ours = [name for name in by_name[loads[0]] if name in RNN_SYSTEMS]
    if not targets or not ours:
        return []
    header = [f"{LOADS[load]}: vs {target}" for load in loads for target in targets]
    lines = [
        "Ratios, spacy-rnn / spaCy built-in, measured side by side at each load (training · nlp.pipe):",
        "",
        "| spacy-rnn | " + " | ".join(header) + " |",
        "|---|" + "---:|" * len(header),
    ]
    for name in ours:
        cells = []
        for load in loads:
            row = by_name[load][name]
            for target in targets:
                base = by_name[load][target]
                cells.append(f"{row['train_wps'] / base['train_wps']:.2f}× · {row['pipe_wps'] / base['pipe_wps']:.2f}×")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def fasttext_line(rows: List[Dict]) -> List[str]:
    by_name = {row["system"]: row for row in rows}
    if FASTTEXT not in by_name or DEFAULT_SYSTEM not in by_name:
        return []
    ours, theirs = by_name[DEFAULT_SYSTEM]["train_words_per_cpu_s"], by_name[FASTTEXT]["train_words_per_cpu_s"]
    return [
        f"Training words per CPU-second on the idle machine: the default config {ours:,.0f}, fastText "
        f"{theirs:,.0f} ({theirs / ours:.1f}× the default config's)."
    ]


def roofline_table(roofline: List[Dict], matmul_size: int) -> List[str]:
    one_thread = roofline[0]["matmul_gflops_one_thread"]
    lines = [
        f"Roofline (idle machine): fp32 {matmul_size}² matrix product {roofline[0]['matmul_gflops']:.0f} GFLOP/s "
        f"on all cores, {one_thread:.0f} GFLOP/s on one thread (spacy-rnn's modules compute on one thread per "
        "direction). FLOPs per token, forward: LSTM 8N(d+N), GRU 6N(d+N), Elman 2N(d+N) per direction; training "
        "≈ 3×. Each config's recurrent layer (`spacy_rnn.RNNEncoder.v1` with its settings) is timed alone in its "
        "own process (median of interleaved runs): on the pipe batches as they come (variable lengths, both "
        "directions; shares of the one-thread ceiling), and one direction on a dense batch of 16 sequences of "
        "100 tokens, beside the ceiling of that direction's own matrix products at their shapes (the input "
        "projection of all steps, then one small product per step) in fp32, the precision it runs in, and in "
        "bf16.",
        "",
        "| RNN layer alone | FLOPs/token | inference tokens/s | inference GFLOP/s (share) | training tokens/s "
        "| training GFLOP/s (share) | one direction, dense 16×100, GFLOP/s | its shapes' fp32 ceiling, GFLOP/s "
        "(share) | its shapes' bf16 ceiling, GFLOP/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in roofline:
        lines.append(
            f"| {row['system']} | {row['flops_per_token']:,} | {row['infer_tokens_per_s']:,.0f} | "
            f"{row['infer_gflops']:.1f} ({row['infer_gflops'] / one_thread:.0%}) | {row['train_tokens_per_s']:,.0f} | "
            f"{row['train_gflops']:.1f} ({row['train_gflops'] / one_thread:.0%}) | {row['dense_gflops']:.1f} | "
            f"{row['ceiling_fp32']:.1f} ({row['dense_gflops'] / row['ceiling_fp32']:.0%}) | {row['ceiling_bf16']:.1f} |"
        )
    return lines


def markdown(results: List[Dict], machine: Dict) -> str:
    gemm = {"numpy": "numpy's BLAS (thinc's NumpyOps with use_blis=False, as BLIS has no kernels for this CPU)",
            "blis": "BLIS, thinc's default"}[machine["thinc_gemm"]]
    lines = [
        "Environment of the run (the ratios hold for this kind of CPU and these kernels):", "",
        environment_markdown(machine["environment"]),
        f"- Run: on {machine['device']} · torch threads {machine['torch_threads']} (spacy-rnn's modules compute "
        f"on one) · thinc's matrix product (spaCy's built-ins, spacy-rnn's output layers): {gemm} · child "
        f"processes {'keep' if machine['keep_env'] else 'run without'} the kernel variables "
        f"{', '.join(KERNEL_VARIABLES)} · each system trains with its config's optimizer (spaCy's built-ins: "
        f"spaCy's default training config's) · training batches of {machine['batch_size']} Docs, inference "
        f"batches of {machine['pipe_batch_size']} · median of {machine['repeats']} interleaved runs · commit "
        f"{machine['commit']}",
    ]
    for result in results:
        rows = {int(load): load_rows for load, load_rows in result["rows"].items()}
        first = rows[min(rows)]
        lines += [
            "", f"#### {result['name']}: {first[0]['docs']:,} texts, {first[0]['words']:,} words "
            f"({first[0]['words'] / first[0]['docs']:.1f} per text)", "",
        ]
        lines += speed_table(rows) + [""] + ratio_table(rows)
        lines += [""] + fasttext_line(rows[min(rows)])
        if result.get("roofline"):
            lines += [""] + roofline_table(result["roofline"], machine["matmul_size"])
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def texts_name(path: Path) -> str:
    return path.stem.replace("_train", "")


def main(
    texts: List[Path] = typer.Option(
        [Path("assets/sst5/sst5_train.jsonl"), Path("assets/marc_en/marc_en_train.jsonl")],
        help="JSONL files with a 'text' field, one table each (repeat the option)",
    ),
    n_docs: int = typer.Option(3000, help="texts read from each file"),
    batch_size: int = typer.Option(64, help="Docs per training batch"),
    pipe_batch_size: int = typer.Option(256, help="Docs per inference batch"),
    threads: int = typer.Option(0, help="torch threads of the process (0: torch's default)"),
    repeats: int = typer.Option(3, help="interleaved runs per system; the tables show medians"),
    loads: str = typer.Option("0 1 2", help="busy processes beside the systems, one table column each, separated by spaces"),
    systems: str = typer.Option("", help="systems to run, separated by ';' (default: all)"),
    roofline: str = typer.Option(
        "textcat_lstm.cfg textcat_ensemble_lstm_w64.cfg pretrain_textcat_lstm_w256.cfg",
        help="configs in ../configs whose recurrent layer is timed alone on the idle machine, separated by spaces "
        "(empty: none)"),
    out: Optional[Path] = typer.Option(None, help="write <out>.json and <out>.md"),
    doc: Optional[Path] = typer.Option(None, help="replace the tables between the bench-speed markers of this file"),
    gpu_id: int = typer.Option(-1, help="run on this GPU (default -1: the CPU)"),
    thinc_gemm: str = typer.Option(
        "auto", help="thinc's CPU matrix product: blis, numpy, or auto (numpy where BLIS has only its generic "
        "kernels for this CPU)"),
    keep_env: bool = typer.Option(False, help="let the child processes keep the kernel variables "
                                  "(OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE, BLIS_ARCH_TYPE)"),
    one: Optional[str] = typer.Option(None, hidden=True),
    roofline_one: bool = typer.Option(False, "--roofline-row", hidden=True),
) -> None:
    import torch
    from thinc.api import NumpyOps, set_current_ops
    from wasabi import msg

    from spacy_rnn.threads import MODULE_THREADS, torch_threads

    if thinc_gemm not in ("auto", "blis", "numpy"):
        raise typer.BadParameter(f"--thinc-gemm must be auto, blis or numpy, not {thinc_gemm!r}")
    if threads:
        torch.set_num_threads(threads)
    device = "cpu" if gpu_id < 0 else f"cuda:{gpu_id}"
    if one:  # a child process: one system on one file
        if thinc_gemm == "numpy":
            set_current_ops(NumpyOps(use_blis=False))
        sample = read_texts(texts[0], n_docs)
        if roofline_one:
            print(json.dumps(roofline_row(one, sample, batch_size, pipe_batch_size, device)))
        elif one == FASTTEXT:
            print(json.dumps(measure_fasttext(sample)))
        else:
            print(json.dumps(measure(one, sample, batch_size, pipe_batch_size, gpu_id)))
        return
    from tqdm import tqdm

    env = environment()
    for warning in warnings_for(env):
        msg.warn(warning)
    if thinc_gemm == "auto":
        thinc_gemm = "numpy" if env["blis_kernels"] == "generic" else "blis"
    args = {"n_docs": n_docs, "batch_size": batch_size, "pipe_batch_size": pipe_batch_size, "threads": threads,
            "gpu_id": gpu_id, "thinc_gemm": thinc_gemm, "keep_env": keep_env}
    names = [name.strip() for name in systems.split(";") if name.strip()] or [
        *SPACY_SYSTEMS, *RNN_SYSTEMS, *([FASTTEXT] if gpu_id < 0 else [])]
    results = []
    for path in texts:
        result = {"name": texts_name(path), "path": str(path), "n_docs": n_docs, "rows": {}}
        for load in map(int, loads.split()):
            runs: Dict[str, List[Dict]] = {name: [] for name in names}
            with busy_processes(load):
                jobs = [name for _ in range(repeats) for name in names]  # interleaved runs
                for name in tqdm(jobs, desc=f"{result['name']}, {LOADS[load]}"):
                    runs[name].append(run_in_subprocess(name, path, args))
            result["rows"][load] = [median_rows(runs[name]) for name in names]
        ours = roofline.split()
        if ours:
            ceiling = statistics.median(matmul_gflops(device, matmul_size(device)) for _ in range(3))
            with torch_threads(MODULE_THREADS):
                one_thread = statistics.median(matmul_gflops(device, matmul_size(device)) for _ in range(3))
            roofline_runs: Dict[str, List[Dict]] = {name: [] for name in ours}
            jobs = [name for _ in range(repeats) for name in ours]
            for name in tqdm(jobs, desc=f"{result['name']}, roofline"):
                roofline_runs[name].append(run_in_subprocess(name, path, args, roofline=True))
            result["roofline"] = [
                {**median_rows(runs), "matmul_gflops": ceiling, "matmul_gflops_one_thread": one_thread}
                for runs in roofline_runs.values()
            ]
        results.append(result)
    machine = {
        "environment": env,
        "thinc_gemm": thinc_gemm,
        "keep_env": keep_env,
        "device": "CPU" if device == "cpu" else torch.cuda.get_device_name(device),
        "matmul_size": matmul_size(device),
        "torch_threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "pipe_batch_size": pipe_batch_size,
        "repeats": repeats,
        "commit": git_commit(),
    }
    report = markdown(results, machine)
    print(report)
    if out:
        write_json(out.with_suffix(".json"), {"machine": machine, "results": results})
        write_text(out.with_suffix(".md"), report)
    if doc:
        write_between_markers(doc, "bench-speed", report)


if __name__ == "__main__":
    typer.run(main)
