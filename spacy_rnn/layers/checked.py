"""Checked thinc models: `CheckedModel` never saves NaN or infinite weights
and checks saved weights whole before loading any of them; `CheckedChain` is
thinc's `chain` as a CheckedModel (the outer layer of spacy-rnn's models and
their `encoder` views)."""
from pathlib import Path
from typing import Any, Dict, Optional, Union

import srsly
from thinc.api import Model, Optimizer, chain
from thinc.layers.chain import forward as chain_forward
from thinc.layers.chain import init as chain_init

from .shims import TorchModuleShim
from .weights import non_finite_message

# node.attrs key: this node's weights learn at that many times the optimizer's rate (CheckedModel.finish_update)
LEARN_RATE_SCALE = "learn_rate_scale"
# node.attrs key: {submodule name: scale}, the same for the weights of those submodules of the node's torch module
SUBMODULE_LEARN_RATE_SCALES = "submodule_learn_rate_scales"
SCHEDULE_ATTRS = (LEARN_RATE_SCALE, SUBMODULE_LEARN_RATE_SCALES)  # set in training, never saved


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


def CheckedChain(*layers: Model) -> Model:
    """chain(*layers), e.g. tok2vec, pooled RNN, output layer, as a CheckedModel."""
    layers = list(layers)
    like = chain(*layers)  # for the name and dimensions that chain gives
    dims = {dim: like.maybe_get_dim(dim) for dim in like.dim_names}
    return CheckedModel(like.name, chain_forward, init=chain_init, dims=dims, layers=layers)
