"""Pretraining the encoders: a domain's unlabelled training text and its word
list, gathered for `spacy pretrain`; and `spacy pretrain` that skips a
finished run and resumes an interrupted one.

A run writes OUTPUT_DIR/model0.bin, model1.bin, ... after each epoch,
model-last.bin and log.jsonl, as `spacy pretrain` does, and beside them
resumeN.bin, the training state after epoch N (the latest only:
`spacy_rnn.training_state`), and pretrain.json: the settings, and once
finished the words, seconds and the loss of each epoch. The settings are
the config with its overrides, the md5s of the texts and the word list, and
the spacy_rnn code. Run again with the same settings after a finished run, it
does nothing; with the same settings but for [pretraining] max_epochs, after
an interrupted or a shorter run, it resumes after the last epoch saved, from
its training state: the weights, Adam's moments, step counts and averages of
the encoder and of the language model's output layer, and the random
generators, so that it continues as the uninterrupted run would have; with
other settings it starts afresh.
"""
import hashlib
import random
import re
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import spacy
import srsly
import typer
from spacy.schemas import ConfigSchemaPretrain
from spacy.training.pretrain import ProgressTracker, create_pretraining_model, ensure_docs, make_update
from spacy.util import dot_to_object, load_config, load_model_from_config, registry
from thinc.api import Config, fix_random_seed, require_gpu, set_gpu_allocator
from tqdm import tqdm
from wasabi import Printer

import spacy_rnn
from spacy_rnn import lm_words
from spacy_rnn.corpus import DataError, json_objects
from spacy_rnn.training_state import load_training_state, save_training_state

from .files import fail, fingerprint as code_fingerprint, read_json, write_json, write_jsonl

HELD_OUT_SPLIT = re.compile(r"(?:^|[^a-z])(test|dev)(?:[^a-z]|$)")
INFO = "pretrain.json"
CHECKPOINT = re.compile(r"(?:model|resume)(\d+)\.bin")
RESUME = "resume{}.bin"  # the training state after an epoch
Input = Tuple[Path, List[str]]  # a JSONL file and the fields of its records that hold text


def check_input(path: Path, fields: List[str]) -> None:
    """Refuse what is not a JSONL file, what looks like a test or dev split, and a missing file."""
    if not path.name.endswith(lm_words.JSONL_SUFFIXES) or not fields:
        raise DataError(f"{path}: expected a .jsonl or .jsonl.gz file and the fields of its records that hold text.")
    split = HELD_OUT_SPLIT.search(path.name.lower())
    if split:
        raise DataError(f"{path}: looks like a {split.group(1)} split. Pretrain on training or unlabelled texts only, "
                        "never on the texts a model is evaluated on.")
    if not path.is_file():
        raise DataError(f"{path}: no such file. Run the download step that writes it first.")


def read_fields(path: Path, fields: List[str]) -> Iterator[str]:
    """The non-blank strings in `fields` of each record (a field may hold a list of strings)."""
    for line_no, record in json_objects(path):
        for field in fields:
            if field not in record:
                raise DataError(f"{path}:{line_no}: missing field '{field}'.")
            value = record[field]
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(item, str) for item in values):
                raise DataError(f"{path}:{line_no}: '{field}' must be a string or a list of strings, got {value!r}.")
            yield from (item.strip() for item in values if item.strip())


def gather(inputs: Sequence[Input]) -> Tuple[List[str], Dict[str, int]]:
    """The distinct texts of the inputs, in reading order, and how many texts each input holds."""
    texts: Dict[str, None] = {}  # an insertion-ordered set
    counts = {}
    for path, fields in inputs:
        check_input(path, fields)
        read = list(read_fields(path, fields))
        texts.update(dict.fromkeys(read))
        counts[f"{path}:{','.join(fields)}"] = len(read)
    return list(texts), counts


def cap(nlp: spacy.Language, texts: List[str], max_words: int) -> Tuple[List[str], int]:
    """The first texts whose tokens add up to at most `max_words` (0: all), and their tokens."""
    kept, n_words = [], 0
    docs = nlp.pipe(texts, batch_size=1000)
    for text, doc in tqdm(zip(texts, docs), total=len(texts), desc="Counting tokens", unit=" texts"):
        if max_words and n_words + len(doc) > max_words:
            break
        kept.append(text)
        n_words += len(doc)
    return kept, n_words


def write_texts(inputs: Sequence[Input], output_dir: Path, max_words: int = 0, vocab: int = 20000, seed: int = 0,
                lang: str = "en") -> None:
    """The distinct texts of the inputs, shuffled with `seed`, cut to at most
    `max_words` tokens (0: all), into output_dir/texts.jsonl (one {"text": ...}
    a line, which spacy.JsonlCorpus.v1 reads), and their word list
    output_dir/lm_words.txt (`spacy_rnn.lm_words`, `vocab` words)."""
    try:
        texts, counts = gather(inputs)
    except DataError as err:
        fail(str(err))
    if not texts:
        fail(f"No text in {', '.join(counts)}.")
    random.Random(seed).shuffle(texts)
    kept, n_words = cap(spacy.blank(lang), texts, max_words)
    if not kept:
        fail(f"The first text has more than --max-words {max_words} tokens: raise --max-words.")
    write_jsonl(output_dir / "texts.jsonl", ({"text": text} for text in kept))
    read = ", ".join(f"{spec}: {n:,}" for spec, n in counts.items())
    typer.echo(f"✔ Wrote {len(kept):,} texts, {n_words:,} tokens, to {output_dir / 'texts.jsonl'}. "
               f"Texts read: {read}; {sum(counts.values()) - len(texts):,} duplicates and "
               f"{len(texts) - len(kept):,} texts over --max-words left out.")
    lm_words.main([output_dir / "texts.jsonl"], output_dir / "lm_words.txt", max_words=vocab, lang=lang)


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
    code = code_fingerprint([package]).replace(package.as_posix(), "spacy_rnn")
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
    for path in [*output_dir.glob("model*.bin"), *output_dir.glob("resume*.bin*")]:
        epoch = CHECKPOINT.fullmatch(path.name)
        if not epoch or int(epoch.group(1)) >= keep_epochs:
            path.unlink()
    for path in (output_dir / "log.jsonl", output_dir / INFO):
        path.unlink(missing_ok=True)


def run_pretraining(config: Config, output_dir: Path, epochs_done: int, gpu_id: int = -1) -> bool:
    """`spacy pretrain` from epoch `epochs_done`, with spaCy's objective model,
    updates, progress rows and files (modelN.bin: the tok2vec under the
    optimizer's averages; log.jsonl; model-last.bin, also when interrupted),
    and the training state of the whole objective model (resumeN.bin) after
    each epoch. Resuming, it restores the state saved after epoch
    epochs_done - 1 when there is one, the weights of modelN.bin otherwise
    (without the optimizer state and the output layer); returns whether it
    restored the state."""
    if config["training"]["seed"] is not None:
        fix_random_seed(config["training"]["seed"])
    if gpu_id >= 0 and config["training"]["gpu_allocator"]:
        set_gpu_allocator(config["training"]["gpu_allocator"])
    config = config.copy()
    config["initialize"]["init_tok2vec"] = None
    nlp = load_model_from_config(config)
    interpolated = nlp.config.interpolate()
    settings = registry.resolve(interpolated["pretraining"], schema=ConfigSchemaPretrain)
    corpus = registry.resolve({"corpus": dot_to_object(interpolated, settings["corpus"])})["corpus"]
    model = create_pretraining_model(nlp, settings)
    optimizer = settings["optimizer"]
    restored = False
    if epochs_done:
        state = output_dir / RESUME.format(epochs_done - 1)
        restored = state.exists()
        if restored:
            load_training_state(state, model, optimizer)
        else:
            model.get_ref("tok2vec").from_bytes((output_dir / f"model{epochs_done - 1}.bin").read_bytes())
    tracker = ProgressTracker(frequency=10000)
    printer = Printer()
    printer.divider(f"Pre-training tok2vec layer - starting at epoch {epochs_done}")
    row_settings = {"widths": (3, 10, 10, 6, 4), "aligns": ("r", "r", "r", "r", "r")}
    printer.row(("#", "# Words", "Total Loss", "Loss", "w/s"), **row_settings)

    def save_weights(name: str) -> None:
        with model.use_params(optimizer.averages):
            (output_dir / name).write_bytes(model.get_ref("tok2vec").to_bytes())

    def log(epoch: int) -> None:
        row = {"nr_word": tracker.nr_word, "loss": tracker.loss, "epoch_loss": tracker.epoch_loss, "epoch": epoch}
        with (output_dir / "log.jsonl").open("a", encoding="utf8") as file_:
            file_.write(srsly.json_dumps(row) + "\n")

    try:
        for epoch in range(epochs_done, settings["max_epochs"]):
            for batch in settings["batcher"](corpus(nlp)):
                docs = ensure_docs(batch)
                progress = tracker.update(epoch, make_update(model, docs, optimizer, model.attrs["loss"]), docs)
                if progress:
                    printer.row(progress, **row_settings)
            save_weights(f"model{epoch}.bin")
            save_training_state(output_dir / RESUME.format(epoch), model, optimizer)
            log(epoch)  # the row marks the epoch as saved
            (output_dir / RESUME.format(epoch - 1)).unlink(missing_ok=True)
            tracker.epoch_loss = 0.0
    finally:
        save_weights("model-last.bin")
        log(settings["max_epochs"])
    return restored


def pretrain(config_path: Path, output_dir: Path, overrides: Dict, gpu_id: int = -1) -> Optional[Dict]:
    """Pretrain, resume or skip (see the module's docstring); returns what
    pretrain.json records, None when there was nothing to do."""
    config = load_config(config_path, overrides=overrides, interpolate=True)
    paths = check_inputs(config)
    max_epochs = config["pretraining"]["max_epochs"]
    if not isinstance(max_epochs, int) or max_epochs < 1:
        fail(f"[pretraining] max_epochs = {max_epochs!r}: give --pretraining.max_epochs 1 or more.")
    if config["pretraining"]["n_save_every"] or config["pretraining"]["n_save_epoch"]:
        fail("[pretraining] n_save_every and n_save_epoch must be null: this script saves every epoch, and resumes "
             "after the last one saved.")
    settings = {"config": str(config_path), "overrides": overrides, "fingerprint": fingerprint(config, paths),
                "max_epochs": max_epochs, "objective": config["pretraining"]["objective"]["@architectures"]}
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
    restored = run_pretraining(config, output_dir, len(rows), gpu_id)
    if resume and not restored:
        typer.echo(f"ℹ No {RESUME.format(len(rows) - 1)}: the optimizer and the language model's output layer "
                   "started afresh")
    seconds = time.perf_counter() - start
    epochs = saved_epochs(output_dir)
    words_per_epoch = epochs[0]["nr_word"]  # the log counts words from the start of each run
    info = {
        **settings,
        "finished": True,
        "gpu_id": gpu_id,
        "resumed_after_epoch": len(rows) - 1 if resume else None,
        "training_state_restored": restored,
        "words_per_epoch": words_per_epoch,
        "seconds": round(seconds, 1),
        "words_per_second": round(words_per_epoch * (max_epochs - len(rows)) / seconds),
        "epoch_losses": [round(row["epoch_loss"], 4) for row in epochs],
    }
    write_json(output_dir / INFO, info)
    return info


def budget(encoder: Path) -> str:
    """What an encoder's pretraining cost, from the pretrain.json beside it:
    words an epoch, epochs, the objective and minutes (of its last run, where
    it resumed), e.g. for the header of a table of fine-tuned results."""
    info_path = Path(encoder).parent / INFO
    if not info_path.exists():
        return "pretraining budget unknown (no pretrain.json beside it)"
    info = read_json(info_path)
    if not info.get("finished"):
        return "pretraining unfinished"
    objective = info.get("objective") or info["overrides"].get("pretraining.objective.@architectures", "its objective")
    after = info["resumed_after_epoch"]
    resumed = "" if after is None else f", the last run resumed after epoch {after}"
    epochs = f"{info['max_epochs']} epoch{'s' if info['max_epochs'] != 1 else ''}"
    return (f"{info['words_per_epoch']:,} words × {epochs}, {objective}, "
            f"{info['seconds'] / 60:.0f} minutes at {info['words_per_second']:,} words/s{resumed}")
