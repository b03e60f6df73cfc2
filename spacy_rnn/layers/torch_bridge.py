"""The torch <-> thinc boundary.

`TorchModuleShim` holds a torch module that is built from keyword arguments
once the dimensions are known (in `Model.initialize`), and that can be
rebuilt from its saved bytes alone. Weights travel as plain arrays in
msgpack: loading never unpickles anything.
"""
from typing import Any, Callable, Optional

import os

import numpy
import srsly
import torch
from thinc.api import get_torch_default_device
from thinc.shims import PyTorchShim



def _one_thread_in_forked_child() -> None:
    """nlp.pipe(n_process=N) forks workers. One torch thread each, because
    more is not possible: a forked child cannot use the parent's GNU OpenMP
    pool, and with two threads it hangs (torch 2.13, measured). One thread per
    worker is also what N workers on N cores want; the speed-up comes from N."""
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_in_forked_child)


class TorchModuleShim(PyTorchShim):
    """A PyTorchShim whose module is created later, by `build(**kwargs)`."""

    def __init__(self, module_class: Callable[..., torch.nn.Module]):
        super().__init__(None)
        self.module_class = module_class

    @property
    def module(self) -> Optional[torch.nn.Module]:
        return self._model

    def build(self, **kwargs: Any) -> torch.nn.Module:
        self.cfg = dict(kwargs)
        self._model = self.module_class(**kwargs).to(get_torch_default_device())
        return self._model

    def to_bytes(self) -> bytes:
        if self._model is None:
            raise ValueError(
                f"Cannot serialize the {self.module_class.__name__} of an uninitialized "
                "model: call nlp.initialize() (or model.initialize()) first."
            )
        state = {k: v.detach().cpu().numpy() for k, v in self._model.state_dict().items()}
        return srsly.msgpack_dumps({"config": self.cfg, "state": state})

    def from_bytes(self, bytes_data: bytes) -> "TorchModuleShim":
        msg = srsly.msgpack_loads(bytes_data)
        if not isinstance(msg, dict) or set(msg) != {"config", "state"}:
            raise ValueError(
                f"Cannot load {self.module_class.__name__} weights: the data is not a "
                "spacy-rnn weights record (expected msgpack with 'config' and 'state')."
            )
        module = self.build(**msg["config"])
        state = {name: torch.from_numpy(numpy.array(value)) for name, value in msg["state"].items()}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(
                f"The saved {self.module_class.__name__} weights do not match its saved "
                f"settings {msg['config']}: {err}"
            ) from None
        return self
