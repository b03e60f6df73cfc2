"""`spacy pretrain` that skips a finished run and resumes an interrupted one
(see rnnproject/pretraining.py). `--texts DIR` sets paths.raw_text and
paths.lm_words to the texts.jsonl and lm_words.txt that pretrain_text.py wrote
there. The time it takes is words × epochs / speed: the texts' tokens (see
pretrain_text.py --max-words) and `--pretraining.max_epochs`.

    python scripts/pretrain.py ../configs/pretrain_textcat_lstm_w256.cfg training/pretrain/reddit \\
        --texts corpus/pretrain/reddit --pretraining.max_epochs 2
"""
from pathlib import Path
from typing import Optional

import typer

from rnnproject.files import config_overrides, run_with_overrides
from rnnproject.pretraining import pretrain


def main(
    # fmt: off
    ctx: typer.Context,  # the config overrides
    config: Path = typer.Argument(..., help="A config with a pretraining section", exists=True, dir_okay=False),
    output_dir: Path = typer.Argument(..., help="Folder for modelN.bin, model-last.bin, log.jsonl, pretrain.json"),
    texts: Optional[Path] = typer.Option(None, help="A folder of pretrain_text.py: its texts and word list"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU to pretrain on; -1: CPU"),
    # fmt: on
):
    """`spacy pretrain` that skips a finished run and resumes an interrupted
    one; further options (--section.key value) override the config."""
    paths = {"paths.raw_text": str(texts / "texts.jsonl"), "paths.lm_words": str(texts / "lm_words.txt")} if texts else {}
    info = pretrain(config, output_dir, {**paths, **config_overrides(ctx.args)}, gpu_id)
    if info is None:
        typer.echo(f"✔ {output_dir / 'model-last.bin'} is pretrained with these settings: nothing to do")
    else:
        typer.echo(f"✔ Pretrained {output_dir / 'model-last.bin'} in {info['seconds']:.0f} s: "
                   f"{info['max_epochs']} × {info['words_per_epoch']:,} words, "
                   f"{info['words_per_second']:,} words/s; loss of each epoch: {info['epoch_losses']}")


if __name__ == "__main__":
    run_with_overrides(main)
