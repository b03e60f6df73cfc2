"""Token vectors: `spacy_rnn.HashEmbed.v1` (an embedding for a recurrent
network), `spacy_rnn.RNNEncoder.v1` (the `encode` slot of `spacy.Tok2Vec.v2`),
`spacy_rnn.PretrainedRNNFeatures.v1` (the frozen features of a pretrained
encoder) and `spacy_rnn.RNNTok2Vec.v1` (a whole tok2vec that reads them)."""
from typing import List, Optional, Union

from spacy.attrs import intify_attr
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ..layers.checked import CheckedChain
from ..layers.embed import ConcatHashEmbed
from ..layers.frozen import FrozenLayerMix, check_repeatable, with_frozen_features
from ..layers.rnn import EncoderStates, RNNStates
from .settings import (
    MAX_LENGTH, PRETRAINED_ENCODER, ActivationName, CellName, check_max_length, check_pretrained, check_rnn_settings,
)


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


@registry.architectures("spacy_rnn.PretrainedRNNFeatures.v1")
def build_pretrained_rnn_features(
    tok2vec: Model[List[Doc], List[Floats2d]],
    width: int,
    depth: int = 1,
    cell: CellName = "lstm",
    bidirectional: bool = True,
    activation: ActivationName = "sigmoid",
    max_length: int = MAX_LENGTH,
) -> Model[List[Doc], List[Floats2d]]:
    """Frozen features of a pretrained encoder, for the `pretrained`
    argument of TextCatRNN.v2, TextCatRNNEnsemble.v2 and RNNTok2Vec.v1, as
    ELMo uses its biLM (Peters et al. 2018): the encoder (`tok2vec` and a
    recurrent network) runs without gradient and is never updated, and each
    token gets γ Σ_j softmax(s)_j h_j over its token vector (repeated to the
    states' width, as ELMo repeats its token layer) and its states in each
    recurrent layer, with learned weights s_j (from 0: an even mix) and
    scale γ (from 1). The encoder is the ref "encoder": the format of
    TextCatRNN.v1's "encoder", so a file that `spacy pretrain` saved from a
    text classifier with the same tok2vec and network settings loads into
    it, whatever its pooling.

    tok2vec (Model): The pretrained token vectors: the tok2vec of the
        pretraining config.
    width, depth, cell, bidirectional, activation: the pretrained recurrent
        network (see `spacy_rnn.architectures.settings`); width must be a
        multiple of tok2vec's width.
    max_length (int): A longer Doc is read as consecutive windows of this many
        tokens, each from a fresh state, as the encoder was pretrained; 0: no limit.
    """
    name = "spacy_rnn.PretrainedRNNFeatures.v1"
    check_rnn_settings(name, cell, width, depth, bidirectional, 0.0, activation)
    check_max_length(name, "max_length", max_length)
    if tok2vec.has_dim("nO"):
        check_repeatable(name, tok2vec.get_dim("nO"), width)
    states = EncoderStates(
        width, max_length, nI=tok2vec.maybe_get_dim("nO"), cell=cell, depth=depth, bidirectional=bidirectional,
        activation=activation,
    )
    return FrozenLayerMix(CheckedChain(tok2vec, states), max_length)


@registry.architectures("spacy_rnn.RNNTok2Vec.v1")
def build_rnn_tok2vec(
    tok2vec: Model[List[Doc], List[Floats2d]],
    width: int,
    depth: int = 1,
    cell: CellName = "lstm",
    bidirectional: bool = True,
    dropout: float = 0.0,
    activation: ActivationName = "sigmoid",
    max_length: int = MAX_LENGTH,
    pretrained: Optional[Model[List[Doc], List[Floats2d]]] = None,
) -> Model[List[Doc], List[Floats2d]]:
    """Contextual token vectors for any component (the model of a `tok2vec`
    component, or the tok2vec of another model): RNNEncoder.v1 over the
    vectors of `tok2vec`, and with `pretrained`, over [tok2vec's vectors ;
    the frozen features]: a fresh recurrent network over a pretrained
    encoder run frozen, as ELMo is used. Refs: "tok2vec", and with
    `pretrained`, "pretrained_encoder" (for `init_tok2vec`).

    tok2vec (Model): Token vectors that learn with the network (an
        embedding such as `spacy_rnn.HashEmbed.v1`).
    width, depth, cell, bidirectional, dropout, activation: the recurrent
        network (see `spacy_rnn.architectures.settings`).
    max_length (int): As in RNNEncoder.v1.
    pretrained (Optional[Model]): see `spacy_rnn.architectures.settings`.
    """
    name = "spacy_rnn.RNNTok2Vec.v1"
    check_rnn_settings(name, cell, width, depth, bidirectional, dropout, activation)
    check_max_length(name, "max_length", max_length)
    check_pretrained(name, pretrained)
    inputs = tok2vec if pretrained is None else with_frozen_features(tok2vec, pretrained)
    rnn = RNNStates(
        width, max_length, cell=cell, depth=depth, bidirectional=bidirectional, dropout=dropout, activation=activation
    )
    model = CheckedChain(inputs, rnn)
    model.set_ref("tok2vec", tok2vec)
    if pretrained is not None:
        model.set_ref(PRETRAINED_ENCODER, pretrained.get_ref("encoder"))
    return model
