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
    """The whole batch at once: every n-gram of the concatenated Docs that
    does not cross a Doc boundary, then one sort by (Doc, key) to count them."""
    ops, xp = model.ops, model.ops.xp
    if not docs:
        return (xp.zeros(0, dtype="uint64"), ops.alloc1f(0), ops.alloc1i(0)), lambda d_features: []
    doc_lengths = xp.asarray([len(doc) for doc in docs])
    unigrams = ops.asarray(xp.concatenate([doc.to_array(model.attrs["attr"]) for doc in docs]), dtype="uint64")
    doc_of_token = xp.repeat(xp.arange(len(docs)), doc_lengths)
    keys, doc_of_key = [unigrams], [doc_of_token]
    for n in range(2, model.attrs["ngram_size"] + 1):
        if len(unigrams) >= n:
            within_doc = doc_of_token[: len(unigrams) - n + 1] == doc_of_token[n - 1 :]
            keys.append(ops.ngrams(n, unigrams)[within_doc])
            doc_of_key.append(doc_of_token[: len(unigrams) - n + 1][within_doc])
    keys, doc_of_key = xp.concatenate(keys), xp.concatenate(doc_of_key)
    order = xp.lexsort((keys, doc_of_key))
    keys, doc_of_key = keys[order], doc_of_key[order]
    first = xp.ones(len(keys), dtype=bool)
    first[1:] = (keys[1:] != keys[:-1]) | (doc_of_key[1:] != doc_of_key[:-1])
    starts = xp.flatnonzero(first)
    weights = ops.asarray1f(xp.diff(xp.append(starts, len(keys))))  # counts
    doc_of_ngram = doc_of_key[starts]
    lengths = ops.asarray1i(xp.bincount(doc_of_ngram, minlength=len(docs)))
    if model.attrs["weighting"] != "count" and len(weights):
        if model.attrs["weighting"] == "log_l2":
            weights = 1 + xp.log(weights)
        norms = xp.sqrt(xp.bincount(doc_of_ngram, weights=weights * weights, minlength=len(docs)))
        weights = weights / norms[doc_of_ngram].astype(weights.dtype)
    return (keys[starts], weights, lengths), lambda d_features: []
