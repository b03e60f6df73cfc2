"""Token vectors: `spacy_rnn.HashEmbed.v1` (an embedding for a recurrent
network) and `spacy_rnn.RNNEncoder.v1` (the `encode` slot of `spacy.Tok2Vec.v2`)."""
from typing import List, Union

from spacy.attrs import intify_attr
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ..layers.embed import ConcatHashEmbed
from ..layers.rnn import RNNStates
from .settings import MAX_LENGTH, ActivationName, CellName, check_max_length, check_rnn_settings


@registry.architectures("spacy_rnn.HashEmbed.v1")
def build_hash_embed(
    width: int, attrs: List[Union[str, int]], rows: List[int]
) -> Model[List[Doc], List[Floats2d]]:
    """Token vectors for a recurrent network: one hashed embedding table per
    lexical attribute, concatenated (no mixing layer: the RNN's input
    projection mixes them). About ten times faster than
    `spacy.MultiHashEmbed.v2`, whose Maxout + LayerNorm mixing dominates the
    cost of an RNN text classifier.

    width (int): Output width; each attribute gets width / len(attrs) columns.
    attrs (List[str]): Lexical attributes to embed, e.g. ["NORM", "PREFIX", "SUFFIX", "SHAPE"].
    rows (List[int]): Number of rows of each attribute's hash table.
    """
    name = "spacy_rnn.HashEmbed.v1"
    if not attrs:
        raise ValueError(f"{name}: 'attrs' is empty. Name at least one attribute, e.g. [\"NORM\"].")
    if len(rows) != len(attrs):
        raise ValueError(f"{name}: 'rows' needs one number per attribute: {len(attrs)} attrs, {len(rows)} rows.")
    for attr in attrs:
        if isinstance(attr, str) and intify_attr(attr) is None:
            raise ValueError(
                f"{name}: unknown attribute {attr!r} in 'attrs' (use e.g. NORM, LOWER, PREFIX, SUFFIX, SHAPE)."
            )
    if any(n < 1 for n in rows):
        raise ValueError(f"{name}: every entry of 'rows' must be positive, got {rows}.")
    if width < len(attrs) or width % len(attrs):
        raise ValueError(
            f"{name}: 'width' ({width}) must be a positive multiple of the number of attrs ({len(attrs)})."
        )
    return ConcatHashEmbed(width, attrs, rows)


@registry.architectures("spacy_rnn.RNNEncoder.v1")
def build_rnn_encoder(
    width: int,
    depth: int = 1,
    cell: CellName = "lstm",
    bidirectional: bool = True,
    dropout: float = 0.0,
    activation: ActivationName = "sigmoid",
    max_length: int = MAX_LENGTH,
) -> Model[List[Floats2d], List[Floats2d]]:
    """Contextual token vectors from a recurrent network, for the `encode`
    slot of `spacy.Tok2Vec.v2`. Returns every state (h_1 … h_T) of the last layer.

    width, depth, cell, bidirectional, dropout, activation: the recurrent
        network (see `spacy_rnn.architectures.settings`); width is the
        output width per token.
    max_length (int): A longer Doc is read as consecutive windows of this many
        tokens, each from a fresh state, so that memory stays bounded; 0: no limit.
    """
    name = "spacy_rnn.RNNEncoder.v1"
    check_rnn_settings(name, cell, width, depth, bidirectional, dropout, activation)
    check_max_length(name, "max_length", max_length)
    return RNNStates(
        width, max_length, cell=cell, depth=depth, bidirectional=bidirectional, dropout=dropout, activation=activation
    )
