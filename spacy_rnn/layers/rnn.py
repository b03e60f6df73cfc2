"""Thinc layers around the torch recurrent modules.

Both layers take one array of token vectors per Doc. The arrays are
concatenated once, handed to torch with their lengths (the torch side packs
them by length), and the result is split back per Doc: no padding crosses
the boundary.

Long Docs are bounded by `max_length` tokens (0: no bound), so that the
padded chunks of a batch, and with them memory, stay bounded: `RNNStates`
reads a longer Doc as consecutive windows of max_length tokens, each from a
fresh state (every token still gets a vector); `PooledRNN` reads its first
max_length tokens.

`RNNStatesView` gives the states of a `PooledRNN`'s encoder, sharing its
weights: the text classifiers' `encoder` ref, which `spacy pretrain` trains.
`EncoderStates` is such an encoder on its own (the pretrained part of the
frozen features, `spacy_rnn.layers.frozen`), and `every_layer_states` runs
either for the states of all its layers, without gradient.
"""
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch
from thinc.types import Floats2d, Floats3d

from ..nn.recurrent import PooledRecurrentEncoder, RecurrentEncoder
from .shims import TorchModuleShim, ViewShim
from .weights import non_finite_message


def RNNStates(width: int, max_length: int = 0, **rnn_kwargs: Any) -> Model[List[Floats2d], List[Floats2d]]:
    """All states (h_1 … h_T) of a recurrent network, one array per Doc;
    Docs longer than max_length are read in windows of max_length tokens."""
    forward = partial(forward_states, max_length=max_length)
    return _torch_rnn_layer("rnn_states", RecurrentEncoder, width, None, width, rnn_kwargs, forward)


def PooledRNN(
    width: int, pooling: Sequence[str], max_length: int = 0, nI: Optional[int] = None, **rnn_kwargs: Any
) -> Model[List[Floats2d], Floats2d]:
    """One pooled vector per Doc from the states of a recurrent network over
    its first max_length tokens; nI: the width of the token vectors, when known."""
    kwargs = dict(rnn_kwargs, pooling=list(pooling))
    nO = width * len(pooling)
    forward = partial(_forward_pooled, max_length=max_length)
    return _torch_rnn_layer("rnn_pooled", PooledRecurrentEncoder, width, nI, nO, kwargs, forward)


def RNNStatesView(pooled: Model, max_length: int = 0) -> Model[List[Floats2d], List[Floats2d]]:
    """All states (h_1 … h_T) of the last layer of `pooled`'s recurrent
    encoder, one array per Doc, read in windows like RNNStates. The view's
    shim runs `pooled`'s module, under its id (not `pooled` itself, so the
    weights are saved once): weights, optimizer state and loaded bytes are
    shared. It loads the weights of an encoder saved with another pooling
    that has no weights (see ViewShim)."""
    module_kwargs = pooled.attrs["module_kwargs"]
    forward = partial(forward_states, max_length=max_length, pool=False)
    return Model(
        "rnn_states_view",
        forward,
        init=_init_view,
        dims={"nI": pooled.maybe_get_dim("nI"), "nO": module_kwargs["width"]},
        attrs={"module_kwargs": module_kwargs},
        shims=[ViewShim(pooled.shims[0], unused=("pooling",))],
    )


def EncoderStates(
    width: int, max_length: int = 0, nI: Optional[int] = None, **rnn_kwargs: Any
) -> Model[List[Floats2d], List[Floats2d]]:
    """The states of a text classifier's encoder on its own: RNNStatesView's
    output and saved format (a PooledRecurrentEncoder), with no classifier
    around it. Its pooling is never run, so loading takes the saved
    pooling, whatever it is, unchecked."""
    forward = partial(forward_states, max_length=max_length, pool=False)
    kwargs = dict(rnn_kwargs, pooling=["max", "last"])  # TextCatRNN.v1's default
    return _torch_rnn_layer("rnn_states", PooledRecurrentEncoder, width, nI, width, kwargs, forward, ("pooling",))


def _torch_rnn_layer(
    name: str, module_class: type, width: int, nI: Optional[int], nO: int, kwargs: Dict[str, Any],
    forward: Callable, unchecked: Tuple[str, ...] = (),
) -> Model:
    module_kwargs = dict(kwargs, width=width)
    settings = {key: value for key, value in module_kwargs.items() if key not in unchecked}
    return Model(
        name,
        forward,
        init=_init,
        dims={"nI": nI, "nO": nO},
        attrs={"module_kwargs": module_kwargs},
        shims=[TorchModuleShim(module_class, settings=settings)],
    )


def _init(model: Model, X: Optional[List[Floats2d]] = None, Y=None) -> Model:
    if X:
        model.set_dim("nI", int(X[0].shape[1]))
    if not model.has_dim("nI"):
        raise ValueError(
            f"Cannot initialize the '{model.name}' layer: its input width (nI) is unknown. Pass sample input "
            "to initialize() (nlp.initialize() does), or give its tok2vec a known output width (nO)."
        )
    model.shims[0].build(nI=model.get_dim("nI"), **model.attrs["module_kwargs"])
    return model


def _init_view(model: Model, X: Optional[List[Floats2d]] = None, Y=None) -> Model:
    """Build the shared module if the classifier has not built it yet; never
    replace a built one (and its trained weights)."""
    shim: TorchModuleShim = model.shims[0]
    if shim.module is None:
        return _init(model, X, Y)
    if X and int(X[0].shape[1]) != shim.cfg["nI"]:
        raise ValueError(
            f"The '{model.name}' layer reads vectors of width {shim.cfg['nI']}, got {int(X[0].shape[1])}: the "
            "tok2vec before it does not match the recurrent network's weights."
        )
    model.set_dim("nI", shim.cfg["nI"])
    return model


def _run(
    model: Model, Xs: List[Floats2d], lengths: List[int], is_train: bool, **module_kwargs: Any
) -> Tuple[Any, Callable]:
    """Concatenate the Docs' arrays, run the torch module over sequences of
    the given lengths, and return its output with a callback that takes the
    output's gradient."""
    shim: TorchModuleShim = model.shims[0]
    if shim.module is None:
        raise ValueError(f"The '{model.name}' layer is not initialized: call initialize() first.")
    flat = model.ops.xp.concatenate(Xs) if Xs else model.ops.alloc2f(0, model.get_dim("nI"))
    flat_t = xp2torch(model.ops.asarray2f(flat), requires_grad=is_train)
    output, torch_backprop = shim(ArgsKwargs(args=(flat_t, lengths), kwargs=module_kwargs), is_train)
    tensor = output[0] if isinstance(output, tuple) else output
    if not bool(tensor.isfinite().all()):
        raise ValueError(non_finite_message(f"the output of the '{model.name}' layer"))

    def backprop(d_output: Any) -> Floats2d:
        d_flat = None
        if tensor.requires_grad:  # not so for a batch without tokens, unless a weight (attention) was used
            grads = torch_backprop(ArgsKwargs(args=(tensor,), kwargs={"grad_tensors": (xp2torch(d_output),)}))
            d_flat = grads.args[0]
        return model.ops.alloc2f(*flat.shape) if d_flat is None else torch2xp(d_flat)

    return output, backprop


def windows(lengths: Sequence[int], max_length: int) -> List[int]:
    """Each length cut into consecutive pieces of at most max_length (0: uncut)."""
    if not max_length:
        return list(lengths)
    return [min(max_length, length - start) for length in lengths for start in range(0, length, max_length)]


def forward_states(model: Model, Xs: List[Floats2d], is_train: bool, max_length: int = 0, **module_kwargs: Any):
    lengths = [int(x.shape[0]) for x in Xs]
    (states, _final), torch_backprop = _run(model, Xs, windows(lengths, max_length), is_train, **module_kwargs)
    Ys = model.ops.unflatten(torch2xp(states), lengths) if Xs else []

    def backprop(dYs: List[Floats2d]) -> List[Floats2d]:
        d_flat = model.ops.xp.concatenate(dYs) if dYs else model.ops.alloc2f(0, model.get_dim("nO"))
        return model.ops.unflatten(torch_backprop(model.ops.asarray2f(d_flat)), lengths)

    return Ys, backprop


def every_layer_states(model: Model, Xs: List[Floats2d], max_length: int = 0) -> Floats3d:
    """The states of every layer of the recurrent network of `model` (an
    EncoderStates or RNNStatesView), (n_tokens, depth, width) for the Docs'
    tokens in turn, read in windows like forward_states, in inference mode
    and without gradient: for frozen features."""
    lengths = [int(x.shape[0]) for x in Xs]
    (states, _final), _ = _run(model, Xs, windows(lengths, max_length), False, pool=False, all_layers=True)
    return torch2xp(states)


def _forward_pooled(model: Model, Xs: List[Floats2d], is_train: bool, max_length: int = 0):
    read = first_tokens(Xs, max_length)
    read_lengths = [int(x.shape[0]) for x in read]
    pooled, torch_backprop = _run(model, read, read_lengths, is_train)

    def backprop(dY: Floats2d) -> List[Floats2d]:
        d_read = model.ops.unflatten(torch_backprop(dY), read_lengths)
        return [pad_rows(model, d, int(x.shape[0])) for d, x in zip(d_read, Xs)]

    return torch2xp(pooled), backprop


def first_tokens(Xs: List[Floats2d], max_length: int) -> List[Floats2d]:
    """The first max_length rows (token vectors) of each array; all of them for 0."""
    return [x[:max_length] for x in Xs] if max_length else Xs


def pad_rows(model: Model, array: Floats2d, n_rows: int) -> Floats2d:
    """`array` followed by zero rows up to n_rows (the gradient of a cut)."""
    if array.shape[0] == n_rows:
        return array
    padded = model.ops.alloc2f(n_rows, array.shape[1])
    padded[: array.shape[0]] = array
    return padded
