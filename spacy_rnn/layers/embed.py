"""A lean token embedding for recurrent networks.

spaCy's MultiHashEmbed mixes its hashed embeddings with a Maxout layer and
LayerNorm; in front of an RNN that mixing is redundant (the RNN's input
projection W x_t is already a learned linear mix) and it costs most of the
time of a text classifier. Here the hashed embeddings of each attribute are
simply concatenated.
"""
from typing import List, Sequence, Union

from spacy.attrs import intify_attr
from spacy.ml.featureextractor import FeatureExtractor
from spacy.tokens import Doc
from thinc.api import HashEmbed, Model, chain, concatenate, list2ragged, ragged2list, with_array
from thinc.types import Floats2d


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
    model = chain(FeatureExtractor(attr_ids), list2ragged(), with_array(concatenate(*tables)), ragged2list())
    model.set_dim("nO", width)
    return model
