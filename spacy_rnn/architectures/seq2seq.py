"""The model of the rnn_seq2seq component: `spacy_rnn.Seq2Seq.v1` (an RNN
encoder-decoder) and `spacy_rnn.Seq2Seq.v2` (with copy attention and coverage)."""
from typing import List, Literal, Optional, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ..layers.encoder_decoder import Seq2Seq, Seq2SeqInput, Seq2SeqScores
from ..nn.encoder_decoder import ATTENDING_DECODERS, DECODERS
from .settings import ActivationName, CellName, check_max_length, check_rnn_settings

MAX_SOURCE_LENGTH = 1000  # source tokens read per Doc: bounds the memory the decoder attends to
V1_DECODERS = ("repeat", "attention")


@registry.architectures("spacy_rnn.Seq2Seq.v1")
def build_seq2seq(
    tok2vec: Model[List[Doc], List[Floats2d]],
    width: int = 128,
    depth: int = 1,
    cell: CellName = "lstm",
    bidirectional: bool = True,
    dropout: float = 0.0,
    activation: ActivationName = "sigmoid",
    decoder: Literal["repeat", "attention"] = "attention",
    target_width: int = 64,
    max_source_length: int = MAX_SOURCE_LENGTH,
    nO: Optional[int] = None,
) -> Model[Seq2SeqInput, Floats2d]:
    """An RNN encoder-decoder for the `rnn_seq2seq` component: token vectors
    from `tok2vec`, a recurrent encoder, and a one-layer recurrent decoder of
    the same cell and width.

    tok2vec (Model): Source token vectors (e.g. `spacy_rnn.HashEmbed.v1`,
        `spacy.MultiHashEmbed.v2`, or a listener).
    width, depth, cell, bidirectional, dropout, activation: the recurrent
        encoder (see `spacy_rnn.architectures.settings`). The decoder has
        the encoder's cell and activation, and a state of `width`; dropout
        also applies to its input embeddings and output states.
    decoder (str): "repeat" (the encoder's final state repeated at every step,
        next to the previous output token) or "attention" (Luong "general").
    target_width (int): Width of the target token embeddings.
    max_source_length (int): The encoder reads the first max_source_length
        tokens of each Doc, so that memory stays bounded; 0: no limit.
    nO (Optional[int]): Target vocabulary size; set by the component.
    """
    name = "spacy_rnn.Seq2Seq.v1"
    check_seq2seq_settings(
        name, V1_DECODERS, cell, width, depth, bidirectional, dropout, activation, decoder, target_width,
        max_source_length,
    )
    return Seq2Seq(
        tok2vec, width, target_width, decoder, max_source_length=max_source_length, nO=nO,
        cell=cell, depth=depth, bidirectional=bidirectional, dropout=dropout, activation=activation,
    )


@registry.architectures("spacy_rnn.Seq2Seq.v2")
def build_seq2seq_v2(
    tok2vec: Model[List[Doc], List[Floats2d]],
    width: int = 128,
    depth: int = 1,
    cell: CellName = "lstm",
    bidirectional: bool = True,
    dropout: float = 0.0,
    activation: ActivationName = "sigmoid",
    decoder: Literal["repeat", "attention", "copy"] = "copy",
    coverage: bool = False,
    target_width: int = 64,
    max_source_length: int = MAX_SOURCE_LENGTH,
    nO: Optional[int] = None,
) -> Model[Seq2SeqInput, Seq2SeqScores]:
    """Seq2Seq.v1 with copy attention and coverage (See et al. 2017). Its
    output is (scores, coverage loss of each target position), the loss zero
    without coverage; the component weighs it with its `coverage_weight`.

    decoder (str): "repeat", "attention", or "copy" (the attention decoder
        mixing generation with copying source words through the attention
        weights, by a learnt switch p_gen; needs vocab_kind "word").
    coverage (bool): Attention also reads the coverage vector (the sum of the
        past steps' attention weights), and each step has a coverage loss.
        Needs decoder "attention" or "copy".
    The other arguments are those of Seq2Seq.v1.
    """
    name = "spacy_rnn.Seq2Seq.v2"
    check_seq2seq_settings(
        name, DECODERS, cell, width, depth, bidirectional, dropout, activation, decoder, target_width,
        max_source_length,
    )
    if coverage and decoder not in ATTENDING_DECODERS:
        raise ValueError(
            f"{name}: 'coverage' needs decoder {' or '.join(map(repr, ATTENDING_DECODERS))}, got {decoder!r}. "
            "Set coverage = false or choose one of them."
        )
    return Seq2Seq(
        tok2vec, width, target_width, decoder, max_source_length=max_source_length, nO=nO, output_coverage=True,
        cell=cell, depth=depth, bidirectional=bidirectional, dropout=dropout, activation=activation,
        coverage=coverage,
    )


def check_seq2seq_settings(
    name: str,
    decoders: Tuple[str, ...],
    cell: str,
    width: int,
    depth: int,
    bidirectional: bool,
    dropout: float,
    activation: str,
    decoder: str,
    target_width: int,
    max_source_length: int,
) -> None:
    """Raise a ValueError naming the first bad architecture setting."""
    check_rnn_settings(name, cell, width, depth, bidirectional, dropout, activation)
    if decoder not in decoders:
        raise ValueError(f"{name}: unknown decoder {decoder!r}. Set 'decoder' to one of {', '.join(decoders)}.")
    if not isinstance(target_width, int) or target_width < 1:
        raise ValueError(f"{name}: 'target_width' must be a positive integer, got {target_width!r}.")
    check_max_length(name, "max_source_length", max_source_length)
