"""The bidirectional language model that pretrains a recurrent tok2vec
(`spacy_rnn.BiLM.v1`, the objective of `spacy pretrain`).

The model maps Docs to the log-likelihood of each token's targets, one
column per direction (see `spacy_rnn.nn.lm_heads`); `bilm_loss` turns them into
spaCy's (loss, gradient): the loss is their negative mean, so its gradient
is -1/n for each. The adaptive softmax, the heavy part, stays in torch.
"""
import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
from spacy.attrs import NORM
from spacy.strings import get_string_id
from spacy.tokens import Doc
from spacy.util import minibatch
from thinc.api import ArgsKwargs, Dropout, Model, Ops, torch2xp, xp2torch
from thinc.types import Floats2d

from ..nn.lm_heads import N_SPECIAL, UNKNOWN, BiLMHeads
from .shims import TorchModuleShim
from .weights import non_finite_message


class WordIds:
    """The class of each token's NORM: its place in the word list after the
    special classes, or UNKNOWN."""

    def __init__(self, words: Sequence[str]):
        keys = numpy.array([get_string_id(word) for word in words], dtype="uint64")
        order = numpy.argsort(keys)
        self.keys = keys[order]
        self.ids = order + N_SPECIAL

    def __call__(self, docs: Sequence[Doc]) -> numpy.ndarray:
        norms = numpy.concatenate([doc.to_array(NORM).reshape(-1) for doc in docs]).astype("uint64")
        at = numpy.searchsorted(self.keys, norms).clip(max=len(self.keys) - 1)
        return numpy.where(self.keys[at] == norms, self.ids[at], UNKNOWN).astype("int64")


def read_words(path: Union[str, Path], max_words: int) -> List[str]:
    """The first max_words words of a word list written by `python -m spacy_rnn.lm_words`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"The word list {path} does not exist. Write it with `python -m spacy_rnn.lm_words INPUT... {path}`."
        )
    try:
        lines = path.read_text(encoding="utf8").split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"The word list {path} cannot be read as UTF-8 text ({err}).") from None
    words = [line.strip() for line in lines if line.strip()]
    if not words:
        raise ValueError(f"The word list {path} is empty. Write it again with `python -m spacy_rnn.lm_words`.")
    seen = set()
    for word in words:
        if word in seen:
            raise ValueError(
                f"The word list {path} lists {word!r} twice. Write it with `python -m spacy_rnn.lm_words`."
            )
        seen.add(word)
    return words[:max_words]


def BiLM(
    tok2vec: Model[List[Doc], List[Floats2d]], words: Sequence[str], bidirectional: bool,
    cutoffs: Sequence[int] = (2000, 10000),
) -> Model[List[Doc], Floats2d]:
    """Language-model heads on `tok2vec` (ref "tok2vec"), with dropout (set by
    [pretraining] dropout) on its states. The tok2vec must already be
    initialized, as `spacy pretrain` does; initializing this model builds the
    heads only."""
    heads_kwargs = {"n_classes": N_SPECIAL + len(words), "bidirectional": bidirectional, "cutoffs": list(cutoffs)}
    model = Model(
        "bilm",
        _forward,
        init=_init,
        layers=[tok2vec, Dropout()],
        dims={"nO": 2 if bidirectional else 1},
        attrs={"heads_kwargs": heads_kwargs, "word_ids": WordIds(words), "loss": bilm_loss},
        shims=[TorchModuleShim(BiLMHeads)],
    )
    model.set_ref("tok2vec", tok2vec)
    return model


def _init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    tok2vec = model.layers[0]
    if not tok2vec.has_dim("nO"):
        raise ValueError(
            "Cannot initialize the language model: the width (nO) of its tok2vec is unknown. Initialize the tok2vec "
            "first (spacy pretrain does)."
        )
    model.shims[0].build(nI=tok2vec.get_dim("nO"), **model.attrs["heads_kwargs"])
    return model


def _forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[Floats2d, Any]:
    tok2vec, dropout = model.layers
    lengths = [len(doc) for doc in docs]
    if not sum(lengths):  # nothing to predict, and no graph for torch to backpropagate through
        return model.ops.alloc2f(0, model.get_dim("nO")), lambda d_loglik: []
    states, backprop_tok2vec = tok2vec(docs, is_train)
    states, backprop_dropout = dropout(states, is_train)
    if [int(x.shape[0]) for x in states] != lengths:
        raise ValueError("The tok2vec of the language model must give one row per token.")
    flat_t = xp2torch(model.ops.asarray2f(model.ops.xp.concatenate(states)), requires_grad=is_train)
    ids = xp2torch(model.ops.asarray(model.attrs["word_ids"](docs)))
    loglik_t, backprop_heads = model.shims[0](ArgsKwargs(args=(flat_t, lengths, ids), kwargs={}), is_train)
    if not bool(loglik_t.isfinite().all()):
        raise ValueError(non_finite_message("the language model's log-likelihoods"))

    def backprop(d_loglik: Floats2d) -> List[Doc]:
        d_loglik_t = xp2torch(model.ops.asarray2f(d_loglik))
        grads = backprop_heads(ArgsKwargs(args=(loglik_t,), kwargs={"grad_tensors": (d_loglik_t,)}))
        d_states = model.ops.unflatten(torch2xp(grads.args[0]), lengths)
        return backprop_tok2vec(backprop_dropout(d_states))

    return torch2xp(loglik_t), backprop


def bilm_loss(ops: Ops, docs: Iterable[Doc], predictions: Floats2d) -> Tuple[float, Floats2d]:
    """The mean negative log-likelihood of the predicted targets, and its
    gradient with respect to `predictions` (the log-likelihoods)."""
    n = predictions.size
    gradient = ops.xp.full(predictions.shape, -1.0 / max(n, 1), dtype="float32")
    return (-float(predictions.sum()) / n if n else 0.0), gradient


def perplexity(model: Model[List[Doc], Floats2d], docs: Iterable[Doc], batch_size: int = 256) -> Dict[str, float]:
    """Held-out perplexity, exp(mean negative log-likelihood) of the
    predicted tokens: "forward" (next token), "backward" (previous token, for
    a bidirectional model) and "mean" (over both directions' predictions)."""
    total = numpy.zeros(model.get_dim("nO"))
    count = 0
    for batch in minibatch(docs, batch_size):
        loglik = model.ops.to_numpy(model.predict(list(batch)))
        total -= loglik.sum(axis=0, dtype="float64")
        count += loglik.shape[0]
    if not count:
        raise ValueError("Cannot compute a perplexity without tokens: the Docs are all empty.")
    nll = total / count
    names = ("forward", "backward")[: len(nll)]
    return {**{name: math.exp(value) for name, value in zip(names, nll)}, "mean": math.exp(nll.mean())}


def recurrent_output(tok2vec: Model) -> Optional[Dict[str, Any]]:
    """The settings of the spacy-rnn recurrent encoder whose states are the
    output of `tok2vec` (following the last layer of chains), or None if its
    output comes from another layer."""
    node = tok2vec
    while ">>" in node.name and node.layers:
        node = node.layers[-1]
    return node.attrs["module_kwargs"] if node.name in ("rnn_states", "rnn_states_view") else None
