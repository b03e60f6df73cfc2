"""`spacy pretrain` that skips a finished run and resumes an interrupted one.

Runs spaCy's pretraining (the same as `python -m spacy pretrain CONFIG
OUTPUT_DIR ...overrides`), which writes OUTPUT_DIR/model0.bin, model1.bin, ...
after each epoch, model-last.bin and log.jsonl, and writes
OUTPUT_DIR/pretrain.json: the settings, and once finished the words, seconds
and the loss of each epoch. The settings are the config with its overrides,
the md5s of the texts and the word list, and the spacy_rnn code. Run again:

- with the same settings, after a finished run: nothing to do;
- with the same settings but for [pretraining] max_epochs, after an
  interrupted run or a shorter one: it resumes after the last epoch saved
  (`--resume-path modelN.bin`; the language model's output layer is not
  saved and starts afresh);
- with other settings: it starts afresh.

The time it takes is words × epochs / speed: the texts' tokens (see
pretrain_text.py --max-words) and `--pretraining.max_epochs`.

    python scripts/pretrain.py ../configs/pretrain_textcat_ensemble_lstm_w64.cfg training/pretrain/reddit \\
        --paths.raw_text corpus/pretrain/reddit/texts.jsonl --paths.lm_words corpus/pretrain/reddit/lm_words.txt \\
        --pretraining.max_epochs 2
"""
import hashlib
import re
import time
from pathlib import Path
from typing import Dict, List, Optional

import srsly
import typer
from spacy.training.pretrain import pretrain as spacy_pretrain
from spacy.util import load_config
from thinc.api import Config, require_gpu

import sources
import spacy_rnn
from common import config_overrides, fail, read_json, run_with_overrides, write_json, write_jsonl

INFO = "pretrain.json"
CHECKPOINT = re.compile(r"model(\d+)\.bin")


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as file_:
        for block in iter(lambda: file_.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_inputs(config: Config) -> Dict[str, Path]:
    """The texts and the word list that the interpolated config names; stops
    the script when one is missing."""
    if not config.get("pretraining"):
        fail("The config has no [pretraining] block: use a config such as "
             "configs/pretrain_textcat_ensemble_lstm_w64.cfg.")
    paths = {}
    for key, made_by in (("raw_text", "scripts/pretrain_text.py"), ("lm_words", "scripts/pretrain_text.py or "
                                                                                 "python -m spacy_rnn.lm_words")):
        value = config["paths"].get(key)
        if not value or not Path(value).is_file():
            fail(f"paths.{key} = {value!r}: no such file. Give --paths.{key} PATH ({made_by} writes it).")
        paths[key] = Path(value)
    if paths["raw_text"].suffix != ".jsonl":
        fail(f"paths.raw_text = {paths['raw_text']}: spaCy's JsonlCorpus reads .jsonl files only "
             "(scripts/pretrain_text.py writes one).")
    return paths


def fingerprint(config: Config, paths: Dict[str, Path]) -> str:
    """md5 of what decides the weights of an epoch: the config (max_epochs
    left out: more epochs continue the same run), the input files and the
    spacy_rnn code."""
    settings = config.copy()
    del settings["pretraining"]["max_epochs"]
    package = Path(spacy_rnn.__file__).parent
    code = sources.fingerprint([package]).replace(package.as_posix(), "spacy_rnn")
    text = settings.to_str() + "".join(f"\n{key}={file_md5(path)}" for key, path in sorted(paths.items())) + code
    return hashlib.md5(text.encode("utf8")).hexdigest()


def saved_epochs(output_dir: Path) -> List[Dict]:
    """The log rows of the epochs saved in order, 0, 1, 2...: spaCy logs an
    epoch after writing its modelN.bin (the row it logs for model-last.bin on
    an interruption, and a line cut by a kill, are left out)."""
    log_path = output_dir / "log.jsonl"
    rows: List[Dict] = []
    for row in srsly.read_jsonl(log_path, skip=True) if log_path.exists() else []:
        if row.get("epoch") != len(rows) or not (output_dir / f"model{len(rows)}.bin").exists():
            break
        rows.append(row)
    return rows


def clear(output_dir: Path, keep_epochs: int = 0) -> None:
    """Delete the outputs of an earlier run but its first `keep_epochs` checkpoints."""
    for path in output_dir.glob("model*.bin"):
        epoch = CHECKPOINT.fullmatch(path.name)
        if not epoch or int(epoch.group(1)) >= keep_epochs:
            path.unlink()
    for path in (output_dir / "log.jsonl", output_dir / INFO):
        path.unlink(missing_ok=True)


def pretrain(config_path: Path, output_dir: Path, overrides: Dict, gpu_id: int = -1) -> Optional[Dict]:
    """Pretrain, resume or skip (see the module's docstring); returns what
    pretrain.json records, None when there was nothing to do."""
    config = load_config(config_path, overrides=overrides, interpolate=True)
    paths = check_inputs(config)
    max_epochs = config["pretraining"]["max_epochs"]
    if not isinstance(max_epochs, int) or max_epochs < 1:
        fail(f"[pretraining] max_epochs = {max_epochs!r}: give --pretraining.max_epochs 1 or more.")
    settings = {"config": str(config_path), "overrides": overrides, "fingerprint": fingerprint(config, paths),
                "max_epochs": max_epochs}
    info = read_json(output_dir / INFO) if (output_dir / INFO).exists() else {}
    same = info.get("fingerprint") == settings["fingerprint"]
    if same and info.get("finished") and info["max_epochs"] == max_epochs and (output_dir / "model-last.bin").exists():
        return None
    rows = saved_epochs(output_dir)[:max_epochs] if same else []
    clear(output_dir, keep_epochs=len(rows))
    write_jsonl(output_dir / "log.jsonl", rows)  # spaCy appends to it
    write_json(output_dir / INFO, {**settings, "finished": False})
    resume = output_dir / f"model{len(rows) - 1}.bin" if rows else None
    start_at = f"resuming after epoch {len(rows) - 1} ({resume})" if resume else "starting at epoch 0"
    typer.echo(f"ℹ Pretraining {max_epochs} epochs over {paths['raw_text']}, {start_at}")
    if gpu_id >= 0:
        require_gpu(gpu_id)
    start = time.perf_counter()
    spacy_pretrain(config, output_dir, resume_path=resume, epoch_resume=len(rows) if resume else None,
                   use_gpu=gpu_id, silent=False)
    seconds = time.perf_counter() - start
    epochs = saved_epochs(output_dir)
    words_per_epoch = epochs[0]["nr_word"]  # the log counts words from the start of each run
    info = {
        **settings,
        "finished": True,
        "gpu_id": gpu_id,
        "resumed_after_epoch": len(rows) - 1 if resume else None,
        "words_per_epoch": words_per_epoch,
        "seconds": round(seconds, 1),
        "words_per_second": round(words_per_epoch * (max_epochs - len(rows)) / seconds),
        "epoch_losses": [round(row["epoch_loss"], 4) for row in epochs],
    }
    write_json(output_dir / INFO, info)
    return info


def main(
    # fmt: off
    ctx: typer.Context,  # the config overrides
    config: Path = typer.Argument(..., help="A config with a pretraining section", exists=True, dir_okay=False),
    output_dir: Path = typer.Argument(..., help="Folder for modelN.bin, model-last.bin, log.jsonl, pretrain.json"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU to pretrain on; -1: CPU"),
    # fmt: on
):
    """`spacy pretrain` that skips a finished run and resumes an interrupted
    one; further options (--section.key value) override the config."""
    info = pretrain(config, output_dir, config_overrides(ctx.args), gpu_id)
    if info is None:
        typer.echo(f"✔ {output_dir / 'model-last.bin'} is pretrained with these settings: nothing to do")
    else:
        typer.echo(f"✔ Pretrained {output_dir / 'model-last.bin'} in {info['seconds']:.0f} s: "
                   f"{info['max_epochs']} × {info['words_per_epoch']:,} words, "
                   f"{info['words_per_second']:,} words/s; loss of each epoch: {info['epoch_losses']}")


if __name__ == "__main__":
    run_with_overrides(main)
