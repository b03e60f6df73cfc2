"""Thinc layers around the torch recurrent modules.

Both layers take one array of token vectors per Doc. The arrays are
concatenated once, handed to torch with their lengths (the torch side packs
them by length), and the result is split back per Doc: no padding crosses
the boundary.
"""
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch
from thinc.types import Floats2d

from ..nn.recurrent import PooledRecurrentEncoder, RecurrentEncoder
from .torch_bridge import TorchModuleShim


def RNNStates(width: int, **rnn_kwargs: Any) -> Model[List[Floats2d], List[Floats2d]]:
    """All states (h_1 … h_T) of a recurrent network, one array per Doc."""
    return _torch_rnn_layer("rnn_states", RecurrentEncoder, width, width, rnn_kwargs, _forward_states)


def PooledRNN(width: int, pooling: Sequence[str], **rnn_kwargs: Any) -> Model[List[Floats2d], Floats2d]:
    """One pooled vector per Doc from the states of a recurrent network."""
    kwargs = dict(rnn_kwargs, pooling=list(pooling))
    nO = width * len(pooling)
    return _torch_rnn_layer("rnn_pooled", PooledRecurrentEncoder, width, nO, kwargs, _forward_pooled)


def _torch_rnn_layer(
    name: str, module_class: type, width: int, nO: int, kwargs: Dict[str, Any], forward: Callable
) -> Model:
    return Model(
        name,
        forward,
        init=_init,
        dims={"nI": None, "nO": nO},
        attrs={"module_kwargs": dict(kwargs, width=width)},
        shims=[TorchModuleShim(module_class)],
    )


def _init(model: Model, X: Optional[List[Floats2d]] = None, Y=None) -> Model:
    if X:
        model.set_dim("nI", int(X[0].shape[1]))
    if not model.has_dim("nI"):
        raise ValueError(
            f"Cannot initialize the '{model.name}' layer: its input width (nI) is unknown. "
            "Pass sample input to initialize() or put it after a layer of known width."
        )
    model.shims[0].build(nI=model.get_dim("nI"), **model.attrs["module_kwargs"])
    return model


def _run(model: Model, Xs: List[Floats2d], is_train: bool) -> Tuple[Any, Callable, List[int]]:
    """Concatenate the Docs' arrays, run the torch module, and return its
    output with a callback that takes the output's gradient."""
    shim: TorchModuleShim = model.shims[0]
    if shim.module is None:
        raise ValueError(f"The '{model.name}' layer is not initialized: call initialize() first.")
    lengths = [int(x.shape[0]) for x in Xs]
    flat = model.ops.xp.concatenate(Xs) if Xs else model.ops.alloc2f(0, model.get_dim("nI"))
    flat_t = xp2torch(model.ops.asarray2f(flat), requires_grad=is_train)
    output, torch_backprop = shim(ArgsKwargs(args=(flat_t, lengths), kwargs={}), is_train)

    def backprop(d_output: Any) -> Floats2d:
        tensor = output[0] if isinstance(output, tuple) else output
        grads = torch_backprop(ArgsKwargs(args=(tensor,), kwargs={"grad_tensors": (xp2torch(d_output),)}))
        return torch2xp(grads.args[0])

    return output, backprop, lengths


def _forward_states(model: Model, Xs: List[Floats2d], is_train: bool):
    (states, _final), torch_backprop, lengths = _run(model, Xs, is_train)
    Ys = model.ops.unflatten(torch2xp(states), lengths) if Xs else []

    def backprop(dYs: List[Floats2d]) -> List[Floats2d]:
        d_flat = model.ops.xp.concatenate(dYs) if dYs else model.ops.alloc2f(0, model.get_dim("nO"))
        return model.ops.unflatten(torch_backprop(model.ops.asarray2f(d_flat)), lengths)

    return Ys, backprop


def _forward_pooled(model: Model, Xs: List[Floats2d], is_train: bool):
    pooled, torch_backprop, lengths = _run(model, Xs, is_train)

    def backprop(dY: Floats2d) -> List[Floats2d]:
        return model.ops.unflatten(torch_backprop(dY), lengths)

    return torch2xp(pooled), backprop
