"""Screen the ways to fine-tune from a pretrained encoder, one seed on a dev split.

Trains the config of `--config` once per setting and writes, in OUT_DIR,
`<dataset>.json` (each setting: what it changes, dev accuracy and macro-F1 at
the end, macro-F1 at its best evaluation, the update of its last evaluation,
minutes) and
`<dataset>.md` (the same as a table); with `--docs`, every dataset's table
into that page's `screen` block. The settings, each from scratch and from the
pretrained encoder with the same trials, so that the encoder is compared
under the same search:

- `scratch` / `pretrained`: the config as it is, without or with the encoder
  (`paths.init_tok2vec`);
- `scratch-recipe` / `pretrained-recipe`: ULMFiT's fine-tuning recipe
  (Howard & Ruder 2018) as settings: TextCatRNN.v2 with a LayerNorm over the
  pooled vector, `--docs-per-batch` documents per batch
  (`spacy.batch_by_sequence.v1`), the slanted-triangular rate peaking at
  twice the config's, and (with the encoder) pretrained_encoder_schedule.v3
  with ULMFiT's rate decay of 1/2.6 per part and staged unfreezing over the
  first tenth of the updates;
- `scratch-<part>` / `pretrained-<part>`: one part of the recipe alone,
  `norm` (the pooled LayerNorm), `docs` (documents per batch), `stlr` (the
  slanted-triangular rate over the config's own batches) and, from the
  encoder only, `staged` (v3's decay and unfreezing);
- `frozen`: the frozen-feature mode (`--frozen-config`, TextCatRNN.v2 with
  `pretrained`), the encoder run frozen and mixed into a fresh BiLSTM.

A setting whose training folder has a train.json for the same config is
skipped, so an interrupted screen resumes with the setting it stopped in.

    python scripts/screen.py imdb corpus/imdb metrics/screen --encoder training/pretrain/movies/model-last.bin \\
        --settings "scratch pretrained frozen" --max-epochs 1 --eval-frequency 1000
"""
import math
from pathlib import Path
from typing import Dict, NamedTuple, Optional, Tuple

import spacy
import typer
from spacy.tokens import DocBin
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config
from wasabi import msg

import project_path  # noqa: F401 - puts the user project's helper package on sys.path
from rnnproject.files import fail, git_commit, read_json, write_between_markers, write_json, write_text
from rnnproject.pipelines import corpus_paths, evaluate_predictions, predict, train
from rnnproject.pretraining import budget
from rnnproject.reports import table

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


RECIPE = ("norm", "docs", "stlr", "staged")  # ULMFiT's fine-tuning recipe, part by part ("staged": encoder only)


def word_batches(config: Config, train: DocBin, epochs: int) -> int:
    """Updates in `epochs` epochs of the config's own batcher over the training
    Docs, the number a rate schedule needs (about: spaCy shuffles each epoch;
    a batch size schedule goes on from one epoch to the next, as in training)."""
    batcher = registry.resolve({"batcher": config["training"]["batcher"]})["batcher"]
    docs = list(train.get_docs(Vocab()))
    return sum(1 for _ in range(epochs) for _ in batcher(docs))


def apply_recipe(config: Config, parts: Tuple[str, ...], steps: int, docs_per_batch: int) -> None:
    """The parts of ULMFiT's recipe (see the module's docstring) as config settings."""
    model, training = config["components"]["textcat"]["model"], config["training"]
    if "norm" in parts:
        model["@architectures"] = "spacy_rnn.TextCatRNN.v2"
        model["pooled_norm"] = "layer"
    if "docs" in parts:
        training["batcher"] = {"@batchers": "spacy.batch_by_sequence.v1", "size": docs_per_batch, "get_length": None}
    if "stlr" in parts:
        cut_frac = 0.1  # thinc's schedule needs num_steps * cut_frac >= 1
        training["optimizer"]["learn_rate"] = {
            "@schedules": "slanted_triangular.v1", "max_rate": 2 * training["optimizer"]["learn_rate"],
            "num_steps": max(steps, math.ceil(1 / cut_frac)), "cut_frac": cut_frac, "ratio": 32}
    if "docs" in parts or "stlr" in parts:
        training["max_steps"] = steps
    if "staged" in parts:
        training["before_update"] = {"@callbacks": "spacy_rnn.pretrained_encoder_schedule.v3",
                                     "layer_decay": round(1 / 2.6, 4), "unfreeze_steps": max(1, steps // 20)}


class Setting(NamedTuple):
    changes: str  # what it changes, for the table
    frozen: bool  # starts from the frozen-feature config
    parts: Tuple[str, ...]  # the parts of ULMFiT's recipe it takes
    encoder: bool  # starts from the pretrained encoder


SETTINGS: Dict[str, Setting] = {
    "scratch": Setting("the config as it is", False, (), False),
    "pretrained": Setting("the config from the encoder", False, (), True),
    "scratch-recipe": Setting("pooled LayerNorm, documents per batch, slanted-triangular rate", False, RECIPE[:3], False),
    "pretrained-recipe": Setting("the recipe from the encoder, with per-part rate decay and staged unfreezing",
                                 False, RECIPE, True),
    "frozen": Setting("the frozen encoder's mixed states into a fresh BiLSTM", True, (), True),
    "scratch-norm": Setting("pooled LayerNorm", False, ("norm",), False),
    "pretrained-norm": Setting("pooled LayerNorm, from the encoder", False, ("norm",), True),
    "scratch-docs": Setting("documents per batch", False, ("docs",), False),
    "pretrained-docs": Setting("documents per batch, from the encoder", False, ("docs",), True),
    "scratch-stlr": Setting("slanted-triangular rate", False, ("stlr",), False),
    "pretrained-stlr": Setting("slanted-triangular rate, from the encoder", False, ("stlr",), True),
    "pretrained-staged": Setting("per-part rate decay and staged unfreezing, from the encoder", False, ("staged",), True),
}


def setting_config(setting: Setting, base: Config, encoder: Optional[Path], steps: int, docs_per_batch: int) -> Config:
    """The config of one setting; `steps`: its updates (of `docs_per_batch`
    Docs where it batches documents, else of the config's own batches)."""
    config = base.copy()
    apply_recipe(config, setting.parts, steps, docs_per_batch)
    if setting.encoder:
        config["paths"]["init_tok2vec"] = str(encoder)
    return config


def main(
    # fmt: off
    dataset: str = typer.Argument(..., help="The name of the corpus in the tables, e.g. imdb"),
    corpus: Path = typer.Argument(..., help="A folder of convert.py with train.spacy and dev.spacy", exists=True),
    out_dir: Path = typer.Argument(..., help="Folder for <dataset>.json and <dataset>.md"),
    encoder: Optional[Path] = typer.Option(None, help="The pretrained encoder (model-last.bin of pretrain.py)"),
    settings: str = typer.Option(" ".join(SETTINGS), help="The settings to screen, separated by spaces"),
    config: str = typer.Option("pretrain_textcat_lstm_w256.cfg", help="The config in ../configs"),
    frozen_config: str = typer.Option("pretrain_textcat_lstm_w256_frozen.cfg", help="The frozen-feature config"),
    training_dir: Path = typer.Option(Path("training/screen"), help="Folder for each setting's training"),
    max_epochs: int = typer.Option(1, help="Epochs of each training"),
    docs_per_batch: int = typer.Option(16, help="Documents per batch in the recipe"),
    eval_frequency: int = typer.Option(1000, help="Updates between evaluations on dev"),
    max_steps: int = typer.Option(0, help="Most updates of each training (0: no limit), for a quick run"),
    seed: int = typer.Option(0, help="The training seed"),
    docs: Optional[Path] = typer.Option(None, help="A page whose 'screen' block gets every dataset's table"),
    # fmt: on
):
    """Train each setting once on `corpus` and tabulate its dev scores."""
    unknown = [name for name in settings.split() if name not in SETTINGS]
    if unknown:
        fail(f"Unknown settings {unknown}: choose from {list(SETTINGS)}.")
    needs_encoder = [name for name in settings.split() if SETTINGS[name].encoder]
    if needs_encoder and (encoder is None or not encoder.is_file()):
        fail(f"The settings {needs_encoder} start from a pretrained encoder: give --encoder, a model-last.bin "
             f"of pretrain.py (got {encoder}).")
    paths = corpus_paths(corpus)
    train_docs = DocBin().from_disk(paths["paths.train"])
    word_steps = None  # updates of the config's own batches, counted where a setting needs them
    results_path = out_dir / f"{dataset}.json"
    results = read_json(results_path) if results_path.exists() else {}
    for name in settings.split():
        setting = SETTINGS[name]
        base = Config().from_disk(CONFIGS / (frozen_config if setting.frozen else config), interpolate=False)
        steps = 0  # the updates of a setting whose rate or unfreezing follows them
        if "docs" in setting.parts:
            steps = math.ceil(len(train_docs) / docs_per_batch) * max_epochs
        elif {"stlr", "staged"} & set(setting.parts):
            word_steps = word_steps or word_batches(base, train_docs, max_epochs)
            steps = word_steps
        steps = min(steps, max_steps) if max_steps else steps
        cfg = setting_config(setting, base, encoder.resolve() if encoder else None, steps, docs_per_batch)
        cfg["training"]["max_epochs"] = max_epochs
        if max_steps:
            cfg["training"]["max_steps"] = min(max_steps, cfg["training"]["max_steps"] or max_steps)
        cfg["training"]["eval_frequency"] = eval_frequency
        cfg["system"]["seed"] = seed
        output = training_dir / dataset / name
        output.mkdir(parents=True, exist_ok=True)
        cfg_text = cfg.to_str()
        if (output / "train.json").exists() and (output / "config.cfg").read_text() == cfg_text:
            msg.info(f"{dataset} {name}: trained already ({output})")
        else:
            msg.divider(f"{dataset} {name}: {setting.changes}")
            (output / "train.json").unlink(missing_ok=True)
            (output / "config.cfg").write_text(cfg_text)
            train(output / "config.cfg", output, paths)
        info = read_json(output / "train.json")
        dev_path = output / "dev.json"
        if not dev_path.exists() or dev_path.stat().st_mtime < (output / "train.json").stat().st_mtime:
            write_json(dev_path, dev_scores(output / "model-last", Path(paths["paths.dev"])))
        dev = read_json(dev_path)
        results[name] = {"changes": setting.changes, "dev_accuracy": dev["accuracy"], "dev_macro_f": dev["macro_f"],
                         "dev_best": round(100 * (info["best_score"] or 0.0), 1), "steps": info["steps"],
                         "minutes": round(info["seconds"] / 60, 1), "seed": seed, "epochs": max_epochs}
        results = {key: results[key] for key in SETTINGS if key in results}  # in the order of SETTINGS
        write_json(results_path, results)
    write_text(out_dir / f"{dataset}.md", results_table(results) + "\n")
    msg.good(f"Wrote {results_path} and {out_dir / f'{dataset}.md'}")
    if docs:
        write_between_markers(docs, "screen", screen_block(out_dir, encoder))
        msg.good(f"Wrote the 'screen' block of {docs}")


def dev_scores(model: Path, dev_path: Path) -> Dict[str, float]:
    """Accuracy and macro-F1 (%) of the trained pipeline on the dev Docs, as
    evaluate.py computes them on test."""
    nlp = spacy.load(model)
    examples, _ = predict(nlp, dev_path)
    metrics = evaluate_predictions(examples, nlp, stars=False)["metrics"]
    return {"accuracy": round(100 * metrics["accuracy"], 1), "macro_f": round(100 * metrics["macro_f1"], 1)}


def results_table(results: Dict[str, Dict]) -> str:
    header = ["setting", "changes", "dev accuracy", "dev macro-F1", "best evaluation's macro-F1",
              "update of the last evaluation", "minutes"]
    rows = [[name, r["changes"], f"{r['dev_accuracy']:.1f}", f"{r['dev_macro_f']:.1f}", f"{r['dev_best']:.1f}",
             f"{r['steps']:,}", f"{r['minutes']:.0f}"] for name, r in results.items()]
    return table(header, rows)


def screen_block(out_dir: Path, encoder: Optional[Path]) -> str:
    """Every dataset's table of out_dir under one header: seed, epochs, the
    encoder and its pretraining budget, the commit."""
    tables = {path.stem: read_json(path) for path in sorted(out_dir.glob("*.json"))}
    runs = [result for results in tables.values() for result in results.values()]
    seeds = sorted({result["seed"] for result in runs})
    pretrained = f"encoder {encoder} ({budget(encoder)})" if encoder else "no encoder"
    lines = [f"Seed {', '.join(map(str, seeds))}, one training per setting, scored on the dev split at the end "
             f"(model-last) and at its best evaluation during training · {pretrained} · commit {git_commit()}"]
    for dataset, results in tables.items():
        epochs = sorted({result["epochs"] for result in results.values()})
        lines += ["", f"#### {dataset} (dev split, max_epochs {', '.join(map(str, epochs))})", "",
                  results_table(results)]
    return "\n".join(lines)


if __name__ == "__main__":
    typer.run(main)
