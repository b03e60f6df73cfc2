"""Evaluate a trained pipeline on the test split and draw its pictures.

One pass over the test data (a DocBin, or seq2seq JSONL) gives spaCy's scores (the ones `spacy evaluate`
reports, in `<key>_spacy.json`) and the predictions; from the predictions
come, in OUT_DIR:

- `<key>.json`: the metrics. Text classification: accuracy, macro-F1,
  per-class precision/recall/F1 and the confusion matrix (scikit-learn), and
  with `--stars` the mean absolute error in stars and the share of predictions
  within one star, and where the test Docs carry pair ids (SARC's pair_id,
  kept by convert.py) SARC's pairwise accuracy. Seq2seq: ROUGE-1/2/L, BLEU,
  exact match, the shares of distinct outputs and of output words found in
  the source, and with `--train-targets` the scores on the pairs whose
  target has a word no training target has ("novel words"). Both with
  spaCy's own scores, its words/s, and the training time from train.json.
- `<key>_predictions.jsonl`: text, gold and prediction for every test Doc;
- `<key>_confusion.png` (classification): the confusion matrix as shares of
  each gold class (recall on the diagonal) with the counts, on a fixed 0-1
  colour scale;
- given `--log`, `<key>_learning_curve.png`: the dev score, named after the
  config's score weights, with model-best's step marked, and the training
  loss over the steps.

    python scripts/evaluate.py training/sarcasm/model-best corpus/sarcasm/test.spacy metrics/sarcasm \\
        --key rnn --name "spacy-rnn LSTM" --log training/sarcasm/log.jsonl --train-info training/sarcasm/train.json
"""
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy  # noqa: E402
import spacy  # noqa: E402
import typer  # noqa: E402
from sklearn import metrics  # noqa: E402
from spacy.language import Language  # noqa: E402
from spacy.scorer import Scorer  # noqa: E402
from spacy.tokens import Doc  # noqa: E402
from spacy.training import Example  # noqa: E402
from wasabi import msg  # noqa: E402

from common import atomic_path, fail, read_json, write_json, write_jsonl  # noqa: E402
from spacy_rnn.corpus import DataError, read_docs, read_jsonl, seq2seq_records  # noqa: E402
from spacy_rnn.pipeline.targets import get_target  # noqa: E402
from spacy_rnn.scoring import novel_word_scores, output_measures, seq2seq_score  # noqa: E402

TEXTCAT_PIPES = ("textcat", "textcat_multilabel")
SEQ2SEQ_PIPE = "rnn_seq2seq"
CELL_NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def predict(nlp: Language, test_path: Path) -> Tuple[List[Example], Dict]:
    """Run the pipeline over the texts of the test Docs in `test_path`: see `predict_references`."""
    return predict_references(nlp, read_docs(test_path, nlp))


def predict_references(nlp: Language, references: List[Doc]) -> Tuple[List[Example], Dict]:
    """Run the pipeline over the reference Docs' texts: the annotated Examples
    and spaCy's scores of them, as `spacy evaluate` computes them
    (`Language.evaluate` keeps no predictions, so its steps are done here:
    tokenize and pipe, timed for words/s, then `Scorer.score`)."""
    start = time.perf_counter()
    predicted = list(nlp.pipe(nlp.make_doc(doc.text) for doc in references))
    seconds = time.perf_counter() - start
    examples = [Example(doc, reference) for doc, reference in zip(predicted, references)]
    scores = Scorer(nlp).score(examples)
    scores["speed"] = sum(len(doc) for doc in predicted) / seconds
    return examples, scores


def top_label(cats: Dict[str, float]) -> str:
    return max(cats, key=cats.get)


def classification_metrics(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str], stars: bool) -> Dict:
    """Accuracy, macro-F1, per-class P/R/F1, confusion matrix (rows: gold,
    columns: predicted); with `stars`, labels are numbers and the mean
    absolute error and the share within one star are added."""
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        gold, pred, labels=list(labels), zero_division=0
    )
    result = {
        "n": len(gold),
        "accuracy": metrics.accuracy_score(gold, pred),
        "macro_f1": metrics.f1_score(gold, pred, labels=list(labels), average="macro", zero_division=0),
        "per_class": {
            label: {"precision": p, "recall": r, "f1": f, "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "confusion": {
            "labels": list(labels),
            "matrix": metrics.confusion_matrix(gold, pred, labels=list(labels)).tolist(),
        },
    }
    if stars:
        errors = numpy.abs(numpy.array(gold, dtype=float) - numpy.array(pred, dtype=float))
        result["mae"] = float(errors.mean())
        result["within_one"] = float((errors <= 1).mean())
    return {key: float(value) if isinstance(value, numpy.floating) else value for key, value in result.items()}


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


def read_log(log_path: Path) -> List[Dict]:
    """The evaluations spaCy's logger wrote during training, one dict each."""
    return list(read_jsonl(log_path, required=("step", "epoch", "score", "losses")))


def best_checkpoint(log: List[Dict]) -> Dict:
    """The evaluation that model-best keeps: the best dev score, the latest
    of equal ones (as `spacy train` saves it)."""
    best = max(log, key=lambda entry: (entry["score"], entry["step"]))
    return {"score": best["score"], "step": best["step"], "epoch": best["epoch"]}


def score_name(score_weights: Dict[str, Optional[float]], scores: Dict) -> str:
    """What `spacy train`'s dev score is, from the config's score weights, e.g.
    "cats_score (macro F)" or "s2s_rougeL"; a weighted sum when several count."""
    weighted = {name: weight for name, weight in score_weights.items() if weight}
    if len(weighted) == 1:
        name = next(iter(weighted))
        description = scores.get(f"{name}_desc")
        return f"{name} ({description})" if description else name
    return " + ".join(f"{weight:g} × {name}" for name, weight in weighted.items())


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


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def pairwise_correct(groups: Sequence, gold: Sequence[str], scores: Sequence[float], label: str) -> numpy.ndarray:
    """SARC's pairwise accuracy, one entry per pair: in each group of two
    Docs with different gold labels, 1 where the Doc whose gold is `label`
    has the higher score for `label`, 0.5 on a tie, 0 otherwise (groups of
    another size or with one gold label are left out). With exclusive classes
    either label gives the same answer."""
    members: Dict = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    correct = []
    for first, *rest in members.values():
        if len(rest) != 1 or gold[first] == gold[rest[0]]:
            continue
        positive, other = (first, rest[0]) if gold[first] == label else (rest[0], first)
        correct.append(float(numpy.sign(scores[positive] - scores[other]) + 1) / 2)
    return numpy.array(correct)


def textcat_result(texts: Sequence[str], gold: Sequence[str], cats: Sequence[Dict[str, float]],
                   labels: Sequence[str], stars: bool, groups: Optional[Sequence] = None) -> Dict:
    """Metrics and per-Doc rows of a classifier's scores `cats` per text;
    with `groups` (SARC's pair ids), the pairwise accuracy too."""
    pred = [top_label(doc_cats) for doc_cats in cats]
    rows = [{"text": text, "gold": g, "pred": p, "score": round(float(doc_cats[p]), 4),
             "scores": {label: round(float(doc_cats[label]), 4) for label in labels}}
            for text, g, p, doc_cats in zip(texts, gold, pred, cats)]
    result = classification_metrics(gold, pred, labels, stars)
    if groups is not None and all(group is not None for group in groups):
        for row, group in zip(rows, groups):
            row["group"] = group
        pairs = pairwise_correct(groups, gold, [doc_cats[labels[0]] for doc_cats in cats], labels[0])
        if len(pairs):
            result.update(pairwise=float(pairs.mean()), n_pairs=len(pairs))
    return {"metrics": result, "predictions": rows}


def seq2seq_result(examples: List[Example], attr: str, training_targets: Optional[Sequence[str]] = None) -> Dict:
    """Metrics (spacy_rnn's seq2seq scores without the s2s_ prefix: ROUGE,
    BLEU, the share of distinct outputs and of output words copied from the
    source, and given the training targets the scores on the pairs whose
    target has a word no training target has) and rows of examples whose
    predicted Docs carry a generated text in `doc._.<attr>`."""
    scores = {**seq2seq_score(examples, output_attr=attr), **output_measures(examples, output_attr=attr)}
    if training_targets is not None:
        scores.update(novel_word_scores(examples, training_targets, output_attr=attr))
    result = {key[len("s2s_"):]: value for key, value in scores.items()}
    result["n"] = len(examples)
    rows = [{"text": eg.reference.text, "gold": get_target(eg.reference), "pred": eg.predicted._.get(attr)}
            for eg in examples]
    return {"metrics": result, "predictions": rows}


def evaluate_predictions(examples: List[Example], nlp: Language, stars: bool,
                         training_targets: Optional[Sequence[str]] = None) -> Dict:
    """Metrics and rows of examples annotated by `nlp`."""
    if SEQ2SEQ_PIPE in nlp.pipe_names:
        return seq2seq_result(examples, nlp.get_pipe(SEQ2SEQ_PIPE).cfg["output_attr"], training_targets)
    pipe = next((name for name in TEXTCAT_PIPES if name in nlp.pipe_names), None)
    if pipe is None:
        raise ValueError(f"No textcat, textcat_multilabel or {SEQ2SEQ_PIPE} in the pipeline {nlp.pipe_names}.")
    texts = [eg.reference.text for eg in examples]
    gold = [top_label(eg.reference.cats) for eg in examples]
    cats = [eg.predicted.cats for eg in examples]
    return textcat_result(texts, gold, cats, list(nlp.get_pipe(pipe).labels), stars,
                          doc_groups([eg.reference for eg in examples]))


def doc_groups(docs: Sequence) -> Optional[List]:
    """The group ids (SARC's pair_id) that convert.py keeps in the Docs'
    user_data, or None where the Docs have none."""
    groups = [doc.user_data.get("group") for doc in docs]
    return groups if any(group is not None for group in groups) else None


def write_outputs(out_dir: Path, key: str, name: str, result: Dict, extra: Dict,
                  log: Optional[Path] = None, metric: str = "score") -> Dict:
    """Write <key>.json, <key>_predictions.jsonl and the pictures (the
    learning curve from `log`, whose dev score is `metric`)."""
    record = {"system": name, **result["metrics"], **extra}
    write_json(out_dir / f"{key}.json", record)
    write_jsonl(out_dir / f"{key}_predictions.jsonl", result["predictions"])
    if "confusion" in record:
        plot_confusion(record["confusion"], name, out_dir / f"{key}_confusion.png")
    if log is not None:
        plot_learning_curve(read_log(log), name, out_dir / f"{key}_learning_curve.png", metric)
    return record


def describe(nlp: Language) -> str:
    """A system name from a spacy-rnn pipeline's config, e.g. "spacy-rnn BiLSTM w128" or, for the
    ensemble, "spacy-rnn BiLSTM w128 + 2-gram linear"."""
    for name, pipe_config in nlp.config["components"].items():
        model = pipe_config.get("model", {})
        if "cell" in model:
            cell = CELL_NAMES.get(model["cell"], model["cell"])
            kind = f"{'Bi' if model.get('bidirectional') else ''}{cell} w{model['width']}"
            if name == SEQ2SEQ_PIPE:
                return f"spacy-rnn {kind} encoder-decoder ({model['decoder']})"
            if "linear_model" in model:
                return f"spacy-rnn {kind} + {model['linear_model'].get('ngram_size', 1)}-gram linear"
            return f"spacy-rnn {kind}"
    return "spacy-rnn"


def evaluate_pipeline(model: Path, test_path: Path, out_dir: Path, key: str, name: Optional[str],
                      stars: bool = False, log: Optional[Path] = None, train_info: Optional[Path] = None,
                      gpu_id: int = -1, train_targets: Optional[Path] = None, name_suffix: str = "") -> Dict:
    """Evaluate a saved pipeline on test data (a DocBin, or seq2seq JSONL);
    returns the metrics record. `train_targets`: the seq2seq training JSONL,
    for the scores on pairs with words no training target has; `name_suffix`
    is appended to the system's name."""
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(model)
    name = (name or describe(nlp)) + name_suffix
    examples, spacy_scores = predict(nlp, test_path)
    write_json(out_dir / f"{key}_spacy.json", spacy_scores)
    extra = {"words_per_second": spacy_scores["speed"], "spacy_scores": spacy_scores}
    if train_info is not None:
        extra["training"] = read_json(train_info)
        extra["train_seconds"] = extra["training"]["seconds"]
    if log is not None:
        extra["best_dev"] = best_checkpoint(read_log(log))
    metric = score_name(nlp.config["training"]["score_weights"], spacy_scores)
    training_targets = None if train_targets is None else [target for _, target in seq2seq_records(train_targets)]
    result = evaluate_predictions(examples, nlp, stars, training_targets)
    return write_outputs(out_dir, key, name, result, extra, log, metric)


def summary(record: Dict) -> str:
    keys = ("accuracy", "macro_f1", "pairwise", "mae", "within_one", "rouge1", "rouge2", "rougeL")
    return ", ".join(f"{key} {record[key]:.3f}" for key in keys if record.get(key) is not None)


def main(
    # fmt: off
    model: Path = typer.Argument(..., help="A trained pipeline (e.g. training/sarcasm/model-best)", exists=True),
    test: Path = typer.Argument(..., help="The test DocBin (.spacy), or seq2seq records (.jsonl)"),
    out_dir: Path = typer.Argument(..., help="Folder for the metrics, predictions and pictures"),
    key: str = typer.Option("rnn", help="File name stem of the outputs"),
    name: Optional[str] = typer.Option(None, help="The system's name in tables and pictures (default: from config)"),
    name_suffix: str = typer.Option("", help="Appended to the name, e.g. ', pretrained on Reddit text'"),
    stars: bool = typer.Option(False, "--stars", help="Labels are star ratings: add MAE and within-one"),
    log: Optional[Path] = typer.Option(None, help="The training log.jsonl, for the learning curve"),
    train_info: Optional[Path] = typer.Option(None, help="The train.json written by scripts/train.py"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU to run on; -1: CPU"),
    train_targets: Optional[Path] = typer.Option(
        None, help="seq2seq: the training JSONL, to score the pairs whose target has a word no training target has"
    ),
    # fmt: on
):
    """Evaluate a trained pipeline on the test split and draw its pictures."""
    try:
        result = evaluate_pipeline(model, test, out_dir, key, name, stars, log, train_info, gpu_id, train_targets,
                                   name_suffix)
    except DataError as err:
        fail(f"{err} Run the step that writes it again.")
    msg.good(f"{result['system']}: {summary(result)}", str(out_dir / f"{key}.json"))


if __name__ == "__main__":
    typer.run(main)
