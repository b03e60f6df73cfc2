"""Registered scorers.

`spacy_rnn.seq2seq_scorer.v1` compares the text a component wrote to
`doc._.<output_attr>` with the target on the reference Doc: ROUGE-1, ROUGE-2
and ROUGE-L F1 (the `rouge-score` package, no stemming), corpus BLEU
(`sacrebleu`, 13a tokenization, up to 4-grams) and exact match after
collapsing whitespace. All three ignore case, as the component lowercases by
default. Scores are fractions in [0, 1]; examples without a (non-empty)
target are left out, and every score is None when none is left.
`spacy_rnn.seq2seq_scorer.v2` gives the same scores under keys with a chosen
prefix (v1's are s2s_*), so that two components in one pipeline report apart.
Both packages come with the `seq2seq` extra: pip install "spacy-rnn[seq2seq]".
"""
from functools import partial
from typing import Callable, Dict, Iterable, Optional

from spacy.training import Example
from spacy.util import registry

from .pipeline.targets import get_target
from .vocab import import_seq2seq_extra

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
SCORE_NAMES = (*ROUGE_TYPES, "bleu", "exact")


def seq2seq_score(
    examples: Iterable[Example], output_attr: str = "generated", prefix: str = "s2s", **cfg
) -> Dict[str, Optional[float]]:
    """ROUGE-1/2/L F, BLEU and exact match of generated texts against targets,
    keyed {prefix}_rouge1, {prefix}_rouge2, {prefix}_rougeL, {prefix}_bleu, {prefix}_exact."""
    predictions, targets = [], []
    for example in examples:
        target = get_target(example.reference)
        if target and target.strip():
            predictions.append(example.predicted._.get(output_attr) or "")
            targets.append(target)
    if not targets:
        return {f"{prefix}_{name}": None for name in SCORE_NAMES}
    # Imported here: they are optional, and rouge-score pulls in nltk (over a second).
    rouge_scorer = import_seq2seq_extra("rouge_score.rouge_scorer", "The seq2seq scorer (ROUGE)")
    sacrebleu = import_seq2seq_extra("sacrebleu", "The seq2seq scorer (BLEU)")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, target in zip(predictions, targets):
        for name, score in scorer.score(target, prediction).items():
            totals[name] += score.fmeasure
    scores = {f"{prefix}_{name}": total / len(targets) for name, total in totals.items()}
    scores[f"{prefix}_bleu"] = sacrebleu.corpus_bleu(predictions, [targets], lowercase=True).score / 100
    scores[f"{prefix}_exact"] = sum(_normalize(p) == _normalize(t) for p, t in zip(predictions, targets)) / len(targets)
    return scores


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())


@registry.scorers("spacy_rnn.seq2seq_scorer.v1")
def make_seq2seq_scorer():
    return seq2seq_score


@registry.scorers("spacy_rnn.seq2seq_scorer.v2")
def make_seq2seq_scorer_v2(prefix: str = "s2s") -> Callable[..., Dict[str, Optional[float]]]:
    """The scores of v1 keyed {prefix}_rouge1 … {prefix}_exact: give each
    rnn_seq2seq component of a pipeline its own prefix (and set the weights
    of its keys in [training.score_weights])."""
    if not isinstance(prefix, str) or not prefix.isidentifier():
        raise ValueError(
            f"spacy_rnn.seq2seq_scorer.v2: 'prefix' must be a name such as 's2s' or 'title', got {prefix!r}."
        )
    return partial(seq2seq_score, prefix=prefix)
