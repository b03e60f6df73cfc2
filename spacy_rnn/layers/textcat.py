"""The text classifier: tok2vec >> pooled RNN >> output layer.

The same layers and saved structure as thinc's `chain`, with two
differences: saving and loading are checked (`CheckedModel`), and a Doc
without tokens gets all-zero scores in any batch, as spaCy's textcat gives
them when every Doc of a batch is empty (without this, such a Doc would get
the scores of a zero vector inside a batch and zeros alone).
"""
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
    like = chain(*layers)  # for the name and dimensions chain would give
    dims = {dim: like.maybe_get_dim(dim) for dim in like.dim_names}
    return CheckedModel(like.name, _forward, init=chain_init, dims=dims, layers=layers)


def _forward(model: Model[List[Doc], Floats2d], docs: List[Doc], is_train: bool):
    scores, backprop = chain_forward(model, docs, is_train)
    empty = [i for i, doc in enumerate(docs) if not len(doc)]
    if not empty:
        return scores, backprop
    scores[empty] = 0.0

    def backprop_nonempty(d_scores: Floats2d) -> List[Doc]:
        d_scores = d_scores.copy()
        d_scores[empty] = 0.0
        return backprop(d_scores)

    return scores, backprop_nonempty
