"""Accuracy benchmark: spacy-rnn's text classifier configs against the
baselines, on the same splits, each trained with several seeds.

For each seed, dataset and system: `spacy train` (model-best by dev score) or
a baseline of the user project's rnnproject.baselines (TF-IDF + logistic
regression, fastText, spaCy's TextCatBOW.v3, default TextCatEnsemble.v2 and
TorchBiLSTMEncoder), then the test split, written to
<out_dir>/<dataset>/seed<seed>/<system>.json with its predictions (the trained
pipelines go to training/<out_dir's name>/, so that benches with other out_dirs
can run side by side). The seed is
the training seed; the data splits stay fixed. TF-IDF + logistic regression is
deterministic and runs once; fastText's epochs and learning rate are picked on
dev for each seed (a setting that diverges is left out).

The tables give the mean ± sd over the seeds, and each line "best spacy-rnn
against the best baseline" a paired bootstrap 95% interval of the accuracy
difference on the test split (Docs resampled; each Doc's correctness averaged
over the seeds). SARC-pol adds its pairwise accuracy. IMDB and SST-5 trained on
phrases have about ten times the words of the others: their trainings run
`--heavy-max-epochs` epochs and skip spaCy's two slowest baselines.

With `--encoders`, each config also trains on a dataset from that dataset's
pretrained encoder (`paths.init_tok2vec`; configs with a [pretraining] block),
as the system `<config>+pretrained`, and each dataset's section compares it
with the same config from scratch. The best RNN alone is compared with every
baseline.

    python scripts/bench_accuracy.py metrics/bench --datasets "sst5 marc" --seeds "0 1 2" \\
        --configs "textcat_lstm.cfg textcat_ensemble_lstm_w64.cfg" --readme ../docs/performance.md
    python scripts/bench_accuracy.py metrics/pretraining --datasets sst5 --baselines "tfidf fasttext" \\
        --configs pretrain_textcat_lstm_w256.cfg --encoders "sst5=training/pretrain/movies/model-last.bin"
"""
import os
import platform
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy
import spacy
import torch
import typer
from spacy.util import load_config
from wasabi import msg

import project_path  # noqa: F401 - puts the user project's helper package on sys.path
from rnnproject.baselines import SPACY_BASELINES, fasttext_baseline, spacy_baseline, tfidf_logreg
from rnnproject.datasets import CORPORA
from rnnproject.files import (config_overrides, fail, git_commit, read_json, run_with_overrides, write_between_markers,
                              write_json, write_text)
from rnnproject.metrics import N_RESAMPLES, mean_sd, paired_bootstrap, pairwise_correct
from rnnproject.pipelines import evaluate_pipeline, train
from rnnproject.pretraining import budget
from spacy_rnn.corpus import read_jsonl

PROJECT = Path(__file__).resolve().parents[1]
CONFIGS = PROJECT.parent / "configs"
DATASETS = ("sarcasm", "sst5", "sst5_phrases", "marc", "imdb")  # textcat corpora of the table
HEAVY = {"sst5_phrases", "imdb"}  # about ten times the words of SST-5: fewer epochs, no slow spaCy baselines
BASELINES = {
    "tfidf": "TF-IDF + logistic regression",
    "fasttext": "fastText (word bigrams)",
    "bow": "spaCy TextCatBOW.v3",
    "ensemble": "spaCy TextCatEnsemble.v2 (default textcat)",
    "bilstm": "spaCy TorchBiLSTMEncoder + TextCatReduce",
}
DETERMINISTIC = {"tfidf"}
PRETRAINED = "+pretrained"  # the suffix of a config's key when it trains from a pretrained encoder
PRETRAINED_LABEL = ", pretrained encoder"  # and of its name in the records and tables
SLOW_BASELINES = {"ensemble", "bilstm"}  # not run on heavy datasets


def record_path(out_dir: Path, dataset: str, seed: int, system: str) -> Path:
    return out_dir / dataset / f"seed{seed}" / f"{system}.json"


def run_system(system: str, dataset: str, seed: int, out_dir: Path, overrides: Dict,
               encoder: Optional[Path] = None) -> Dict:
    """Train `system` (a config file name, `<config>+pretrained` with the
    dataset's `encoder`, or a baseline key) on `dataset` with `seed` and
    evaluate it on the test split; returns its record."""
    corpus, stars = PROJECT / "corpus" / dataset, CORPORA[dataset].stars
    folder = record_path(out_dir, dataset, seed, system).parent
    key = key_of(system)
    training_dir = PROJECT / "training" / out_dir.name / dataset / f"seed{seed}" / key
    overrides = {**overrides, "system.seed": seed}
    system, pretrained = split_key(system)
    label = PRETRAINED_LABEL if pretrained else ""
    if pretrained:
        overrides = {**overrides, "paths.init_tok2vec": str(encoder)}
    if system == "tfidf":
        return tfidf_logreg(corpus, folder, stars)
    if system == "fasttext":
        return fasttext_baseline(corpus, folder, stars, seed)
    if system in SPACY_BASELINES:
        return spacy_baseline(system, corpus, folder, training_dir.parent, stars, -1, overrides)
    paths = {"paths.train": str(corpus / "train.spacy"), "paths.dev": str(corpus / "dev.spacy")}
    train(CONFIGS / system, training_dir, {**paths, **overrides})
    return evaluate_pipeline(training_dir / "model-best", corpus / "test.spacy", folder, key,
                             f"spacy-rnn {system}{label}", stars=stars)


def systems_of(dataset: str, configs: Sequence[str], baselines: Sequence[str],
               encoders: Dict[str, Path], scratch: bool = True) -> List[str]:
    skipped = SLOW_BASELINES if dataset in HEAVY else set()
    pretrained = [config + PRETRAINED for config in configs] if dataset in encoders else []
    return (list(configs) if scratch else []) + pretrained + [key for key in baselines if key not in skipped]


def split_key(name: str) -> Tuple[str, bool]:
    """A system name or key without its +pretrained suffix, and whether it had one."""
    return (name[: -len(PRETRAINED)], True) if name.endswith(PRETRAINED) else (name, False)


def key_of(system: str) -> str:
    """A system's record name: the config's stem (+pretrained), or the baseline key."""
    config, pretrained = split_key(system)
    return Path(config).stem + (PRETRAINED if pretrained else "")


def system_name(key: str) -> str:
    if key in BASELINES:
        return BASELINES[key]
    config, pretrained = split_key(key)
    return f"spacy-rnn `{config}.cfg`" + (PRETRAINED_LABEL if pretrained else "")


def parse_encoders(encoders: str, check_files: bool) -> Dict[str, Path]:
    """`dataset=file` pairs, separated by spaces, as a dict."""
    parsed = {}
    for pair in encoders.split():
        dataset, _, path = pair.partition("=")
        if dataset not in DATASETS or not path:
            fail(f"Bad --encoders entry '{pair}': write dataset=file, with a dataset of {', '.join(DATASETS)}.")
        if check_files and not Path(path).is_file():
            fail(f"No pretrained encoder file {path} for {dataset}: run the pretrain-* step of its domain first.")
        parsed[dataset] = Path(path)
    return parsed


def item_scores(out_dir: Path, dataset: str, system: str, seeds: Sequence[int], metric: str) -> numpy.ndarray:
    """Per test Doc (accuracy) or per pair (pairwise), the system's
    correctness averaged over its seeds, from the prediction files."""
    runs = []
    for seed in seeds:
        path = record_path(out_dir, dataset, seed, system)
        rows = list(read_jsonl(path.with_name(f"{system}_predictions.jsonl"), required=("gold", "pred")))
        if metric == "pairwise":
            first = next(iter(rows[0]["scores"]))
            runs.append(pairwise_correct([row["group"] for row in rows], [row["gold"] for row in rows],
                                         [row["scores"][first] for row in rows], first))
        else:
            runs.append(numpy.array([row["gold"] == row["pred"] for row in rows], dtype=float))
    return numpy.mean(runs, axis=0)


def is_ensemble(key: str) -> bool:
    return "linear_model" in load_config(CONFIGS / f"{split_key(key)[0]}.cfg")["components"]["textcat"]["model"]


def short_name(key: str) -> str:
    if key in BASELINES:
        return BASELINES[key]
    config, pretrained = split_key(key)
    return f"`{config}`" + (" pretrained" if pretrained else "")


def comparison(out_dir: Path, dataset: str, ours: str, theirs: str, records: Dict[str, List[Dict]],
               seeds: Dict[str, List[int]], metric: str, note: str = "") -> str:
    """One line: `ours` against `theirs` with the paired bootstrap interval of the difference."""
    difference, low, high = paired_bootstrap(item_scores(out_dir, dataset, ours, seeds[ours], metric),
                                             item_scores(out_dir, dataset, theirs, seeds[theirs], metric))
    verdict = "inside the noise (the interval contains 0)" if low <= 0 <= high else "outside the noise"
    mean = {key: numpy.mean([record[metric] for record in records[key]]) for key in (ours, theirs)}
    theirs_name = "itself from scratch" if ours == theirs + PRETRAINED else short_name(theirs)
    return (f"- {short_name(ours)}{note} {100 * mean[ours]:.1f} vs {theirs_name} {100 * mean[theirs]:.1f}: "
            f"{100 * difference:+.1f} points, 95% interval [{100 * low:+.1f}, {100 * high:+.1f}], {verdict}")


def dataset_section(out_dir: Path, dataset: str, records: Dict[str, List[Dict]], configs: Sequence[str],
                    seeds: Dict[str, List[int]]) -> List[str]:
    """The table of one dataset (mean ± sd per system) and its comparison lines."""
    info = CORPORA[dataset]
    pairwise = all("pairwise" in runs[0] for runs in records.values())
    header = ["system", "accuracy", "macro-F1"] + (["pairwise"] if pairwise else []) + \
        (["MAE (stars)"] if info.stars else []) + ["seeds"]
    lines = [f"#### {info.title}", "", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for key, runs in records.items():
        cells = [system_name(key), mean_sd([r["accuracy"] for r in runs]), mean_sd([r["macro_f1"] for r in runs])]
        if pairwise:
            cells.append(mean_sd([r["pairwise"] for r in runs]))
        if info.stars:
            cells.append(mean_sd([r["mae"] for r in runs], scale=1.0, digits=3))
        cells.append("deterministic" if key in DETERMINISTIC else str(len(runs)))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    theirs = [key for key in records if key in BASELINES]
    ours = [key for key in records if key not in BASELINES]
    alone = [key for key in ours if not is_ensemble(key)]
    scratch_pairs = []  # each pretrained config and the same config from scratch
    for key in ours:
        config, pretrained = split_key(key)
        if pretrained and config in records:
            scratch_pairs.append((key, config, ""))
    if not ((ours and theirs) or scratch_pairs):
        return lines
    metrics = ["accuracy"] + (["pairwise"] if pairwise else [])
    for metric in metrics:
        pairs, what = [], []
        if theirs:
            best = {side: max(keys, key=lambda k: numpy.mean([r[metric] for r in records[k]]))
                    for side, keys in (("ours", ours), ("theirs", theirs))}
            pairs = [(best["ours"], best["theirs"], "")]
            what = ["best spacy-rnn config against the best baseline"]
            if alone:
                best_alone = max(alone, key=lambda k: numpy.mean([r[metric] for r in records[k]]))
                alone_pairs = [(best_alone, baseline, " (the best RNN alone, no n-gram part)") for baseline in theirs
                               if (best_alone, baseline) != (best["ours"], best["theirs"])]
                pairs += alone_pairs
                what += ["the best RNN alone against each baseline"] if alone_pairs else []
        pairs += scratch_pairs
        what += ["each pretrained config against itself from scratch"] if scratch_pairs else []
        heading = ", ".join(what)
        lines += [f"{heading[0].upper()}{heading[1:]}, {metric} (paired bootstrap over the test "
                  f"{'pairs' if metric == 'pairwise' else 'Docs'}, {N_RESAMPLES:,} resamples):", ""]
        lines += [comparison(out_dir, dataset, a, b, records, seeds, metric, note) for a, b, note in pairs]
        lines.append("")
    return lines


def markdown(out_dir: Path, results: Dict[str, Dict[str, List[Dict]]], configs: Sequence[str],
             seeds: Dict[str, Dict[str, List[int]]], header: str, baselines: Sequence[str] = tuple(BASELINES)) -> str:
    lines = [header, ""]
    skipped = [BASELINES[key] for key in sorted(SLOW_BASELINES) if key in baselines]
    for dataset, records in results.items():
        if not records:
            continue
        lines += dataset_section(out_dir, dataset, records, configs, seeds[dataset])
        if dataset in HEAVY and skipped:
            lines += [f"Not run on {CORPORA[dataset].title}: {', '.join(skipped)}"
                      " (they train under 25,000 words/s here: hours per seed on ten times the words).", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def summary(results: Dict[str, Dict[str, List[Dict]]], configs: Sequence[str]) -> str:
    """One table of test accuracy, mean ± sd over the seeds: systems × datasets."""
    datasets = list(results)
    spacy_rnn = [key_of(config) + suffix for suffix in ("", PRETRAINED) for config in configs]
    keys = [key for key in spacy_rnn + list(BASELINES) if any(key in records for records in results.values())]
    lines = ["| system | " + " | ".join(CORPORA[d].title for d in datasets) + " |",
             "|---|" + "---:|" * len(datasets)]
    for key in keys:
        name = system_name(key)
        cells = [mean_sd([r["accuracy"] for r in results[d][key]]) if key in results[d] else "–" for d in datasets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def machine_line(seeds: Sequence[int], overrides: Dict, heavy_max_epochs: int, tables_only: bool = False,
                 encoders: Optional[Dict[str, Path]] = None) -> str:
    epochs = overrides.get("training.max_epochs", "from each config")
    commit = (f"tables written at commit {git_commit()} from the records of earlier runs" if tables_only
              else f"commit {git_commit()}")
    by_encoder: Dict[Path, List[str]] = {}
    for dataset, path in (encoders or {}).items():
        by_encoder.setdefault(path, []).append(dataset)
    pretrained = "".join(f" · encoder of {', '.join(datasets)}: {path} ({budget(path)})"
                         for path, datasets in by_encoder.items())
    return (f"Seeds {', '.join(map(str, seeds))} (training seed; fixed splits) · {platform.machine()} · "
            f"{os.cpu_count()} cores · CPU · spaCy {spacy.__version__}, torch {torch.__version__} · "
            f"max_epochs {epochs} ({heavy_max_epochs} on IMDB and SST-5 phrases){pretrained} · {commit}")


def main(
    # fmt: off
    ctx: typer.Context,  # config overrides for every training
    out_dir: Path = typer.Argument(..., help="Folder for the records of each run and the tables"),
    configs: str = typer.Option(..., help="Config file names in ../configs, separated by spaces"),
    datasets: str = typer.Option("sarcasm sst5 marc imdb", help=f"Datasets, separated by spaces: {', '.join(DATASETS)}"),
    baselines: str = typer.Option(" ".join(BASELINES), help="Baselines, separated by spaces"),
    encoders: str = typer.Option(
        "", help="Pretrained encoders, dataset=file separated by spaces: each config also trains from them"
    ),
    seeds: str = typer.Option("0 1 2", help="Training seeds, separated by spaces"),
    heavy_max_epochs: int = typer.Option(2, help="max_epochs on IMDB and on SST-5 phrases"),
    readme: Optional[Path] = typer.Option(None, help="Replace the tables of the --block in this page"),
    block: str = typer.Option("bench-accuracy", help="Name of the generated block (its markers) that --readme replaces"),
    summary_page: Optional[Path] = typer.Option(
        None, "--summary", help="Replace the bench-summary table (accuracy only) in this page (the README)"
    ),
    scratch: bool = typer.Option(
        True, help="Train each config from scratch too; --no-scratch runs only the pretrained side (another lane "
        "or machine trains the rest into the same out_dir, and --tables-only gathers them)"
    ),
    reuse: bool = typer.Option(False, "--reuse", help="Keep the records of earlier runs in out_dir (resume)"),
    tables_only: bool = typer.Option(
        False, "--tables-only", help="Train nothing: the tables of the records already in out_dir"
    ),
    # fmt: on
):
    """Train and test each config and baseline on each dataset with each seed;
    further options (--section.key value) override the configs."""
    config_names, dataset_names, baseline_keys = configs.split(), datasets.split(), baselines.split()
    seed_list = [int(seed) for seed in seeds.split()]
    for kind, names, known in (("dataset", dataset_names, DATASETS), ("baseline", baseline_keys, BASELINES)):
        unknown = sorted(set(names) - set(known))
        if unknown:
            fail(f"Unknown {kind}(s) {', '.join(unknown)}: choose from {', '.join(known)}.")
    encoder_files = parse_encoders(encoders, check_files=not tables_only)
    if not scratch and not encoder_files:
        fail("--no-scratch trains only from pretrained encoders: give --encoders too (dataset=file).")
    no_block = [c for c in config_names if not load_config(CONFIGS / c).get("pretraining")] if encoder_files else []
    if no_block:
        fail(f"{', '.join(no_block)} has no [pretraining] block, so no pretrained encoder loads into it: "
             "give --encoders only with pretrain configs (e.g. pretrain_textcat_lstm_w256.cfg).")
    missing = [d for d in dataset_names if not (PROJECT / "corpus" / d / "test.spacy").exists()]
    if missing:
        fail(f"No corpus for {', '.join(missing)} in {PROJECT / 'corpus'}: run the convert step of each first.")
    overrides = config_overrides(ctx.args)
    header = machine_line(seed_list, overrides, heavy_max_epochs, tables_only, encoder_files)
    heavy_overrides = {**overrides, "training.max_epochs": heavy_max_epochs, "training.eval_frequency": 1000}
    runs: Dict[str, Dict[str, List[Dict]]] = {d: {} for d in dataset_names}  # dataset -> system -> one per seed
    run_seeds: Dict[str, Dict[str, List[int]]] = {d: {} for d in dataset_names}
    for seed in seed_list:
        for dataset in dataset_names:
            for system in systems_of(dataset, config_names, baseline_keys, encoder_files, scratch):
                key = key_of(system)
                if key in DETERMINISTIC and seed != seed_list[0]:
                    continue
                path = record_path(out_dir, dataset, seed, key)
                if tables_only and not path.exists():
                    continue
                if (reuse or tables_only) and path.exists():
                    record = read_json(path)
                else:
                    msg.divider(f"{CORPORA[dataset].title} · {system} · seed {seed}")
                    record = run_system(system, dataset, seed, out_dir,
                                        heavy_overrides if dataset in HEAVY else overrides,
                                        encoder_files.get(dataset))
                runs[dataset].setdefault(key, []).append(record)
                run_seeds[dataset].setdefault(key, []).append(seed)
    report = markdown(out_dir, runs, config_names, run_seeds, header, baseline_keys)
    print(report)
    write_json(out_dir / "accuracy.json", runs)
    write_text(out_dir / "accuracy.md", report)
    if readme:
        write_between_markers(readme, block, report)
    if summary_page:
        write_between_markers(summary_page, "bench-summary", summary(runs, config_names))


if __name__ == "__main__":
    run_with_overrides(main)
