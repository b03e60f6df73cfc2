"""The torch <-> thinc boundary.

`TorchModuleShim` holds a torch module that is built from keyword arguments
once the dimensions are known (in `Model.initialize`), and that can be
rebuilt from its saved bytes alone. Weights travel as plain arrays in
msgpack: loading never unpickles anything. Weights that are not finite are
never saved, and saved weights are checked whole (readable, float arrays, the
settings of the config) before anything is loaded. A shim that was never
built saves a record saying so and loads back unbuilt, as thinc saves a layer
whose parameters are unset.
"""
import copy
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

import numpy
import srsly
import torch
from thinc.api import Model, Optimizer, get_torch_default_device, torch2xp, xp2torch
from thinc.shims import PyTorchShim, Shim

NOT_BUILT = {"config": None, "state": None}  # the saved record of a shim that was never built
# node.attrs key: this node's weights learn at that many times the optimizer's rate (CheckedModel.finish_update)
LEARN_RATE_SCALE = "learn_rate_scale"
# node.attrs key: {submodule name: scale}, the same for the weights of those submodules of the node's torch module
SUBMODULE_LEARN_RATE_SCALES = "submodule_learn_rate_scales"
SCHEDULE_ATTRS = (LEARN_RATE_SCALE, SUBMODULE_LEARN_RATE_SCALES)  # set in training, never saved

from ..nn.recurrent import concurrent_directions


def _one_thread_in_forked_child() -> None:
    """nlp.pipe(n_process=N) forks workers. One torch thread each, because
    more is not possible: a forked child cannot use the parent's GNU OpenMP
    pool, and with two threads it hangs (torch 2.13, measured). One thread per
    worker is also what N workers on N cores want; the speed-up comes from N."""
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_in_forked_child)

# The thread policy, by measurement (project/scripts/bench_speed.py,
# docs/performance.md). A recurrent step is a few small matrix products, too
# small to split well: with two or more intra-op threads every step ends in an
# OpenMP barrier that spin-waits, and when another process holds a core each
# step waits for a time slice (training ran up to 10x slower). So spacy-rnn's
# modules compute on one intra-op thread, forward and backward; where the
# caller lets torch use two or more threads, the two directions of a
# bidirectional layer run at once, one long task per thread, which never
# spin-waits either. The caller's own thread count is restored after each call.
MODULE_THREADS = 1


@contextmanager
def torch_threads(n_threads: int) -> Iterator[None]:
    """Run torch on n_threads intra-op threads inside the block, and give the
    caller back its own thread count afterwards."""
    before = torch.get_num_threads()
    if before == n_threads:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def module_threads() -> Iterator[None]:
    """The thread policy for spacy-rnn's torch modules (see above)."""
    with concurrent_directions(torch.get_num_threads() > MODULE_THREADS), torch_threads(MODULE_THREADS):
        yield


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
        the thread policy (module_threads)."""
        with module_threads():
            output, backprop = super().__call__(inputs, is_train)

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
        cuDNN's single weight buffer: torch then copies them at every call.)"""
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
                parameter.grad.zero_()

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
        if config is None:
            self.cfg, self._model = {}, None
            return self
        module = self.module_class(**config).to(get_torch_default_device())
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(
                f"The saved {self.module_class.__name__} weights do not match their saved settings {config}: {err}"
            ) from None
        self.cfg, self._model = config, module
        return self

    def read(self, bytes_data: bytes) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, torch.Tensor]]]:
        """The settings and weights of a saved record, checked: a msgpack
        map of float arrays whose settings are those of the config; (None,
        None) for the record of a shim that was never built."""
        name = self.module_class.__name__
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
        different = settings_differences(config, self.settings)
        if different:
            raise ValueError(
                f"The saved {name} weights were trained with other settings than the config: "
                f"{different}. Load the pipeline with the config.cfg saved beside its weights, or retrain."
            )
        for key, value in msg["state"].items():
            if not isinstance(value, numpy.ndarray) or value.dtype.kind != "f":
                raise ValueError(f"Cannot load {name} weights: '{key}' is not an array of floats (damaged file?).")
        return config, {key: torch.from_numpy(numpy.array(value)) for key, value in msg["state"].items()}


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


def weights_record(name: str, config: Dict[str, Any], state: Dict[str, torch.Tensor]) -> bytes:
    """The saved record of a torch module's weights: msgpack of its settings
    and its weights as arrays; weights that are not finite are refused."""
    arrays = {key: value.detach().cpu().numpy() for key, value in state.items()}
    not_finite = [key for key, value in arrays.items() if not numpy.isfinite(value).all()]
    if not_finite:
        raise ValueError(non_finite_message(f"the {name} weights {', '.join(not_finite)}"))
    return srsly.msgpack_dumps({"config": config, "state": arrays})


def settings_differences(saved: Dict[str, Any], expected: Dict[str, Any]) -> str:
    """The settings whose saved value is not the expected one, as
    "key = saved in the weights, expected in the config; ..." ("" if none)."""
    return "; ".join(
        f"{key} = {saved.get(key)!r} in the weights, {value!r} in the config"
        for key, value in expected.items()
        if saved.get(key) != value
    )


def non_finite_message(what: str) -> str:
    return (
        f"NaN or infinite values in {what}: training has diverged, and a model with them is not saved. Lower the "
        "learning rate, clip gradients ([training.optimizer] grad_clip = 1.0, the default of spacy-rnn's configs), "
        "and restart from the last good checkpoint."
    )


class CheckedModel(Model):
    """A thinc Model that never saves NaN or infinite weights and that checks
    saved weights whole before loading any of them: unreadable bytes, another
    structure, other widths or settings give an error that says so, and leave
    the model as it was."""

    __slots__ = ()

    def set_ref(self, name: str, value: Optional[Model]) -> None:
        """thinc's set_ref, and also a ref to a model outside the tree: a view
        that shares the tree's nodes and weights (the text classifiers'
        'encoder'). Such a ref is not saved, loading leaves it in place, and
        when an in-tree ref is replaced (spaCy's replace_listeners) the views
        take the replacement too."""
        if value is not None and value not in self.walk():
            self._refs[name] = value
            return
        old = self.maybe_get_ref(name)
        super().set_ref(name, value)
        if old is not None and value is not None:
            for view in self.views().values():
                view.replace_node(old, value)

    def finish_update(self, optimizer: Optimizer) -> None:
        """thinc's finish_update, where a node with `attrs["learn_rate_scale"]`
        (set by `spacy_rnn.pretrained_encoder_schedule`) learns at that many
        times the optimizer's learning rate (0: not at all), shims included,
        and the submodules named in `attrs["submodule_learn_rate_scales"]` of
        a node's torch module learn at their own scale."""
        for node in self.walk():
            scale = node.attrs.get(LEARN_RATE_SCALE, 1.0)
            scaled = {} if scale == 1.0 else {"lr_scale": scale}
            submodules = node.attrs.get(SUBMODULE_LEARN_RATE_SCALES)
            for shim in node.shims:
                if submodules:
                    shim.finish_update(optimizer, submodule_scales=submodules, **scaled)
                else:
                    shim.finish_update(optimizer, **scaled)
            for name in node.param_names:
                if node.has_grad(name):
                    param, _ = optimizer((node.id, name), node.get_param(name), node.get_grad(name), **scaled)
                    node.set_param(name, param)

    def views(self) -> Dict[str, Model]:
        """The refs to models outside the tree."""
        in_tree = {node.id for node in self.walk()}
        return {name: ref for name, ref in self._refs.items() if ref is not None and ref.id not in in_tree}

    def to_dict(self) -> Dict:
        """thinc's to_dict without the views (thinc can save a ref only as its
        place in the tree): the saved format is that of the model without
        them."""
        views = self.views()
        for name in views:
            del self._refs[name]
        schedule = [(node, key, node.attrs.pop(key)) for node in self.walk() for key in SCHEDULE_ATTRS
                    if key in node.attrs]
        try:
            return super().to_dict()
        finally:
            self._refs.update(views)
            for node, key, value in schedule:
                node.attrs[key] = value

    def to_bytes(self) -> bytes:
        for node in self.walk():
            for param in node.param_names:
                if node.has_param(param) and not node.ops.xp.isfinite(node.get_param(param)).all():
                    raise ValueError(non_finite_message(f"the parameter '{param}' of the layer '{node.name}'"))
        return super().to_bytes()

    def to_disk(self, path: Union[str, Path]) -> None:
        data = self.to_bytes()  # before the file is opened: a model that cannot be saved leaves no file
        Path(path).write_bytes(data)

    def from_bytes(self, bytes_data: bytes) -> "CheckedModel":
        try:
            msg = srsly.msgpack_loads(bytes_data)
        except Exception as err:  # msgpack raises several types for damaged data
            raise ValueError(
                "Cannot load the weights of a spacy-rnn model (the file 'model' in the component's folder of a saved "
                f"pipeline): the data is truncated or is not a saved model ({type(err).__name__}: {err}). Save or "
                "download the pipeline again."
            ) from None
        self.check_weights(msg)
        return super().from_bytes(bytes_data)

    def check_weights(self, msg: Any) -> None:
        """Raise a ValueError if `msg` (a decoded model) cannot be loaded."""
        nodes = list(self.walk())
        if not (isinstance(msg, dict) and {"nodes", "attrs", "params", "shims"} <= set(msg)):
            raise ValueError("Cannot load the weights of a spacy-rnn model: the data is not a saved model.")
        if len(msg["nodes"]) != len(nodes):
            raise ValueError(
                f"Cannot load the weights of a spacy-rnn model: they hold {len(msg['nodes'])} layers, the "
                f"config builds {len(nodes)}. Load the pipeline with the config.cfg saved beside its weights."
            )
        for node, info, shims in zip(nodes, msg["nodes"], msg["shims"]):
            for dim, saved in info["dims"].items():
                if saved is not None and node.has_dim(dim) and node.get_dim(dim) != saved:
                    raise ValueError(
                        f"The saved weights do not fit the config: '{dim}' of the layer '{node.name}' is {saved} in "
                        f"the weights, {node.get_dim(dim)} in the config. Load the pipeline with the config.cfg saved "
                        "beside its weights, or retrain."
                    )
            for shim, shim_bytes in zip(node.shims, shims):
                if isinstance(shim, TorchModuleShim):
                    shim.read(shim_bytes)
