from .rnn import PooledRNN, RNNStates, RNNStatesView  # noqa: F401
from .torch_bridge import TorchModuleShim  # noqa: F401
