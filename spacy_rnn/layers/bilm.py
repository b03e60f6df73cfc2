"""The bidirectional language model that pretrains a recurrent tok2vec
(`spacy_rnn.BiLM.v1` and `.v2`, the objectives of `spacy pretrain`).

The model maps Docs to the log-likelihood of each token's targets, one
column per direction (see `spacy_rnn.nn.lm_heads`); `bilm_loss` turns them into
spaCy's (loss, gradient): the loss is their negative mean, so its gradient
is -1/n for each. The adaptive softmax, the heavy part, stays in torch.

`Regularisation` adds AWD-LSTM's (Merity et al. 2018, section 4) recurrent
regularisers in training: activation regularisation (AR) and temporal
activation regularisation (TAR), penalties added to the loss whose gradients
go straight to the states; embedding dropout; and weight-drop (DropConnect on
the recurrent weights), applied to the encoder's own torch module for the
update and undone after its backward pass.
"""
import math
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy
import torch
from spacy.attrs import NORM
from spacy.strings import get_string_id
from spacy.tokens import Doc
from spacy.util import minibatch
from thinc.api import ArgsKwargs, Dropout, Model, Ops, torch2xp, xp2torch
from thinc.layers.chain import forward as chain_forward
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


class Regularisation(NamedTuple):
    """AWD-LSTM's regularisers of the language model (Merity et al. 2018),
    in training only; all 0: none (BiLM.v1).

    activation (float): alpha of AR, alpha * mean(h**2) over every unit of
        the dropped-out states h that the heads read.
    temporal (float): beta of TAR, beta * mean((h_t - h_{t-1})**2) over every
        unit of each pair of neighbouring states of a Doc, before dropout.
    embedding_dropout (float): The probability that a word (a NORM) has its
        input vectors zeroed at all its tokens in a batch; the others are
        scaled by 1 / (1 - p).
    weight_drop (float): The probability that each recurrent
        (hidden-to-hidden) weight is zeroed for a batch, the others scaled by
        1 / (1 - p).
    """

    activation: float = 0.0
    temporal: float = 0.0
    embedding_dropout: float = 0.0
    weight_drop: float = 0.0


PENALTY = "penalty"  # attrs key: the AR and TAR penalty of the model's last forward pass in training


def BiLM(
    tok2vec: Model[List[Doc], List[Floats2d]], words: Sequence[str], bidirectional: bool,
    cutoffs: Sequence[int] = (2000, 10000), regularisation: Regularisation = Regularisation(),
) -> Model[List[Doc], Floats2d]:
    """Language-model heads on `tok2vec` (ref "tok2vec"), with dropout (set by
    [pretraining] dropout) on its states. The tok2vec must already be
    initialized, as `spacy pretrain` does; initializing this model builds the
    heads only. With a penalty (AR, TAR) in `regularisation`, the loss in
    `attrs["loss"]` adds that of the model's last update."""
    heads_kwargs = {"n_classes": N_SPECIAL + len(words), "bidirectional": bidirectional, "cutoffs": list(cutoffs)}
    model = Model(
        "bilm",
        _forward,
        init=_init,
        layers=[tok2vec, Dropout()],
        dims={"nO": 2 if bidirectional else 1},
        attrs={"heads_kwargs": heads_kwargs, "word_ids": WordIds(words), "loss": bilm_loss,
               "regularisation": regularisation, PENALTY: 0.0},
        shims=[TorchModuleShim(BiLMHeads)],
    )
    if regularisation.activation or regularisation.temporal:
        model.attrs["loss"] = penalised_loss(model)
    if regularisation.weight_drop:
        model.attrs["weight_drop"] = WeightDrop(recurrent_node(tok2vec).shims[0], regularisation.weight_drop)
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
    regularisation = model.attrs["regularisation"]
    weight_drop = model.attrs.get("weight_drop")
    model.attrs[PENALTY] = 0.0
    lengths = [len(doc) for doc in docs]
    if not sum(lengths):  # nothing to predict, and no graph for torch to backpropagate through
        return model.ops.alloc2f(0, model.get_dim("nO")), lambda d_loglik: []
    if weight_drop is not None:
        weight_drop.restore()  # after a forward pass in training whose backward pass never came
        if is_train:
            weight_drop.drop()
    states, backprop_tok2vec = encode(tok2vec, docs, is_train, regularisation.embedding_dropout)
    dropped, backprop_dropout = dropout(states, is_train)
    if [int(x.shape[0]) for x in states] != lengths:
        raise ValueError("The tok2vec of the language model must give one row per token.")
    flat_dropped = model.ops.asarray2f(model.ops.xp.concatenate(dropped))
    flat_t = xp2torch(flat_dropped, requires_grad=is_train)
    ids = xp2torch(model.ops.asarray(model.attrs["word_ids"](docs)))
    loglik_t, backprop_heads = model.shims[0](ArgsKwargs(args=(flat_t, lengths, ids), kwargs={}), is_train)
    if not bool(loglik_t.isfinite().all()):
        raise ValueError(non_finite_message("the language model's log-likelihoods"))
    ar = temporal = None  # (penalty, its gradient with respect to the dropped-out states, or the states)
    if is_train and regularisation.activation:
        ar = activation_penalty(flat_dropped, regularisation.activation)
    if is_train and regularisation.temporal:
        flat_states = model.ops.asarray2f(model.ops.xp.concatenate(states))
        temporal = temporal_penalty(model.ops, flat_states, lengths, regularisation.temporal)
    model.attrs[PENALTY] = (ar[0] if ar else 0.0) + (temporal[0] if temporal else 0.0)

    def backprop(d_loglik: Floats2d) -> List[Doc]:
        d_loglik_t = xp2torch(model.ops.asarray2f(d_loglik))
        grads = backprop_heads(ArgsKwargs(args=(loglik_t,), kwargs={"grad_tensors": (d_loglik_t,)}))
        d_dropped = torch2xp(grads.args[0])
        if ar:
            d_dropped = d_dropped + ar[1]
        d_states = backprop_dropout(model.ops.unflatten(d_dropped, lengths))
        if temporal:
            d_states = model.ops.unflatten(model.ops.xp.concatenate(d_states) + temporal[1], lengths)
        d_docs = backprop_tok2vec(d_states)
        if weight_drop is not None:
            weight_drop.restore(scale_gradients=True)
        return d_docs

    return torch2xp(loglik_t), backprop


def activation_penalty(states: Floats2d, alpha: float) -> Tuple[float, Floats2d]:
    """AR: alpha * mean(states**2), and its gradient with respect to states."""
    return alpha * float((states**2).mean()), (2 * alpha / states.size) * states


def temporal_penalty(ops: Ops, states: Floats2d, lengths: Sequence[int], beta: float) -> Tuple[float, Floats2d]:
    """TAR: beta * mean((h_t - h_{t-1})**2) over the pairs of neighbouring
    rows of each sequence (flat `states`, sequences of `lengths`), and its
    gradient with respect to states; (0, zeros) without pairs."""
    gradient = ops.alloc2f(*states.shape)
    starts = numpy.cumsum([0] + [n for n in lengths if n])[1:-1]  # rows that start a sequence, but the first
    same_sequence = numpy.ones((max(len(states) - 1, 0), 1), dtype="float32")
    same_sequence[starts - 1] = 0
    n_pairs = int(same_sequence.sum())
    if not n_pairs:
        return 0.0, gradient
    steps = (states[1:] - states[:-1]) * ops.asarray2f(same_sequence)
    scale = 2 * beta / (n_pairs * states.shape[1])
    gradient[1:] += scale * steps
    gradient[:-1] -= scale * steps
    return beta * float((steps**2).sum()) / (n_pairs * states.shape[1]), gradient


def penalised_loss(model: Model) -> Callable[[Ops, Iterable[Doc], Floats2d], Tuple[float, Floats2d]]:
    """bilm_loss plus the AR and TAR penalty of `model`'s last forward pass in
    training (its gradient goes to the states in that pass's backprop)."""

    def loss(ops: Ops, docs: Iterable[Doc], predictions: Floats2d) -> Tuple[float, Floats2d]:
        nll, gradient = bilm_loss(ops, docs, predictions)
        return nll + model.attrs[PENALTY], gradient

    return loss


def encode(
    tok2vec: Model[List[Doc], List[Floats2d]], docs: List[Doc], is_train: bool, embedding_dropout: float
) -> Tuple[List[Floats2d], Callable]:
    """tok2vec(docs), in training with embedding dropout on the input of its
    recurrent layer: each NORM of the batch has its vectors zeroed at all its
    tokens with probability `embedding_dropout`, or scaled by 1 / (1 - p)."""
    if not (is_train and embedding_dropout):
        return tok2vec(docs, is_train)
    below, recurrent = split_at_recurrent(tok2vec)
    vectors: Any = docs
    backprops = []
    for layer in below:
        vectors, backprop_layer = layer(vectors, is_train)
        backprops.append(backprop_layer)
    lengths = [len(doc) for doc in docs]
    mask = tok2vec.ops.unflatten(tok2vec.ops.asarray2f(word_dropout_mask(docs, embedding_dropout)), lengths)
    states, backprop_recurrent = recurrent([x * m for x, m in zip(vectors, mask)], is_train)

    def backprop(d_states: List[Floats2d]) -> Any:
        d_vectors: Any = [d * m for d, m in zip(backprop_recurrent(d_states), mask)]
        for backprop_layer in reversed(backprops):
            d_vectors = backprop_layer(d_vectors)
        return d_vectors

    return states, backprop


def word_dropout_mask(docs: Sequence[Doc], rate: float) -> numpy.ndarray:
    """(n_tokens, 1): 0 for every token of a NORM dropped with probability
    `rate` (drawn once per NORM of the batch), 1 / (1 - rate) for the others."""
    norms = numpy.concatenate([doc.to_array(NORM).reshape(-1) for doc in docs])
    types, token_type = numpy.unique(norms, return_inverse=True)
    kept = (numpy.random.uniform(size=len(types)) >= rate).astype("float32") / (1 - rate)
    return kept[token_type.reshape(-1)].reshape(-1, 1)


def split_at_recurrent(tok2vec: Model) -> Tuple[List[Model], Model]:
    """The layers that `tok2vec` runs before its recurrent layer (following
    the last layer of chains), and that layer."""
    below = []
    node = tok2vec
    while node._func is chain_forward and node.layers:
        below.extend(node.layers[:-1])
        node = node.layers[-1]
    if node.name not in RECURRENT_NODES:
        raise ValueError(
            f"Cannot find the recurrent layer of '{tok2vec.name}' behind a chain of layers: embedding dropout needs "
            "it. Pretrain the \"encoder\" of TextCatRNN or a tok2vec whose encode is spacy_rnn.RNNEncoder.v1."
        )
    return below, node


RECURRENT_NODES = ("rnn_states", "rnn_states_view")
# The recurrent (hidden-to-hidden) weights in spacy_rnn.nn.recurrent: torch's LSTM/GRU/RNN and the Elman cell's U
RECURRENT_WEIGHT = re.compile(r"(^|\.)(rnn\.weight_hh_l0|recurrent\.weight)$")


class WeightDrop:
    """Weight-drop (AWD-LSTM; DropConnect, Wan et al. 2013) on the recurrent
    weights of a shim's torch module: `drop()` zeroes each with probability
    `rate` and scales the others by 1 / (1 - rate), in place, for a forward
    and backward pass; `restore(scale_gradients=True)` after the backward
    pass turns the gradients of the dropped weights into those of the raw
    ones (the same mask and scale) and puts the raw weights back, before the
    optimizer updates them."""

    def __init__(self, shim: Any, rate: float):
        self.shim = shim
        self.rate = rate
        self.dropped: List[Tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]] = []

    def weights(self) -> List[torch.nn.Parameter]:
        return [weight for name, weight in self.shim.module.named_parameters() if RECURRENT_WEIGHT.search(name)]

    def drop(self) -> None:
        with torch.no_grad():
            for weight in self.weights():
                mask = torch.bernoulli(torch.full_like(weight, 1 - self.rate)) / (1 - self.rate)
                self.dropped.append((weight, weight.detach().clone(), mask))
                weight.mul_(mask)

    def restore(self, scale_gradients: bool = False) -> None:
        with torch.no_grad():
            for weight, raw, mask in self.dropped:
                if scale_gradients and weight.grad is not None:
                    weight.grad.mul_(mask)
                weight.copy_(raw)
        self.dropped = []


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
    node = recurrent_node(tok2vec)
    return node.attrs["module_kwargs"] if node.name in RECURRENT_NODES else None


def recurrent_node(tok2vec: Model) -> Model:
    """The last layer of `tok2vec`, following the last layer of chains."""
    node = tok2vec
    while ">>" in node.name and node.layers:
        node = node.layers[-1]
    return node
