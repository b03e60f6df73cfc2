"""Metrics of predictions: classification (accuracy, macro-F1, per class,
confusion matrix, stars' MAE, SARC's pairwise accuracy), seq2seq (spacy_rnn's
scores), training logs, and the paired bootstrap of two systems."""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy
from scipy.stats import bootstrap
from sklearn import metrics
from spacy.training import Example

from spacy_rnn import get_target
from spacy_rnn.corpus import read_jsonl
from spacy_rnn.scoring import novel_word_scores, output_measures, seq2seq_score

N_RESAMPLES = 1000


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


def doc_groups(docs: Sequence) -> Optional[List]:
    """The group ids (SARC's pair_id) that convert.py keeps in the Docs'
    user_data, or None where the Docs have none."""
    groups = [doc.user_data.get("group") for doc in docs]
    return groups if any(group is not None for group in groups) else None


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


def paired_bootstrap(ours: numpy.ndarray, theirs: numpy.ndarray, seed: int = 0) -> Tuple[float, float, float]:
    """The difference of the means of two paired per-item scores (e.g. each
    test Doc's correctness) and its 95% percentile bootstrap interval
    (N_RESAMPLES resamples of the items, scipy)."""
    difference = float(ours.mean() - theirs.mean())
    if numpy.array_equal(ours, theirs) or numpy.ptp(ours - theirs) == 0:
        return difference, difference, difference  # every resample gives the same difference
    interval = bootstrap((ours, theirs), lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis), paired=True,
                         vectorized=True, n_resamples=N_RESAMPLES, method="percentile",
                         random_state=numpy.random.default_rng(seed)).confidence_interval
    return difference, float(interval.low), float(interval.high)


def mean_sd(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    values = [scale * value for value in values]
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{numpy.mean(values):.{digits}f} ± {numpy.std(values, ddof=1):.{digits}f}"


def summary(record: Dict) -> str:
    keys = ("accuracy", "macro_f1", "pairwise", "mae", "within_one", "rouge1", "rouge2", "rougeL")
    return ", ".join(f"{key} {record[key]:.3f}" for key in keys if record.get(key) is not None)
