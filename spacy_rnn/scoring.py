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

Measures of how generic the outputs are: `spacy_rnn.seq2seq_scorer.v3` adds
{prefix}_distinct (distinct outputs per example, `distinct_ratio`) and
{prefix}_copied (share of output words found in their source, `copied_share`)
to v2's scores. `novel_word_scores` scores the examples whose target holds a
word that no training target has (it needs the training targets, so it is no
registered scorer). Words there are lowercased runs of letters and digits.
"""
import re
from functools import partial
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from spacy.training import Example
from spacy.util import registry

from .extras import import_seq2seq_extra
from .targets import get_target

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
SCORE_NAMES = (*ROUGE_TYPES, "bleu", "exact")
WORD = re.compile(r"\w+")


def scored_examples(examples: Iterable[Example]) -> List[Example]:
    """The examples with a non-empty target: those that are scored."""
    kept = []
    for example in examples:
        target = get_target(example.reference)
        if target and target.strip():
            kept.append(example)
    return kept


def texts(examples: List[Example], output_attr: str) -> Tuple[List[str], List[str]]:
    """The generated texts ("" for none) and the targets of examples."""
    return [eg.predicted._.get(output_attr) or "" for eg in examples], [get_target(eg.reference) for eg in examples]


def seq2seq_score(
    examples: Iterable[Example], output_attr: str = "generated", prefix: str = "s2s", **cfg
) -> Dict[str, Optional[float]]:
    """ROUGE-1/2/L F, BLEU and exact match of generated texts against targets,
    keyed {prefix}_rouge1, {prefix}_rouge2, {prefix}_rougeL, {prefix}_bleu, {prefix}_exact."""
    predictions, targets = texts(scored_examples(examples), output_attr)
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


def words(text: str) -> List[str]:
    """The lowercased words of a text (runs of letters, digits, underscores)."""
    return WORD.findall(text.lower())


def distinct_ratio(outputs: Sequence[str]) -> Optional[float]:
    """Distinct outputs (case and spacing ignored) per output; None for none."""
    return len({_normalize(output) for output in outputs}) / len(outputs) if outputs else None


def copied_share(outputs: Sequence[str], sources: Sequence[str]) -> Optional[float]:
    """Share of all output words that occur in their own source; None when
    the outputs have no word."""
    n_words = n_copied = 0
    for output, source in zip(outputs, sources):
        source_words = set(words(source))
        output_words = words(output)
        n_words += len(output_words)
        n_copied += sum(word in source_words for word in output_words)
    return n_copied / n_words if n_words else None


def novel_words(targets: Sequence[str], training_targets: Iterable[str]) -> List[List[str]]:
    """For each target, its words that no training target has (in order)."""
    seen = {word for target in training_targets for word in words(target)}
    return [[word for word in words(target) if word not in seen] for target in targets]


def output_measures(
    examples: Iterable[Example], output_attr: str = "generated", prefix: str = "s2s", **cfg
) -> Dict[str, Optional[float]]:
    """{prefix}_distinct: distinct_ratio of the generated texts;
    {prefix}_copied: copied_share of them against the source texts (the
    predicted Docs'). Examples are those that seq2seq_score scores."""
    kept = scored_examples(examples)
    outputs, _ = texts(kept, output_attr)
    return {
        f"{prefix}_distinct": distinct_ratio(outputs),
        f"{prefix}_copied": copied_share(outputs, [eg.predicted.text for eg in kept]),
    }


def novel_word_scores(
    examples: Iterable[Example], training_targets: Iterable[str], output_attr: str = "generated", prefix: str = "s2s"
) -> Dict[str, Optional[float]]:
    """Scores of the examples whose target holds a word that no training
    target has: {prefix}_novel_n (how many of them), {prefix}_novel_recall
    (share of those novel words that the output holds) and the scores of
    seq2seq_score on them as {prefix}_novel_rougeL etc. (None without any)."""
    kept = scored_examples(examples)
    outputs, targets = texts(kept, output_attr)
    novel = novel_words(targets, training_targets)
    subset = [eg for eg, found in zip(kept, novel) if found]
    n_novel = n_recalled = 0
    for output, found in zip(outputs, novel):
        output_words = set(words(output))
        n_novel += len(found)
        n_recalled += sum(word in output_words for word in found)
    scores = seq2seq_score(subset, output_attr, prefix=f"{prefix}_novel")
    scores[f"{prefix}_novel_n"] = len(subset)
    scores[f"{prefix}_novel_recall"] = n_recalled / n_novel if n_novel else None
    return scores


def seq2seq_score_and_measures(
    examples: Iterable[Example], output_attr: str = "generated", prefix: str = "s2s", **cfg
) -> Dict[str, Optional[float]]:
    """seq2seq_score and output_measures in one."""
    examples = list(examples)
    return {**seq2seq_score(examples, output_attr, prefix), **output_measures(examples, output_attr, prefix)}


@registry.scorers("spacy_rnn.seq2seq_scorer.v1")
def make_seq2seq_scorer():
    return seq2seq_score


@registry.scorers("spacy_rnn.seq2seq_scorer.v2")
def make_seq2seq_scorer_v2(prefix: str = "s2s") -> Callable[..., Dict[str, Optional[float]]]:
    """The scores of v1 keyed {prefix}_rouge1 … {prefix}_exact: give each
    rnn_seq2seq component of a pipeline its own prefix (and set the weights
    of its keys in [training.score_weights])."""
    return partial(seq2seq_score, prefix=check_prefix("spacy_rnn.seq2seq_scorer.v2", prefix))


@registry.scorers("spacy_rnn.seq2seq_scorer.v3")
def make_seq2seq_scorer_v3(prefix: str = "s2s") -> Callable[..., Dict[str, Optional[float]]]:
    """The scores of v2 and {prefix}_distinct, {prefix}_copied (see
    output_measures)."""
    return partial(seq2seq_score_and_measures, prefix=check_prefix("spacy_rnn.seq2seq_scorer.v3", prefix))


def check_prefix(name: str, prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix.isidentifier():
        raise ValueError(f"{name}: 'prefix' must be a name such as 's2s' or 'title', got {prefix!r}.")
    return prefix
