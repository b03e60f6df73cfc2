"""`spacy train`, plus a training log for the learning curve and the time taken.

Runs spaCy's own training (the same as `python -m spacy train CONFIG --output
OUTPUT_DIR ...overrides`) with the console logger also writing every
evaluation to OUTPUT_DIR/log.jsonl, and writes OUTPUT_DIR/train.json (wall
time, steps, best score, the overrides used). Before training, the training
and dev data (DocBins, or seq2seq JSONL) are checked (see
`spacy_rnn.corpus.check_training_docs`): a bad Doc or record stops it with a
message naming the file and the Doc or line.

    python scripts/train.py ../configs/textcat_lstm.cfg training/sarcasm \\
        --paths.train corpus/sarcasm/train.spacy --paths.dev corpus/sarcasm/dev.spacy --training.max_epochs 2
"""
import time
from pathlib import Path
from typing import Dict, Optional

import spacy
import typer
from spacy.cli.train import train as spacy_train
from spacy.util import load_config
from wasabi import msg

from common import config_overrides, fail, run_with_overrides, write_json
from spacy_rnn.corpus import DataError, check_training_docs, read_docs, read_jsonl

TEXTCAT_FACTORIES = {"textcat", "textcat_multilabel"}


def data_kind(config: Dict) -> Optional[str]:
    """"textcat" or "seq2seq" from the pipeline's components (None: neither)."""
    factories = {component.get("factory") for component in config["components"].values()}
    if "rnn_seq2seq" in factories:
        return "seq2seq"
    return "textcat" if factories & TEXTCAT_FACTORIES else None


def check_data(config_path: Path, overrides: Dict) -> None:
    """Raise a DataError naming the file and Doc if the training or dev data
    of this config cannot train its pipeline."""
    config = load_config(config_path, overrides=overrides, interpolate=True)
    kind = data_kind(config)
    paths = [config["paths"].get(split) for split in ("train", "dev")]
    if kind is None or not all(paths):
        return
    nlp = spacy.blank(config["nlp"]["lang"])
    check_training_docs(kind, *[(str(path), read_docs(path, nlp)) for path in paths])


def train(config: Path, output_dir: Path, overrides: Dict, gpu_id: int = -1) -> Dict:
    """Train a pipeline from `config` into output_dir/model-best and
    output_dir/model-last; returns what train.json records. Checks the data
    first (see `check_data`)."""
    check_data(config, overrides)
    log_path = output_dir / "log.jsonl"
    if log_path.exists():
        log_path.unlink()  # spaCy's logger refuses to overwrite a log
    logger = {"@loggers": "spacy.ConsoleLogger.v3", "progress_bar": "eval", "console_output": True,
              "output_file": str(log_path)}
    start = time.perf_counter()
    spacy_train(config, output_dir, use_gpu=gpu_id, overrides={**overrides, "training.logger": logger})
    seconds = time.perf_counter() - start
    log = list(read_jsonl(log_path, required=("step", "epoch", "score")))
    info = {
        "config": str(config),
        "overrides": overrides,
        "gpu_id": gpu_id,
        "seconds": round(seconds, 1),
        "steps": log[-1]["step"] if log else 0,
        "epochs": log[-1]["epoch"] if log else 0,
        "best_score": max((entry["score"] for entry in log), default=None),
    }
    write_json(output_dir / "train.json", info)
    return info


def main(
    # fmt: off
    ctx: typer.Context,  # the config overrides
    config: Path = typer.Argument(..., help="A spaCy training config", exists=True, dir_okay=False),
    output_dir: Path = typer.Argument(..., help="Folder for model-best, model-last, log.jsonl, train.json"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU to train on; -1: CPU"),
    # fmt: on
):
    """`spacy train` with a training log and train.json; further options
    (--section.key value) override the config."""
    try:
        info = train(config, output_dir, config_overrides(ctx.args), gpu_id)
    except DataError as err:
        fail(f"{err} Fix the data (scripts/convert.py writes valid DocBins) and rerun.")
    msg.good(f"Trained {output_dir} in {info['seconds']:.0f} s",
             f"{info['steps']} steps, best score {info['best_score']}")


if __name__ == "__main__":
    run_with_overrides(main)
