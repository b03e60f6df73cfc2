"""The state of a training between two updates, saved under stable names so
that another process can resume it exactly.

thinc's optimizers key a parameter's moments, step count and average by
(model or shim id, parameter name), and ids change from one process to the
next. Here each parameter is named by its PATH instead: the place of its node
in `model.walk()`, the node's name and the parameter's name (for a torch
module's weights, the shim's place in the node and torch's dotted name). The
state holds, for every parameter: its weights, Adam's two moments, its step
count and its average (`use_averages`); and the random generators of Python,
numpy and torch (CPU), so that dropout continues as it would have.
"""
import os
import random
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, NamedTuple, Tuple, Union

import numpy
import srsly
import torch
from thinc.api import Model, Optimizer, torch2xp
from thinc.backends import get_array_ops
from thinc.types import FloatsXd

from .optimizers import LazyAdam, LazyAverages, as_table

FORMAT = "spacy_rnn.training_state.v1"


class Parameter(NamedTuple):
    """One parameter of a model: the optimizer's key for it, and its weights
    (the array the optimizer updates) and how to overwrite them."""

    key: Tuple[int, str]
    weights: Callable[[], FloatsXd]
    set_weights: Callable[[numpy.ndarray], None]


def parameters(model: Model) -> Dict[str, Parameter]:
    """Every parameter of `model` that has weights, by path; a torch module
    shared by several nodes is named after the first."""
    found: Dict[str, Parameter] = {}
    keys = set()
    for path, parameter in _walk_parameters(model):
        if parameter.key not in keys:
            keys.add(parameter.key)
            found[path] = parameter
    return found


def _walk_parameters(model: Model) -> Iterator[Tuple[str, Parameter]]:
    for index, node in enumerate(model.walk()):
        for name in node.param_names:
            if node.has_param(name):
                yield f"{index}/{node.name}/{name}", Parameter(
                    (node.id, name), lambda node=node, name=name: node.get_param(name),
                    lambda value, node=node, name=name: node.set_param(name, node.ops.asarray(value)),
                )
        for shim_index, shim in enumerate(node.shims):
            module = getattr(shim, "_model", None)
            if not isinstance(module, torch.nn.Module):
                continue
            for name, weights in module.named_parameters():
                yield f"{index}/{node.name}/shims/{shim_index}/{name}", Parameter(
                    (shim.id, name), lambda weights=weights: torch2xp(weights.data),
                    lambda value, weights=weights: _copy_into(weights, value),
                )


def _copy_into(weights: torch.nn.Parameter, value: numpy.ndarray) -> None:
    with torch.no_grad():
        weights.copy_(torch.from_numpy(value).to(weights.device))


def training_state(model: Model, optimizer: Optimizer) -> Dict[str, Any]:
    """What `restore_training_state` needs to continue training `model` with
    `optimizer` from here (numpy arrays, msgpack-serialisable)."""
    state: Dict[str, Dict[str, Any]] = {}
    for path, parameter in parameters(model).items():
        weights = parameter.weights()
        ops = get_array_ops(weights)
        step = optimizer.nr_update.get(parameter.key, 0)
        entry: Dict[str, Any] = {"weights": ops.to_numpy(weights).copy(), "step": step}
        for name, table in (("mom1", optimizer.mom1), ("mom2", optimizer.mom2), ("average", optimizer.averages or {})):
            if parameter.key in table:
                entry[name] = ops.to_numpy(table[parameter.key]).copy()
        state[path] = entry
    numpy_state = numpy.random.get_state()
    return {
        "format": FORMAT,
        "optimizer": type(optimizer).__name__,
        "parameters": state,
        "random": {
            "python": random.getstate(),
            "numpy": [numpy_state[0], numpy_state[1], *numpy_state[2:]],
            "torch": torch.get_rng_state().numpy(),
        },
    }


def restore_training_state(model: Model, optimizer: Optimizer, state: Dict[str, Any]) -> None:
    """Put `state` (from `training_state`) into `model`, which must be built
    as the saved one, and into `optimizer`, a new optimizer of the same kind."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"Not a saved training state ({FORMAT}): save it with save_training_state.")
    if state["optimizer"] != type(optimizer).__name__:
        raise ValueError(
            f"The training state was saved with a {state['optimizer']} optimizer, the config builds a "
            f"{type(optimizer).__name__}: resume with the config it was saved with, or start afresh."
        )
    found = parameters(model)
    saved = state["parameters"]
    if set(found) != set(saved):
        differ = sorted(set(found) ^ set(saved))
        raise ValueError(
            f"The training state was saved from another model: {len(differ)} parameters differ, e.g. {differ[0]}. "
            "Resume with the config it was saved with, or start afresh."
        )
    for path, parameter in found.items():
        shape = tuple(parameter.weights().shape)
        if tuple(saved[path]["weights"].shape) != shape:
            raise ValueError(
                f"The training state was saved from another model: {path} has the shape "
                f"{tuple(saved[path]['weights'].shape)} there, {shape} here. Resume with the config it was saved "
                "with, or start afresh."
            )
    for path, parameter in found.items():
        entry = {name: numpy.array(value) for name, value in saved[path].items()}  # writable copies
        parameter.set_weights(entry["weights"])
        _restore_optimizer(optimizer, parameter, entry)
    python_state = state["random"]["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    numpy.random.set_state(tuple(state["random"]["numpy"]))
    torch.set_rng_state(torch.from_numpy(numpy.array(state["random"]["torch"], dtype="uint8")))


def _restore_optimizer(optimizer: Optimizer, parameter: Parameter, entry: Dict[str, Any]) -> None:
    key, weights = parameter.key, parameter.weights()
    ops = get_array_ops(weights)
    step = int(entry["step"])
    if step:
        optimizer.nr_update[key] = step
    for name, table in (("mom1", optimizer.mom1), ("mom2", optimizer.mom2)):
        if name in entry:
            table[key] = ops.asarray(entry[name])
    if "average" not in entry or optimizer.averages is None:
        return
    average = ops.asarray(entry["average"])
    averages = optimizer.averages
    if isinstance(optimizer, LazyAdam) and isinstance(averages, LazyAverages) and key[1] in optimizer.lazy_params:
        # LazyAverages' bookkeeping of a lazily updated parameter: every row's average is up to date
        dict.__setitem__(averages, key, average)
        averages.tables[key] = as_table(weights)
        averages.steps[key] = step
        averages.averaged_at[key] = ops.asarray(numpy.full(len(weights), step, dtype="int32"))
    else:
        averages[key] = average


def save_training_state(path: Union[str, Path], model: Model, optimizer: Optimizer) -> None:
    """Write training_state(model, optimizer) to `path`, whole or not at all."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(srsly.msgpack_dumps(training_state(model, optimizer)))
    os.replace(partial, path)


def load_training_state(path: Union[str, Path], model: Model, optimizer: Optimizer) -> None:
    """Restore the training state saved at `path` into model and optimizer."""
    try:
        state = srsly.msgpack_loads(Path(path).read_bytes())
    except Exception as err:  # msgpack raises several types for damaged data
        raise ValueError(f"Cannot read the training state {path} ({type(err).__name__}: {err}).") from None
    restore_training_state(model, optimizer, state)
