"""The settings that several architectures share, and their checks.

Every recurrent network of spacy-rnn (`RNNEncoder.v1`, `TextCatRNN.v1`,
`TextCatRNNEnsemble.v1`, and the encoder of `Seq2Seq.v1` and `Seq2Seq.v2`)
takes these six arguments, with the same meaning in each builder:

    width (int): Width of the recurrent states. With `bidirectional`, each
        direction gets width/2 units (width must then be even) and their
        states are concatenated.
    depth (int): Number of stacked recurrent layers.
    cell (str): "rnn" (Elman), "lstm" or "gru".
    bidirectional (bool): Also read each Doc right to left.
    dropout (float): Dropout between stacked layers (needs depth > 1), in [0, 1).
    activation (str): Elman cell only: "sigmoid" (h_t = σ(W x_t + U h_{t-1} + b)),
        "tanh" or "relu".

Their defaults are depth 1, cell "lstm", bidirectional true, dropout 0.0 and
activation "sigmoid"; width is 128, except in RNNEncoder.v1, which needs it.
`check_rnn_settings` refuses a bad value with a message that names it.

The frozen-feature mode (TextCatRNN.v2, TextCatRNNEnsemble.v2, RNNTok2Vec.v1)
takes one more argument, the same in each:

    pretrained (Optional[Model]): Frozen features from a pretrained encoder,
        built by `spacy_rnn.PretrainedRNNFeatures.v1`; the recurrent network
        reads them beside the vectors of its own tok2vec. Its pretrained
        encoder is the ref "pretrained_encoder", where
        `[initialize] init_tok2vec` loads a file of `spacy pretrain`
        (`[pretraining] layer = "pretrained_encoder"`). null: none.
"""
from typing import List, Literal, Optional

from thinc.api import Model

from ..layers.frozen import FROZEN_LAYER_MIX
from ..nn.recurrent import ACTIVATIONS, CELLS, POOLINGS

CellName = Literal["rnn", "lstm", "gru"]
ActivationName = Literal["sigmoid", "tanh", "relu"]
PooledNorm = Literal["none", "layer"]
POOLED_NORMS = ("none", "layer")
PRETRAINED_ENCODER = "pretrained_encoder"  # the ref of the frozen mode's pretrained encoder, for init_tok2vec
MAX_LENGTH = 5000  # tokens per Doc (TextCatRNN) or per window (RNNEncoder): bounds the memory of a batch


def check_rnn_settings(
    where: str, cell: str, width: int, depth: int, bidirectional: bool, dropout: float, activation: str
) -> None:
    """Raise a ValueError naming the first bad setting and how to fix it."""
    if cell not in CELLS:
        raise ValueError(f"{where}: unknown cell {cell!r}. Set 'cell' to one of {', '.join(CELLS)}.")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{where}: unknown activation {activation!r}. Set 'activation' to one of {', '.join(ACTIVATIONS)}."
        )
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"{where}: 'width' must be a positive integer, got {width!r}.")
    if bidirectional and width % 2:
        raise ValueError(
            f"{where}: 'width' must be even when 'bidirectional' is true (each direction gets width/2), "
            f"got {width}."
        )
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"{where}: 'depth' must be a positive integer, got {depth!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{where}: 'dropout' must be in [0, 1), got {dropout!r}.")


def check_max_length(where: str, setting: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{where}: '{setting}' must be a number of tokens (0: no limit), got {value!r}.")


def check_pooling(where: str, pooling: List[str]) -> None:
    if not pooling:
        raise ValueError(f"{where}: 'pooling' is empty. Name at least one of {', '.join(POOLINGS)}.")
    for method in pooling:
        if method not in POOLINGS:
            raise ValueError(
                f"{where}: unknown pooling {method!r}. Each entry of 'pooling' must be one of "
                f"{', '.join(POOLINGS)}."
            )
    if len(set(pooling)) != len(pooling):
        raise ValueError(f"{where}: 'pooling' names a reduction twice: {pooling}.")


def check_pooled_norm(where: str, pooled_norm: str) -> None:
    if pooled_norm not in POOLED_NORMS:
        raise ValueError(
            f"{where}: unknown pooled_norm {pooled_norm!r}. Set 'pooled_norm' to one of {', '.join(POOLED_NORMS)}."
        )


def check_pretrained(where: str, pretrained: Optional[Model]) -> None:
    """`pretrained` must be the frozen features of PretrainedRNNFeatures.v1
    (a model that learns instead would not be frozen)."""
    if pretrained is not None and pretrained.name != FROZEN_LAYER_MIX:
        raise ValueError(
            f"{where}: 'pretrained' must be built by spacy_rnn.PretrainedRNNFeatures.v1 (the frozen features of a "
            f"pretrained encoder), not '{pretrained.name}'. For a tok2vec that learns, use the 'tok2vec' argument."
        )
