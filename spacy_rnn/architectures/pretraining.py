"""The objectives of `spacy pretrain` for a recurrent tok2vec: `spacy_rnn.BiLM.v1` and `.v2`."""
from pathlib import Path
from typing import Callable, List, Optional, Union

from spacy.tokens import Doc
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Model
from thinc.types import Floats2d

from ..layers.bilm import BiLM, Regularisation, read_words, recurrent_output, split_at_recurrent


@registry.architectures("spacy_rnn.BiLM.v1")
def create_bilm_objective(
    words: Optional[Union[str, Path]], max_words: int = 20000, cutoffs: List[int] = [2000, 10000]
) -> Callable[[Vocab, Model], Model]:
    """[pretraining.objective] of `spacy pretrain` for a recurrent tok2vec:
    a language model whose forward states predict the next token's NORM and
    whose backward states predict the previous one's, so that no state sees
    the token it predicts. The tok2vec's output must be the states of a
    spacy-rnn encoder: the "encoder" ref of TextCatRNN.v1 or
    TextCatRNNEnsemble.v1, or spacy.Tok2Vec.v2 with RNNEncoder.v1 as `encode`;
    bidirectional only with depth 1.

    words (str): The word list, most frequent NORM first, one a line, as
        written by `python -m spacy_rnn.lm_words`. Other words are predicted
        as one unknown class. Read by `spacy pretrain` only (null elsewhere).
    max_words (int): Use the first max_words words of the list.
    cutoffs (List[int]): Class ids where the adaptive softmax starts a
        smaller cluster (ids 0 and 1 are the boundary and unknown classes).
    """
    return bilm_objective("spacy_rnn.BiLM.v1", words, max_words, cutoffs, Regularisation())


@registry.architectures("spacy_rnn.BiLM.v2")
def create_bilm_objective_v2(
    words: Optional[Union[str, Path]],
    max_words: int = 20000,
    cutoffs: List[int] = [2000, 10000],
    activation_penalty: float = 0.0,
    temporal_penalty: float = 0.0,
    embedding_dropout: float = 0.0,
    weight_drop: float = 0.0,
) -> Callable[[Vocab, Model], Model]:
    """BiLM.v1 with AWD-LSTM's regularisers of the language model (Merity et
    al. 2018, section 4), in training only; all 0 (the defaults): BiLM.v1.

    words, max_words, cutoffs: as in BiLM.v1.
    activation_penalty (float): alpha of activation regularisation, alpha *
        mean(h**2) of the dropped-out states h, added to the loss (AWD-LSTM: 2).
    temporal_penalty (float): beta of temporal activation regularisation,
        beta * mean((h_t - h_{t-1})**2) of the states of each Doc before
        dropout, added to the loss (AWD-LSTM: 1).
    embedding_dropout (float): Probability that a word (NORM) has its input
        vectors zeroed at every token of a batch (AWD-LSTM: 0.1).
    weight_drop (float): Probability that each recurrent (hidden-to-hidden)
        weight is zeroed for a batch (AWD-LSTM: 0.5).
    """
    name = "spacy_rnn.BiLM.v2"
    for setting, value in (("activation_penalty", activation_penalty), ("temporal_penalty", temporal_penalty)):
        if value < 0:
            raise ValueError(f"{name}: '{setting}' must be 0 or more, got {value}.")
    for setting, value in (("embedding_dropout", embedding_dropout), ("weight_drop", weight_drop)):
        if not 0 <= value < 1:
            raise ValueError(f"{name}: '{setting}' is a probability from 0 up to (not including) 1, got {value}.")
    regularisation = Regularisation(activation_penalty, temporal_penalty, embedding_dropout, weight_drop)
    return bilm_objective(name, words, max_words, cutoffs, regularisation)


def bilm_objective(
    name: str, words: Optional[Union[str, Path]], max_words: int, cutoffs: List[int], regularisation: Regularisation
) -> Callable[[Vocab, Model], Model]:
    if not isinstance(max_words, int) or max_words < 1:
        raise ValueError(f"{name}: 'max_words' must be a positive integer, got {max_words!r}.")
    if not cutoffs or any(c < 1 for c in cutoffs) or list(cutoffs) != sorted(set(cutoffs)):
        raise ValueError(f"{name}: 'cutoffs' must be increasing positive integers, e.g. [2000, 10000]; got {cutoffs}.")

    def create(vocab: Vocab, tok2vec: Model[List[Doc], List[Floats2d]]) -> Model[List[Doc], Floats2d]:
        settings = recurrent_output(tok2vec)
        if settings is None:
            raise ValueError(
                f"{name} pretrains a tok2vec whose output is the states of a spacy-rnn recurrent encoder, not "
                f"'{tok2vec.name}'. Set [pretraining] layer = \"encoder\" for a textcat with TextCatRNN.v1 or "
                "TextCatRNNEnsemble.v1, or pretrain a tok2vec whose encode is spacy_rnn.RNNEncoder.v1."
            )
        if settings["bidirectional"] and settings["depth"] > 1:
            raise ValueError(
                f"{name} cannot pretrain a bidirectional encoder with depth {settings['depth']}: from the second "
                "layer on, the forward states read the backward states below them, which have seen the next token, "
                "so the next token would leak into its own prediction. Pretrain with depth = 1, or with "
                "bidirectional = false (any depth)."
            )
        if words is None:
            raise ValueError(
                f"{name}: no word list. Set [pretraining.objective] words (e.g. --paths.lm_words) to the file "
                "written by `python -m spacy_rnn.lm_words INPUT... OUTPUT`."
            )
        if regularisation.embedding_dropout:
            split_at_recurrent(tok2vec)  # raises if the recurrent layer's input cannot be reached
        return BiLM(tok2vec, read_words(words, max_words), settings["bidirectional"], cutoffs, regularisation)

    return create
