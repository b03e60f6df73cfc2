"""Accuracy benchmark: every spacy-rnn text classifier config against the
baselines of the workflows, on the same splits with the same training budget.

For each dataset and each config in ../configs: `spacy train` (scripts/train.py,
model-best by dev score) and an evaluation on the test split
(scripts/evaluate.py), written to <out_dir>/<dataset>/<config stem>.json. The
baselines' records come from metrics/<dataset>/ (the `baselines-*` steps).
Prints one table (accuracy / macro-F1, and MAE in stars for star ratings) and
the best spacy-rnn row against the best baseline per dataset.

    python scripts/bench_accuracy.py metrics/bench --datasets "sarcasm sst5 marc" \\
        --configs "textcat_lstm.cfg textcat_ensemble_lstm.cfg" --readme ../docs/performance.md
"""
from pathlib import Path
from typing import Dict, List, Optional

import typer
from wasabi import msg

from common import config_overrides, fail, read_json, run_with_overrides, write_between_markers, write_json, write_text
from evaluate import evaluate_pipeline
from train import train

PROJECT = Path(__file__).resolve().parents[1]
CONFIGS = PROJECT.parent / "configs"
DATASETS = {"sarcasm": "SARC-pol", "sst5": "SST-5", "marc": "MARC-en"}
STARS = {"sst5", "marc"}
BASELINES = {
    "tfidf": "TF-IDF + logistic regression",
    "bow": "spaCy TextCatBOW.v3",
    "ensemble": "spaCy TextCatEnsemble.v2",
    "bilstm": "spaCy TorchBiLSTMEncoder + TextCatReduce",
}


def run_config(config: str, dataset: str, out_dir: Path, overrides: Dict, reuse: bool = False) -> Dict:
    """Train `config` on `dataset` and evaluate it on the test split (with
    `reuse`, read the record of an earlier run instead where there is one)."""
    record_path = out_dir / dataset / f"{Path(config).stem}.json"
    if reuse and record_path.exists():
        return read_json(record_path)
    corpus = PROJECT / "corpus" / dataset
    training_dir = PROJECT / "training" / "bench" / dataset / Path(config).stem
    train(CONFIGS / config, training_dir,
          {"paths.train": str(corpus / "train.spacy"), "paths.dev": str(corpus / "dev.spacy"), **overrides})
    return evaluate_pipeline(
        training_dir / "model-best", corpus / "test.spacy", out_dir / dataset, Path(config).stem,
        f"spacy-rnn {config}", stars=dataset in STARS, log=training_dir / "log.jsonl",
        train_info=training_dir / "train.json",
    )


def cell(record: Dict, dataset: str) -> str:
    if record is None:
        return "–"
    text = f"{100 * record['accuracy']:.1f} / {100 * record['macro_f1']:.1f}"
    return text + (f" / {record['mae']:.3f}" if dataset in STARS else "")


def markdown(results: Dict[str, Dict[str, Dict]], datasets: List[str], configs: List[str]) -> str:
    """results[dataset][system key] -> metrics record."""
    header = ["system"] + [
        f"{DATASETS[d]} acc / mF1" + (" / MAE" if d in STARS else "") for d in datasets
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(datasets)]
    systems = [(Path(c).stem, f"spacy-rnn `{c}`") for c in configs] + list(BASELINES.items())
    for key, name in systems:
        lines.append(f"| {name} | " + " | ".join(cell(results[d].get(key), d) for d in datasets) + " |")
    lines += ["", "Best spacy-rnn config against the best baseline (accuracy, test split):", ""]
    for d in datasets:
        ours = max((Path(c).stem for c in configs), key=lambda k: results[d][k]["accuracy"])
        theirs = max((k for k in BASELINES if k in results[d]), key=lambda k: results[d][k]["accuracy"])
        gap = 100 * (results[d][ours]["accuracy"] - results[d][theirs]["accuracy"])
        lines.append(
            f"- {DATASETS[d]}: `{ours}` {100 * results[d][ours]['accuracy']:.1f} vs {BASELINES[theirs]} "
            f"{100 * results[d][theirs]['accuracy']:.1f} ({gap:+.1f} points)"
        )
    return "\n".join(lines) + "\n"


def main(
    # fmt: off
    ctx: typer.Context,  # config overrides for every training
    out_dir: Path = typer.Argument(..., help="Folder for the metrics of each config and the table"),
    configs: str = typer.Option(..., help="Config file names in ../configs, separated by spaces"),
    datasets: str = typer.Option(" ".join(DATASETS), help="Datasets, separated by spaces"),
    readme: Optional[Path] = typer.Option(None, help="Replace the bench-accuracy table in this page"),
    reuse: bool = typer.Option(False, "--reuse", help="Reuse the records of earlier runs in out_dir"),
    # fmt: on
):
    """Train and test each config on each dataset beside the baselines; further
    options (--section.key value) override the configs."""
    config_names, dataset_names = configs.split(), datasets.split()
    unknown = sorted(set(dataset_names) - set(DATASETS))
    if unknown:
        fail(f"Unknown dataset(s) {', '.join(unknown)}: choose from {', '.join(DATASETS)}.")
    overrides = config_overrides(ctx.args)
    results: Dict[str, Dict[str, Dict]] = {}
    for dataset in dataset_names:
        baselines_dir = PROJECT / "metrics" / dataset
        results[dataset] = {
            key: read_json(baselines_dir / f"{key}.json")
            for key in BASELINES if (baselines_dir / f"{key}.json").exists()
        }
        for config in config_names:
            results[dataset][Path(config).stem] = run_config(config, dataset, out_dir, overrides, reuse)
    report = markdown(results, dataset_names, config_names)
    msg.text(report)
    write_json(out_dir / "accuracy.json", results)
    write_text(out_dir / "accuracy.md", report)
    if readme:
        write_between_markers(readme, "bench-accuracy", report)


if __name__ == "__main__":
    run_with_overrides(main)
