"""The objective of `spacy pretrain` for a recurrent tok2vec: `spacy_rnn.BiLM.v1`."""
from pathlib import Path
from typing import Callable, List, Optional, Union

from spacy.tokens import Doc
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Model
from thinc.types import Floats2d

from ..layers.bilm import BiLM, read_words, recurrent_output


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
    name = "spacy_rnn.BiLM.v1"
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
        return BiLM(tok2vec, read_words(words, max_words), settings["bidirectional"], cutoffs)

    return create
