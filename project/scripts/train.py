"""`spacy train`, plus a training log for the learning curve and the time taken.

Runs spaCy's own training (the same as `python -m spacy train CONFIG --output
OUTPUT_DIR ...overrides`) with the console logger also writing every
evaluation to OUTPUT_DIR/log.jsonl, and writes OUTPUT_DIR/train.json (wall
time, steps, best score, the overrides used). `--corpus DIR` sets
paths.train and paths.dev to the DIR's train and dev files (.spacy, or
seq2seq .jsonl). The training and dev data are checked first: a bad Doc or
record stops it with a message naming the file and the Doc or line.

    python scripts/train.py ../configs/textcat_lstm.cfg training/sarcasm --corpus corpus/sarcasm \\
        --training.max_epochs 2
"""
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from rnnproject.files import config_overrides, fail, run_with_overrides
from rnnproject.pipelines import corpus_paths, train
from spacy_rnn.corpus import DataError


def main(
    # fmt: off
    ctx: typer.Context,  # the config overrides
    config: Path = typer.Argument(..., help="A spaCy training config", exists=True, dir_okay=False),
    output_dir: Path = typer.Argument(..., help="Folder for model-best, model-last, log.jsonl, train.json"),
    corpus: Optional[Path] = typer.Option(None, help="A folder of convert.py: its train and dev files train"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU to train on; -1: CPU"),
    # fmt: on
):
    """`spacy train` with a training log and train.json; further options
    (--section.key value) override the config."""
    overrides = {**(corpus_paths(corpus) if corpus else {}), **config_overrides(ctx.args)}
    try:
        info = train(config, output_dir, overrides, gpu_id)
    except DataError as err:
        fail(f"{err} Fix the data (scripts/convert.py writes valid DocBins) and rerun.")
    msg.good(f"Trained {output_dir} in {info['seconds']:.0f} s",
             f"{info['steps']} steps, best score {info['best_score']}")


if __name__ == "__main__":
    run_with_overrides(main)
