"""A lean token embedding for recurrent networks.

spaCy's MultiHashEmbed mixes its hashed embeddings with a Maxout layer and
LayerNorm; in front of an RNN that mixing is redundant (the RNN's input
projection W x_t is already a learned linear mix) and it costs most of the
time of a text classifier. Here the hashed embeddings of each attribute are
simply concatenated.
"""
from typing import Callable, List, Sequence, Tuple, Union

from spacy.attrs import intify_attr
from spacy.ml.featureextractor import FeatureExtractor
from spacy.tokens import Doc
from thinc.api import HashEmbed, Model, chain, concatenate, list2ragged, ragged2list
from thinc.layers.with_array import forward as with_array_forward
from thinc.layers.with_array import init as with_array_init
from thinc.types import Floats2d, Ragged


def ConcatHashEmbed(
    width: int, attrs: Sequence[Union[str, int]], rows: Sequence[int]
) -> Model[List[Doc], List[Floats2d]]:
    """One hashed embedding table per attribute, each `width // len(attrs)`
    wide, concatenated into `width` columns per token."""
    attr_ids = [intify_attr(attr) if isinstance(attr, str) else attr for attr in attrs]
    part = width // len(attr_ids)
    tables = [
        HashEmbed(part, n_rows, column=i, seed=7 + i, dropout=0.0) for i, n_rows in enumerate(rows)
    ]
    model = chain(FeatureExtractor(attr_ids), list2ragged(), tables_over_tokens(concatenate(*tables)), ragged2list())
    model.set_dim("nO", width)
    return model


def tables_over_tokens(tables: Model) -> Model[Ragged, Ragged]:
    """thinc's `with_array(tables)` for a Ragged batch of token features, that
    also backpropagates a batch without tokens (thinc's HashEmbed cannot).
    The node takes with_array's place, so saved weights load unchanged."""
    return Model("with_array", _tables_forward, init=with_array_init, layers=[tables], dims={"nO": None})


def _tables_forward(model: Model, features: Ragged, is_train: bool) -> Tuple[Ragged, Callable]:
    if features.dataXd.shape[0]:
        return with_array_forward(model, features, is_train)
    vectors = Ragged(model.ops.alloc2f(0, model.get_dim("nO")), features.lengths)

    def backprop(d_vectors: Ragged) -> Ragged:
        return Ragged(model.ops.alloc(features.dataXd.shape, dtype=features.dataXd.dtype), features.lengths)

    return vectors, backprop
