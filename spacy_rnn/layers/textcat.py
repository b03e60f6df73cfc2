"""The text classifier: tok2vec >> pooled RNN >> output layer, as thinc's
`chain` (the same layers, forward pass and saved structure) with checked
saving and loading (`CheckedModel`)."""
from typing import List

from spacy.tokens import Doc
from thinc.api import Model, chain
from thinc.layers.chain import forward as chain_forward
from thinc.layers.chain import init as chain_init
from thinc.types import Floats2d

from .torch_bridge import CheckedModel


def TextCatChain(
    tok2vec: Model[List[Doc], List[Floats2d]], rnn: Model[List[Floats2d], Floats2d], output_layer: Model
) -> Model[List[Doc], Floats2d]:
    layers = [tok2vec, rnn, output_layer]
    like = chain(*layers)  # for the name and dimensions that chain gives
    dims = {dim: like.maybe_get_dim(dim) for dim in like.dim_names}
    return CheckedModel(like.name, chain_forward, init=chain_init, dims=dims, layers=layers)
