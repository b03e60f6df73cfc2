"""thinc's `chain` of the given layers (the same forward pass and saved
structure) with checked saving and loading (`CheckedModel`): the text
classifiers' outer layer and their `encoder` ref."""
from thinc.api import Model, chain
from thinc.layers.chain import forward as chain_forward
from thinc.layers.chain import init as chain_init

from .torch_bridge import CheckedModel


def CheckedChain(*layers: Model) -> Model:
    """chain(*layers), e.g. tok2vec, pooled RNN, output layer, as a CheckedModel."""
    layers = list(layers)
    like = chain(*layers)  # for the name and dimensions that chain gives
    dims = {dim: like.maybe_get_dim(dim) for dim in like.dim_names}
    return CheckedModel(like.name, chain_forward, init=chain_init, dims=dims, layers=layers)
