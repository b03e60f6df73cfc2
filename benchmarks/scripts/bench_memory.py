"""Peak memory of spacy-rnn pipelines on a very long Doc.

Each case runs in a fresh process: a pipeline built from a shipped config
(untrained weights: memory does not depend on their values) processes a
batch holding one Doc of `--tokens` tokens and `--batch - 1` short reviews;
the peak resident memory above what the process held just before (pipeline
built, Docs tokenized, a short batch already run) is reported, in total and
per token that the model reads.

    python scripts/bench_memory.py --out metrics/memory.md   # every case, a table
    python scripts/bench_memory.py --config ../configs/textcat_lstm.cfg --max-length 0 --batch 64
"""
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

import project_path  # noqa: F401 - puts the user project's helper package on sys.path
from rnnproject.files import write_text

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
LIMITS = {"spacy_rnn.TextCatRNN.v1": "max_length", "spacy_rnn.RNNEncoder.v1": "max_length",
          "spacy_rnn.Seq2Seq.v1": "max_source_length"}
SHORT = "The fabric is soft and the fit is true to size, but the colour faded after one wash."
CASES = [  # config, max_length (None: the default), batch size
    ("textcat_lstm.cfg", None, 1), ("textcat_lstm.cfg", None, 64), ("textcat_lstm.cfg", 0, 1),
    ("textcat_lstm.cfg", 0, 64), ("textcat_rnn.cfg", None, 64), ("textcat_tok2vec_rnn_encoder.cfg", None, 64),
    ("textcat_tok2vec_rnn_encoder.cfg", 0, 64), ("seq2seq_titles.cfg", None, 64), ("seq2seq_titles.cfg", 0, 1),
    ("seq2seq_titles.cfg", 0, 8),  # no limit and 64 Docs: about 8 GiB
]


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def measure(config_path: Path, max_length, n_tokens: int, batch: int) -> dict:
    import spacy
    from spacy.training import Example

    from spacy_rnn import set_target

    config = spacy.util.load_config(config_path)
    for component in config["components"].values():
        for model in (component["model"], component["model"].get("encode", {})):
            if model.get("@architectures") in LIMITS and max_length is not None:
                model[LIMITS[model["@architectures"]]] = max_length
    nlp = spacy.util.load_model_from_config(config, auto_fill=True)
    words = SHORT.split()
    examples = []
    for i in range(8):
        doc = nlp.make_doc(" ".join(words[i:] + words[:i]))
        reference = set_target(doc.copy(), " ".join(words[:3])) if "rnn_seq2seq" in nlp.pipe_names else doc.copy()
        reference.cats = {"A": float(i % 2), "B": float(1 - i % 2)}
        examples.append(Example(doc, reference))
    nlp.initialize(lambda: examples)
    docs = [nlp.make_doc(("word " * n_tokens).strip())] + [nlp.make_doc(SHORT) for _ in range(batch - 1)]
    list(nlp.pipe([nlp.make_doc(SHORT) for _ in range(batch)], batch_size=batch))
    before = peak_kib()
    list(nlp.pipe(docs, batch_size=batch))
    extra_mib = (peak_kib() - before) / 1024
    tokens_read = sum(len(doc) for doc in docs)
    return {"config": config_path.name, "max_length": max_length, "batch": batch, "tokens": tokens_read,
            "peak_extra_mib": round(extra_mib, 1), "kib_per_token": round(1024 * extra_mib / tokens_read, 2)}


def run_all(n_tokens: int) -> str:
    """Every case in a fresh process: a Markdown table, printed row by row."""
    lines = ["| config | max length | batch | peak memory above idle | per token of the batch |", "|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for config, max_length, batch in CASES:
        command = [sys.executable, __file__, "--config", str(CONFIGS / config), "--tokens", str(n_tokens),
                   "--batch", str(batch)] + ([] if max_length is None else ["--max-length", str(max_length)])
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        shown = "default" if max_length is None else "0 (none)"
        lines.append(f"| {config} | {shown} | {batch} | {result['peak_extra_mib']:,.0f} MiB | "
                     f"{result['kib_per_token']:.2f} KiB |")
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def main(
    # fmt: off
    config: Optional[Path] = typer.Option(None, help="One case: this config (default: every case, in turn)"),
    max_length: Optional[int] = typer.Option(None, help="Override the model's max_length (0: no limit)"),
    tokens: int = typer.Option(50_000, help="Tokens of the long Doc"),
    batch: int = typer.Option(64, help="Docs per batch, the long one included"),
    out: Optional[Path] = typer.Option(None, help="Every case: write the table here too"),
    # fmt: on
):
    """Peak memory of spacy-rnn pipelines on a very long Doc: a Markdown table,
    or one case as JSON."""
    if config is None:
        table = run_all(tokens)
        if out:
            write_text(out, table)
    else:
        print(json.dumps(measure(config, max_length, tokens, batch)))


if __name__ == "__main__":
    typer.run(main)
