"""The torch <-> thinc boundary: shims that hold spacy-rnn's torch modules.

`TorchModuleShim` holds a torch module that is built from keyword arguments
once the dimensions are known (in `Model.initialize`), and that can be
rebuilt from its saved bytes alone (`spacy_rnn.layers.weights`). It runs
the module under spacy-rnn's thread policy (`spacy_rnn.threads`) and
precision policy (`spacy_rnn.precision`), and updates its weights in place.
`ViewShim` runs, updates and saves another shim's whole module for a view
that uses part of its output (the text classifiers' `encoder` ref), and
`SubmoduleShim` one submodule of another shim's module.
"""
import copy
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import srsly
import torch
from thinc.api import Optimizer, get_torch_default_device, torch2xp, xp2torch
from thinc.shims import PyTorchShim, Shim

from ..precision import cpu_autocast
from ..threads import module_threads
from .weights import NOT_BUILT, read_weights_record, settings_differences, weights_differences, weights_record


class TorchModuleShim(PyTorchShim):
    """A PyTorchShim whose module is created later, by `build(**kwargs)`.

    `settings` are the module's keyword arguments that the config decides
    (not the widths found from data): saved weights with other settings are
    refused, except for `dropout`, which does not change the weights."""

    def __init__(self, module_class: Callable[..., torch.nn.Module], settings: Optional[Dict[str, Any]] = None):
        super().__init__(None)
        self.module_class = module_class
        self.settings = {key: value for key, value in (settings or {}).items() if key != "dropout"}

    @property
    def module(self) -> Optional[torch.nn.Module]:
        return self._model

    def __call__(self, inputs: Any, is_train: bool) -> Tuple[Any, Callable]:
        """The module's output and backprop callback, each computed under
        the thread policy (module_threads); the forward pass under the
        precision policy (cpu_autocast), its bf16 outputs handed over in fp32
        (pass these to the callback: the cast is part of the graph)."""
        with module_threads(), cpu_autocast():
            output, backprop = super().__call__(inputs, is_train)
            output = to_float32(output)

        def backprop_on_module_threads(d_output: Any) -> Any:
            with module_threads():
                return backprop(d_output)

        return output, backprop_on_module_threads

    def build(self, **kwargs: Any) -> torch.nn.Module:
        self.cfg = dict(kwargs)
        self._model = self.module_class(**kwargs).to(get_torch_default_device())
        return self._model

    def finish_update(
        self, optimizer: Optimizer, lr_scale: float = 1.0, submodule_scales: Optional[Dict[str, float]] = None
    ) -> None:
        """One optimizer step per torch parameter, kept in the parameter's own
        memory, at `lr_scale` times the optimizer's learning rate, or at the
        scale `submodule_scales` gives its top-level submodule (e.g.
        {"encoder": 0.25}). (thinc's PyTorchShim rebinds `parameter.data` to
        the optimizer's array, which on a GPU takes LSTM/GRU weights out of
        cuDNN's single weight buffer: torch then copies them at every call.)

        The optimizer may keep the gradient it is handed and apply it later,
        as spaCy's `Language.rehearse` does: so each gradient is released
        (`grad = None`, torch's own way of zeroing) rather than zeroed in place."""
        with torch.no_grad():
            for name, parameter in self._model.named_parameters():
                if parameter.grad is None:
                    continue
                scale = (submodule_scales or {}).get(name.split(".", 1)[0], lr_scale)
                scaled = {} if scale == 1.0 else {"lr_scale": scale}
                weights, _ = optimizer((self.id, name), torch2xp(parameter.data), torch2xp(parameter.grad), **scaled)
                updated = xp2torch(weights, device=parameter.device)
                if updated.data_ptr() != parameter.data_ptr():  # thinc's optimizers update in place; others may not
                    parameter.copy_(updated)
                parameter.grad = None

    @contextmanager
    def use_params(self, params: Dict[Tuple[int, str], Any]) -> Iterator[None]:
        """Use the weights in `params` (keyed like the optimizer's, by (shim
        id, parameter name): e.g. `optimizer.averages`, which spaCy evaluates
        and saves with) inside the block, the module's own afterwards."""
        swapped = {}
        if self._model is not None:
            with torch.no_grad():
                for name, parameter in self._model.named_parameters():
                    if (self.id, name) in params:
                        swapped[name] = parameter.detach().clone()
                        parameter.copy_(xp2torch(params[(self.id, name)], device=parameter.device))
        try:
            yield
        finally:
            if swapped:
                parameters = dict(self._model.named_parameters())
                with torch.no_grad():
                    for name, weights in swapped.items():
                        parameters[name].copy_(weights)

    def __deepcopy__(self, memo: Dict[int, Any]) -> "TorchModuleShim":
        """A deep copy with a new id, as thinc gives a copied Model a new id:
        thinc's optimizers key a shim's parameters by (shim id, name), so a copy
        (e.g. made by nlp.replace_listeners) must not share its original's."""
        copied = self.__class__.__new__(self.__class__)
        memo[id(self)] = copied
        copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
        with Shim.global_id_lock:
            Shim.global_id += 1
            copied.id = Shim.global_id
        return copied

    def to_bytes(self) -> bytes:
        if self._model is None:
            return srsly.msgpack_dumps(NOT_BUILT)
        return weights_record(self.module_class.__name__, self.cfg, self._model.state_dict())

    def from_bytes(self, bytes_data: bytes) -> "TorchModuleShim":
        config, state = self.read(bytes_data)
        self.cfg, self._model = ({}, None) if config is None else (config, self.load_module(config, state))
        return self

    def load_module(self, config: Dict[str, Any], state: Dict[str, torch.Tensor]) -> torch.nn.Module:
        """A module built with `config`, holding the weights `state`."""
        module = self.module_class(**config).to(get_torch_default_device())
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(
                f"The saved {self.module_class.__name__} weights do not match their saved settings {config}: {err}"
            ) from None
        return module

    def read(self, bytes_data: bytes) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, torch.Tensor]]]:
        """The settings and weights of a saved record, checked against the
        config's settings (see `read_weights_record`)."""
        return read_weights_record(bytes_data, self.module_class.__name__, self.settings)


def to_float32(output: Any) -> Any:
    """A module's output with its bf16 tensors cast to fp32 (autocast's
    output), in tuples too; everything else as it is."""
    if isinstance(output, torch.Tensor):
        return output.float() if output.dtype == torch.bfloat16 else output
    if isinstance(output, tuple):
        items = [to_float32(item) for item in output]
        return type(output)(*items) if hasattr(output, "_fields") else tuple(items)
    return output


class ViewShim(TorchModuleShim):
    """The shim of a view that runs the whole module of another
    TorchModuleShim for part of its output (a text classifier's `encoder`
    ref runs the pooled RNN's module for its states), sharing its weights.
    It saves the whole's record. It loads a record whose `unused` settings
    (those of the parts the view never runs: the pooling) differ from the
    config's, into a module with the config's own, provided the weights have
    the same names and shapes: max, mean and last pooling have no weights
    and may differ; attention pooling has weights, so it must be in the
    record and the config or in neither."""

    def __init__(self, whole: TorchModuleShim, unused: Tuple[str, ...]):
        self.whole = whole
        self.unused = unused
        super().__init__(whole.module_class, {k: v for k, v in whole.settings.items() if k not in unused})

    @property
    def _model(self) -> Optional[torch.nn.Module]:
        return self.whole.module

    @_model.setter
    def _model(self, module: Optional[torch.nn.Module]) -> None:
        if module is not None:  # thinc's Shim.__init__ sets None
            raise ValueError("A ViewShim's module is that of the shim it views.")

    @property
    def id(self) -> int:
        """The viewed shim's id: thinc's optimizers key weights by (shim id,
        name), so an update through either reaches the same moments."""
        return self.whole.id

    @id.setter
    def id(self, value: int) -> None:
        """thinc numbers every shim it creates or copies; a view keeps the number of its whole."""

    @property
    def cfg(self) -> Dict[str, Any]:
        return self.whole.cfg

    @cfg.setter
    def cfg(self, value: Dict[str, Any]) -> None:
        if value:  # thinc's Shim.__init__ sets {}
            raise ValueError("A ViewShim's settings are those of the shim it views.")

    def build(self, **kwargs: Any) -> torch.nn.Module:
        return self.whole.build(**kwargs)

    def to_bytes(self) -> bytes:
        return self.whole.to_bytes()

    def read(self, bytes_data: bytes) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, torch.Tensor]]]:
        """The settings to build the module with (the record's, with the
        config's own unused settings) and the record's weights, checked."""
        saved, state = super().read(bytes_data)
        if saved is None:
            return None, None
        config = dict(saved, **{key: self.whole.settings[key] for key in self.unused})
        with torch.device("meta"):  # names and shapes only: no memory, no draw from the random generator
            expected = self.module_class(**config).state_dict()
        different = weights_differences(state, expected)
        if different:
            settings = settings_differences(saved, {key: config.get(key) for key in self.unused})
            raise ValueError(
                f"The saved {self.module_class.__name__} weights do not fit this model: {different}"
                f"{f' ({settings})' if settings else ''}. "
                "Max, mean and last pooling have no weights and may differ from those of the saved model; "
                "attention pooling has weights: use it in both configs or in neither."
            )
        return config, state

    def from_bytes(self, bytes_data: bytes) -> "ViewShim":
        config, state = self.read(bytes_data)
        self.whole.cfg, self.whole._model = ({}, None) if config is None else (config, self.load_module(config, state))
        return self


class SubmoduleShim(TorchModuleShim):
    """The shim of one submodule of another TorchModuleShim's module (the
    `encoder` of an EncoderDecoder), sharing its weights: it runs and updates
    that submodule alone. It saves and loads the submodule's weights in the
    record of a module that holds it under the same attribute name, so that
    an encoder saved by a text classifier's `encoder` ref (its weights named
    `encoder.*`, beside the pooling's) loads into it; the other weights of
    such a record are left out. `compared`: the settings of the whole that
    the record must share (widths, cell, depth, ...)."""

    def __init__(self, whole: TorchModuleShim, attribute: str, compared: Tuple[str, ...]):
        self.whole = whole
        self.attribute = attribute
        self.compared = compared
        super().__init__(whole.module_class)

    @property
    def _model(self) -> Optional[torch.nn.Module]:
        whole = self.whole.module
        return None if whole is None else getattr(whole, self.attribute)

    @_model.setter
    def _model(self, module: Optional[torch.nn.Module]) -> None:
        if module is not None:  # thinc's Shim.__init__ sets None
            raise ValueError(f"A SubmoduleShim's module is the '{self.attribute}' of its whole module.")

    def build(self, **kwargs: Any) -> torch.nn.Module:
        raise ValueError(f"The '{self.attribute}' is built with the module that holds it, not on its own.")

    def own_settings(self) -> Dict[str, Any]:
        return {key: self.whole.cfg[key] for key in self.compared}

    def to_bytes(self) -> bytes:
        if self._model is None:
            return srsly.msgpack_dumps(NOT_BUILT)
        state = {f"{self.attribute}.{key}": value for key, value in self._model.state_dict().items()}
        return weights_record(self.attribute, self.own_settings(), state)

    def read(self, bytes_data: bytes) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, torch.Tensor]]]:
        """The settings and the submodule's weights of a saved record, checked
        against the whole module's settings."""
        if self._model is None:
            raise ValueError(
                f"Cannot load '{self.attribute}' weights before the model that holds them is built: initialize "
                "the pipeline first (spaCy loads [initialize] init_tok2vec after the components' initialize)."
            )
        config, state = super().read(bytes_data)
        if config is None:
            raise ValueError(f"Cannot load '{self.attribute}' weights: the saved record holds none (never built).")
        different = settings_differences(config, self.own_settings())
        if different:
            raise ValueError(
                f"The saved '{self.attribute}' weights do not fit this model: {different}. Give the model the "
                "settings of the model that saved them (for a pretrained encoder: the widths, cell, depth and "
                "direction of the pretraining config's encoder and tok2vec)."
            )
        prefix = f"{self.attribute}."
        return config, {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}

    def from_bytes(self, bytes_data: bytes) -> "SubmoduleShim":
        _config, state = self.read(bytes_data)
        try:
            self._model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"The saved '{self.attribute}' weights do not fit this model: {err}") from None
        return self
