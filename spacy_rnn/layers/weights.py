"""The saved format of a torch module's weights: a msgpack record of its
settings and its weights as plain arrays, so that loading never unpickles
anything. Weights that are not finite are never saved, and a record is
checked whole (readable, float arrays, the settings of the config) before
anything is loaded. A module that was never built saves `NOT_BUILT`, as thinc
saves a layer whose parameters are unset."""
from typing import Any, Dict, Optional, Tuple

import numpy
import srsly
import torch

NOT_BUILT = {"config": None, "state": None}  # the saved record of a module that was never built


def weights_record(name: str, config: Dict[str, Any], state: Dict[str, torch.Tensor]) -> bytes:
    """The saved record of a torch module's weights: msgpack of its settings
    and its weights as arrays; weights that are not finite are refused."""
    arrays = {key: value.detach().cpu().numpy() for key, value in state.items()}
    not_finite = [key for key, value in arrays.items() if not numpy.isfinite(value).all()]
    if not_finite:
        raise ValueError(non_finite_message(f"the {name} weights {', '.join(not_finite)}"))
    return srsly.msgpack_dumps({"config": config, "state": arrays})


def read_weights_record(
    bytes_data: bytes, name: str, settings: Dict[str, Any]
) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, torch.Tensor]]]:
    """The settings and weights of a saved record of `name` weights, checked:
    a msgpack map of float arrays whose settings include `settings`; (None,
    None) for the record of a module that was never built."""
    try:
        msg = srsly.msgpack_loads(bytes_data)
    except Exception:  # msgpack raises several types for damaged data
        msg = None
    if msg == NOT_BUILT:
        return None, None
    if not (isinstance(msg, dict) and set(msg) == {"config", "state"} and isinstance(msg["config"], dict)
            and isinstance(msg["state"], dict)):
        raise ValueError(
            f"Cannot load {name} weights: the data is not a spacy-rnn weights record (expected msgpack with "
            "'config' and 'state'). The file is damaged or was replaced: save or download the pipeline again."
        )
    config = msg["config"]
    different = settings_differences(config, settings)
    if different:
        raise ValueError(
            f"The saved {name} weights were trained with other settings than the config: "
            f"{different}. Load the pipeline with the config.cfg saved beside its weights, or retrain."
        )
    for key, value in msg["state"].items():
        if not isinstance(value, numpy.ndarray) or value.dtype.kind != "f":
            raise ValueError(f"Cannot load {name} weights: '{key}' is not an array of floats (damaged file?).")
    return config, {key: torch.from_numpy(numpy.array(value)) for key, value in msg["state"].items()}


def settings_differences(saved: Dict[str, Any], expected: Dict[str, Any]) -> str:
    """The settings whose saved value is not the expected one, as
    "key = saved in the weights, expected in the config; ..." ("" if none)."""
    return "; ".join(
        f"{key} = {saved.get(key)!r} in the weights, {value!r} in the config"
        for key, value in expected.items()
        if saved.get(key) != value
    )


def weights_differences(saved: Dict[str, Any], expected: Dict[str, Any]) -> str:
    """The weights (arrays or tensors by name) that `saved` lacks, holds
    beyond `expected`, or holds in another shape, in words ("" if none)."""
    missing = sorted(set(expected) - set(saved))
    extra = sorted(set(saved) - set(expected))
    reshaped = [
        f"{key} {tuple(saved[key].shape)} in the weights, {tuple(expected[key].shape)} in the model"
        for key in sorted(set(saved) & set(expected))
        if tuple(saved[key].shape) != tuple(expected[key].shape)
    ]
    parts = [f"{', '.join(missing)} missing from the weights"] if missing else []
    parts += [f"{', '.join(extra)} in the weights but not in the model"] if extra else []
    return "; ".join(parts + reshaped)


def non_finite_message(what: str) -> str:
    return (
        f"NaN or infinite values in {what}: training has diverged, and a model with them is not saved. Lower the "
        "learning rate, clip gradients ([training.optimizer] grad_clip = 1.0, the default of spacy-rnn's configs), "
        "and restart from the last good checkpoint."
    )
