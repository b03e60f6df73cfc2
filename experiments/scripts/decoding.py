"""Choose the decoding settings of a trained rnn_seq2seq model on the dev split.

Decodes the dev pairs once per setting (greedy or beam width, length penalty,
n-gram blocking, prior penalty) and scores each: ROUGE-L, ROUGE-1, the share
of distinct outputs and of output words copied from the review. Writes, in
OUT_DIR,

- `decoding.json`: every setting with its scores, and the best (highest dev
  ROUGE-L among those with at least `--min-distinct` distinct outputs; ties
  go to the more distinct outputs);
- `decoding.md`: the same as a table, best first;
- `decoding.png`: dev ROUGE-L against the share of distinct titles, one
  point per setting, the best one marked.

Given `--save`, the pipeline is saved there with the best settings in its cfg
(the trained model itself is left as it is).

    python scripts/decoding.py training/titles/model-best corpus/titles/dev.jsonl metrics/titles \\
        --save training/titles/model-decoding
"""
import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import spacy
import typer
from spacy.language import Language
from tqdm import tqdm
from wasabi import msg

import project_path  # noqa: F401 - puts the user project's helper package on sys.path
from rnnproject.corpora import read_docs
from rnnproject.files import fail, write_json, write_text
from rnnproject.metrics import seq2seq_result
from rnnproject.pipelines import SEQ2SEQ_PIPE, predict_references
from rnnproject.plots import plt, save_figure
from spacy_rnn.corpus import DataError

SETTING_KEYS = ("beam_size", "length_penalty", "no_repeat_ngram_size", "prior_penalty")


def settings_grid(
    beam_sizes: List[int], length_penalties: List[float], no_repeat: List[int], prior_penalties: List[float]
) -> List[Dict]:
    """Every combination; greedy search (beam 1) ignores the length penalty, so it comes once per blocking
    and prior penalty."""
    grid = []
    for beam, penalty, block, prior in itertools.product(beam_sizes, length_penalties, no_repeat, prior_penalties):
        setting = {"beam_size": beam, "length_penalty": penalty if beam > 1 else 1.0, "no_repeat_ngram_size": block,
                   "prior_penalty": prior}
        if setting not in grid:
            grid.append(setting)
    return grid


def best_setting(results: List[Dict], min_distinct: float = 0.0) -> Dict:
    """The highest ROUGE-L among the settings with at least `min_distinct` distinct outputs."""
    eligible = [result for result in results if result["distinct"] >= min_distinct]
    if not eligible:
        most = max(result["distinct"] for result in results)
        fail(f"No setting gives {100 * min_distinct:.1f}% distinct outputs (the most is {100 * most:.1f}%): lower "
             "--min-distinct or try larger prior penalties.")
    return max(eligible, key=lambda result: (round(result["rougeL"], 6), result["distinct"]))


def table(results: List[Dict], best: Dict) -> str:
    rows = ["| beam | length penalty | no repeat n-gram | prior penalty | ROUGE-L | ROUGE-1 | distinct | copied |",
            "|---|---|---|---|---|---|---|---|"]
    for result in sorted(results, key=lambda r: -r["rougeL"]):
        mark = " **(best)**" if result is best else ""
        rows.append(
            f"| {result['beam_size']}{mark} | {result['length_penalty']:g} | {result['no_repeat_ngram_size'] or '–'} "
            f"| {result['prior_penalty']:g} | {100 * result['rougeL']:.2f} | {100 * result['rouge1']:.2f} "
            f"| {100 * result['distinct']:.1f}% | {100 * result['copied']:.1f}% |"
        )
    return "\n".join(rows) + "\n"


def plot(results: List[Dict], best: Dict, min_distinct: float, title: str, path: Path) -> None:
    """Dev ROUGE-L against distinct outputs: a marker per beam width, a colour per prior penalty, hollow
    without n-gram blocking; the best setting circled, and the least share of distinct outputs asked for."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    beams = sorted({result["beam_size"] for result in results})
    priors = sorted({result["prior_penalty"] for result in results})
    colours = plt.get_cmap("viridis", max(2, len(priors)))
    markers = "os^Dv<>p"
    for result in results:
        colour = colours(priors.index(result["prior_penalty"]))
        ax.scatter(100 * result["distinct"], 100 * result["rougeL"], s=30,
                   marker=markers[beams.index(result["beam_size"]) % len(markers)], edgecolors=colour,
                   facecolors=colour if result["no_repeat_ngram_size"] else "none")
    ax.scatter(100 * best["distinct"], 100 * best["rougeL"], s=160, facecolors="none", edgecolors="tab:red",
               label="best: " + ",\n".join(f"{key.replace('_', ' ')} {best[key]:g}" for key in SETTING_KEYS))
    if min_distinct:
        ax.axvline(100 * min_distinct, linestyle="--", color="tab:gray", linewidth=1,
                   label=f"at least {100 * min_distinct:g}% distinct")
    for index, beam in enumerate(beams):
        ax.scatter([], [], marker=markers[index % len(markers)], color="tab:gray",
                   label="greedy" if beam == 1 else f"beam {beam}")
    for index, prior in enumerate(priors):
        ax.scatter([], [], marker="s", color=colours(index), label=f"prior penalty {prior:g}")
    ax.scatter([], [], marker="s", facecolors="none", edgecolors="tab:gray", label="hollow: no n-gram blocking")
    ax.set_xlabel("distinct titles / dev reviews (%)")
    ax.set_ylabel("dev ROUGE-L (×100)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    save_figure(fig, path)


def save_pipeline(nlp: Language, path: Path) -> None:
    """Save `nlp` to `path` (replacing what is there) through a folder beside
    it, so that a failure leaves `path` as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        nlp.to_disk(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def main(
    # fmt: off
    model: Path = typer.Argument(..., help="A trained rnn_seq2seq pipeline", exists=True),
    dev: Path = typer.Argument(..., help="The dev pairs (.jsonl)", exists=True),
    out_dir: Path = typer.Argument(..., help="Folder for decoding.json, decoding.md and decoding.png"),
    beam_sizes: str = typer.Option("1 4", help="Beam widths to try (1: greedy), separated by spaces"),
    length_penalties: str = typer.Option("0.5 1", help="Length penalties to try with a beam"),
    no_repeat: str = typer.Option("0 3", help="no_repeat_ngram_size values to try (0: no blocking)"),
    prior_penalties: str = typer.Option("0 0.1 0.15 0.2", help="prior_penalty values to try (0: none)"),
    min_distinct: float = typer.Option(0.0, help="The best setting gives at least this share of distinct outputs"),
    save: Optional[Path] = typer.Option(None, help="Save the pipeline here with the best settings"),
    # fmt: on
):
    """Score each decoding setting on the dev pairs and pick the best."""
    nlp = spacy.load(model)
    if SEQ2SEQ_PIPE not in nlp.pipe_names:
        fail(f"{model} has no {SEQ2SEQ_PIPE} component (it has {nlp.pipe_names}).")
    pipe = nlp.get_pipe(SEQ2SEQ_PIPE)
    grid = settings_grid([int(b) for b in beam_sizes.split()], [float(p) for p in length_penalties.split()],
                         [int(n) for n in no_repeat.split()], [float(p) for p in prior_penalties.split()])
    if not grid:
        fail("The grid is empty: give at least one value to --beam-sizes, --length-penalties, --no-repeat and "
             "--prior-penalties.")
    if any(setting["prior_penalty"] for setting in grid) and pipe.target_vocab.counts is None:
        fail(f"{model} was saved without the counts of its training targets, which a prior penalty needs: "
             "train it again, or pass --prior-penalties 0.")
    try:
        references = read_docs(dev, nlp)
    except DataError as err:
        fail(f"{err} Run the convert step again.")
    results = []
    for setting in tqdm(grid, desc="decoding settings", unit="setting"):
        pipe.cfg.update(setting)
        examples, _ = predict_references(nlp, references)
        metrics = seq2seq_result(examples, pipe.cfg["output_attr"])["metrics"]
        results.append({**setting, **{key: metrics[key] for key in ("rougeL", "rouge1", "distinct", "copied")}})
    best = best_setting(results, min_distinct)
    write_json(out_dir / "decoding.json", {"model": str(model), "dev": str(dev), "min_distinct": min_distinct,
                                           "settings": results, "best": {key: best[key] for key in SETTING_KEYS}})
    write_text(out_dir / "decoding.md", table(results, best))
    plot(results, best, min_distinct, f"Decoding settings on {dev.name} ({len(references):,} pairs)",
         out_dir / "decoding.png")
    msg.good(f"best of {len(results)} settings: " + ", ".join(f"{key} {best[key]}" for key in SETTING_KEYS)
             + f" (dev ROUGE-L {100 * best['rougeL']:.2f}, distinct {100 * best['distinct']:.1f}%)",
             str(out_dir / "decoding.json"))
    if save is not None:
        pipe.cfg.update({key: best[key] for key in SETTING_KEYS})
        save_pipeline(nlp, save)
        msg.good(f"saved with the best settings: {save}")


if __name__ == "__main__":
    typer.run(main)
