"""A linear bag-of-n-grams model with TF-IDF-style feature weights.

spaCy's TextCatBOW weighs each hashed n-gram by its count in the Doc, so a
long review's scores are sums over hundreds of n-grams and grow with its
length. Here the counts can be damped (1 + log count) and each Doc's feature
vector scaled to unit L2 norm, as TF-IDF does before a logistic regression.
"""
from typing import List, Tuple

from spacy.tokens import Doc
from thinc.api import Model, SparseLinear_v2, chain, with_cpu
from thinc.types import Floats1d, Floats2d, Ints1d

WEIGHTINGS = ("count", "l2", "log_l2")
Features = Tuple[Ints1d, Floats1d, Ints1d]  # hashed n-gram keys, their weights, n-grams per Doc


def NgramLinear(nO: int, ngram_size: int, length: int, attr: int, weighting: str) -> Model[List[Doc], Floats2d]:
    """Class scores, no activation: SparseLinear over the Doc's distinct
    n-grams (1 … ngram_size) of `attr`, weighted by `weighting`."""
    model = chain(ngram_features(ngram_size, attr, weighting), SparseLinear_v2(nO, length))
    return with_cpu(model, model.ops)


def ngram_features(ngram_size: int, attr: int, weighting: str) -> Model[List[Doc], Features]:
    """Each Doc's distinct n-grams and their weights: the count ('count'),
    count / the Doc's L2 norm ('l2'), or (1 + log count) / the Doc's L2 norm
    ('log_l2'). An empty Doc has no n-grams (and scores the bias alone)."""
    return Model(
        f"ngram_features_{weighting}", _features_forward,
        attrs={"ngram_size": ngram_size, "attr": attr, "weighting": weighting},
    )


def _features_forward(model: Model, docs: List[Doc], is_train: bool):
    ops, xp = model.ops, model.ops.xp
    if not docs:
        return (xp.zeros(0, dtype="uint64"), ops.alloc1f(0), ops.alloc1i(0)), lambda d_features: []
    keys, counts = [], []
    for doc in docs:
        unigrams = ops.asarray(doc.to_array(model.attrs["attr"]), dtype="uint64")
        longer = [ops.ngrams(n, unigrams) for n in range(2, model.attrs["ngram_size"] + 1) if len(doc) >= n]
        doc_keys, doc_counts = xp.unique(xp.concatenate([unigrams, *longer]), return_counts=True)
        keys.append(doc_keys)
        counts.append(doc_counts)
    lengths = ops.asarray1i([len(doc_keys) for doc_keys in keys])
    weights = ops.asarray1f(xp.concatenate(counts))
    if model.attrs["weighting"] != "count" and len(weights):
        if model.attrs["weighting"] == "log_l2":
            weights = 1 + xp.log(weights)
        doc_of_ngram = xp.repeat(xp.arange(len(docs)), lengths)
        norms = xp.sqrt(xp.bincount(doc_of_ngram, weights=weights * weights, minlength=len(docs)))
        weights = weights / norms[doc_of_ngram].astype(weights.dtype)
    return (xp.concatenate(keys), weights, lengths), lambda d_features: []
