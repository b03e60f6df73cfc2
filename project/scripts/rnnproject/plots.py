"""The projects' pictures: confusion matrix, learning curve, decoding settings."""
from pathlib import Path
from typing import Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy  # noqa: E402
from sklearn import metrics  # noqa: E402

from .files import atomic_path  # noqa: E402
from .metrics import best_checkpoint  # noqa: E402


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_confusion(confusion: Dict, title: str, path: Path) -> None:
    """The confusion matrix normalised by row: each cell is the share of a gold
    class's Docs predicted as a class (the diagonal is each class's recall),
    with the count beside it. Colours are on a fixed 0-1 scale, so a shade
    means the same share in every picture and a rare class's errors show."""
    counts = numpy.array(confusion["matrix"])
    shares = counts / numpy.maximum(counts.sum(axis=1, keepdims=True), 1)
    labels = confusion["labels"]
    side = 1.1 * len(labels) + 2.5
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    display = metrics.ConfusionMatrixDisplay(shares, display_labels=labels)
    display.plot(ax=ax, cmap="Blues", im_kw={"vmin": 0.0, "vmax": 1.0},
                 xticks_rotation=30 if max(map(len, labels)) > 3 else "horizontal")
    for (row, col), text in numpy.ndenumerate(display.text_):
        text.set_text(f"{shares[row, col]:.0%}\n({counts[row, col]:,})")
        text.set_color("white" if shares[row, col] > 0.5 else "black")
    display.im_.colorbar.set_label("share of the gold class")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{title}\nrecall per gold class (count)")
    save_figure(fig, path)


def plot_learning_curve(log: List[Dict], title: str, path: Path, metric: str) -> None:
    """The dev score (`metric`, ×100) with the model-best checkpoint marked, and
    the mean training loss per step (spaCy logs the loss summed since the
    previous evaluation), over the training steps."""
    steps = [entry["step"] for entry in log]
    losses = []
    for previous, entry in zip([None] + log[:-1], log):
        n_steps = max(1, entry["step"] - (previous["step"] if previous else -1))
        losses.append(sum(entry["losses"].values()) / n_steps)
    best = best_checkpoint(log)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 5.5))
    top.plot(steps, [100 * entry["score"] for entry in log], marker="o", label="dev score")
    top.plot(best["step"], 100 * best["score"], marker="*", markersize=16, color="tab:orange", linestyle="none",
             label=f"model-best: {100 * best['score']:.1f} at step {best['step']:,}")
    top.set_ylabel(f"dev {metric.split(' (')[0]} ×100")
    top.set_title(f"{title}\ndev score: {metric}")
    top.legend(loc="best")
    bottom.plot(steps, losses, marker="o", color="tab:red")
    bottom.set_ylabel("training loss / step")
    bottom.set_xlabel("step")
    for ax in (top, bottom):
        ax.axvline(best["step"], color="tab:orange", linestyle="--", alpha=0.6)
        ax.grid(alpha=0.3)
    save_figure(fig, path)
