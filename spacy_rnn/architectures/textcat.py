"""Registered architectures: the public config surface of spacy-rnn.

Each builder checks its settings, then assembles thinc layers from
`spacy_rnn.layers`. Names follow spaCy's `spacy_rnn.<Thing>.v<N>`; a
released version never changes: new behaviour gets a new version.
"""
from pathlib import Path
from typing import Callable, List, Literal, Optional, Union

from spacy.attrs import intify_attr
from spacy.tokens import Doc
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Dropout, Linear, Logistic, Model, Softmax_v2, add, chain
from thinc.layers import softmax_activation
from thinc.types import Floats2d

from .layers.embed import ConcatHashEmbed
from .layers.bilm import BiLM, read_words, recurrent_output
from .layers.ngrams import WEIGHTINGS, NgramLinear
from .layers.rnn import PooledRNN, RNNStates, RNNStatesView
from .layers.checked import CheckedChain
from .nn.recurrent import ACTIVATIONS, CELLS, POOLINGS

CellName = Literal["rnn", "lstm", "gru"]
ActivationName = Literal["sigmoid", "tanh", "relu"]
MAX_LENGTH = 5000  # tokens per Doc (TextCatRNN) or per window (RNNEncoder): bounds the memory of a batch


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

    width (int): Output width per token. With `bidirectional`, each direction
        gets width/2 units and their states are concatenated.
    depth (int): Number of stacked recurrent layers.
    cell (str): "rnn" (Elman), "lstm" or "gru".
    bidirectional (bool): Also read each Doc right to left.
    dropout (float): Dropout between stacked layers (needs depth > 1).
    activation (str): Elman cell only: "sigmoid" (h_t = σ(W x_t + U h_{t-1} + b)),
        "tanh" or "relu".
    max_length (int): A longer Doc is read as consecutive windows of this many
        tokens, each from a fresh state, so that memory stays bounded; 0: no limit.
    """
    name = "spacy_rnn.RNNEncoder.v1"
    check_rnn_settings(name, cell, width, depth, bidirectional, dropout, activation)
    check_max_length(name, "max_length", max_length)
    return RNNStates(
        width, max_length, cell=cell, depth=depth, bidirectional=bidirectional, dropout=dropout, activation=activation
    )


@registry.architectures("spacy_rnn.TextCatRNN.v1")
def build_textcat_rnn(
    tok2vec: Model[List[Doc], List[Floats2d]],
    exclusive_classes: bool,
    width: int = 128,
    depth: int = 1,
    cell: CellName = "lstm",
    bidirectional: bool = True,
    dropout: float = 0.0,
    activation: ActivationName = "sigmoid",
    pooling: List[str] = ["max", "last"],
    max_length: int = MAX_LENGTH,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """Text classifier for spaCy's `textcat` and `textcat_multilabel`: token
    vectors from `tok2vec`, a recurrent network, a pooling of its states, and
    a softmax (exclusive classes) or logistic (multi-label) output layer.
    Its ref "encoder" maps Docs to the recurrent states of every token, with
    the classifier's own weights: the layer that `spacy pretrain` trains.

    tok2vec (Model): Token vectors fed to the recurrent network (an embedding
        such as `spacy.MultiHashEmbed.v2`, a full tok2vec, or a listener).
    exclusive_classes (bool): One class per Doc (softmax) or any number (logistic).
    width (int): Width of the recurrent states (split in two when bidirectional).
    depth (int): Number of stacked recurrent layers.
    cell (str): "rnn" (Elman), "lstm" or "gru".
    bidirectional (bool): Also read each Doc right to left.
    dropout (float): Dropout between stacked layers (needs depth > 1).
    activation (str): Elman cell only: "sigmoid", "tanh" or "relu".
    pooling (List[str]): Reductions of the states, concatenated in this order:
        "last" (the final state; both directions' when bidirectional), "mean",
        "max", "attention".
    max_length (int): The network reads the first max_length tokens of each
        Doc, so that memory stays bounded; 0: no limit.
    nO (Optional[int]): Number of labels; inferred from the data if unset.
    """
    rnn = checked_pooled_rnn(
        "spacy_rnn.TextCatRNN.v1", tok2vec, width, depth, cell, bidirectional, dropout, activation, pooling,
        max_length,
    )
    if exclusive_classes:
        output_layer = Softmax_v2(nO=nO, nI=rnn.get_dim("nO"))
    else:
        output_layer = chain(Linear(nO=nO, nI=rnn.get_dim("nO")), Logistic())
    model = CheckedChain(tok2vec, rnn, output_layer)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("rnn", rnn)
    model.set_ref("output_layer", output_layer)
    model.set_ref("encoder", CheckedChain(tok2vec, RNNStatesView(rnn, max_length)))
    model.attrs["multi_label"] = not exclusive_classes
    return model


@registry.architectures("spacy_rnn.TextCatRNNEnsemble.v1")
def build_textcat_rnn_ensemble(
    tok2vec: Model[List[Doc], List[Floats2d]],
    linear_model: Model[List[Doc], Floats2d],
    exclusive_classes: bool,
    width: int = 128,
    depth: int = 1,
    cell: CellName = "lstm",
    bidirectional: bool = True,
    dropout: float = 0.0,
    activation: ActivationName = "sigmoid",
    pooling: List[str] = ["max", "last"],
    max_length: int = MAX_LENGTH,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """TextCatRNN's class scores plus those of a linear bag-of-n-grams model,
    added before one softmax (exclusive classes) or logistic (multi-label):
    the linear model weighs words and short phrases, the RNN reads their order
    and context, and both are trained together. The pooled RNN vector gets
    dropout at the rate of [training] dropout. The ref "encoder" is that of
    TextCatRNN.v1.

    linear_model (Model): Scores per class before any output activation, e.g.
        `spacy.TextCatBOW.v3` with `no_output_layer = true` and the same
        `exclusive_classes`.
    The other settings are those of `spacy_rnn.TextCatRNN.v1`.
    """
    name = "spacy_rnn.TextCatRNNEnsemble.v1"
    check_linear_model(name, linear_model, exclusive_classes)
    rnn = checked_pooled_rnn(
        name, tok2vec, width, depth, cell, bidirectional, dropout, activation, pooling, max_length
    )
    rnn_scores = chain(tok2vec, rnn, Dropout(0.0), Linear(nO=nO, nI=rnn.get_dim("nO")))
    output_layer = softmax_activation() if exclusive_classes else Logistic()
    model = CheckedChain(add(rnn_scores, linear_model), output_layer)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("rnn", rnn)
    model.set_ref("linear_model", linear_model)
    model.set_ref("output_layer", output_layer)
    model.set_ref("encoder", CheckedChain(tok2vec, RNNStatesView(rnn, max_length)))
    model.attrs["multi_label"] = not exclusive_classes
    return model


@registry.architectures("spacy_rnn.NgramLinear.v1")
def build_ngram_linear(
    exclusive_classes: bool,
    ngram_size: int = 2,
    length: int = 262144,
    attr: Union[str, int] = "NORM",
    weighting: Literal["count", "l2", "log_l2"] = "log_l2",
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """Class scores (no output activation) of a linear model over the hashed
    n-grams (1 … ngram_size) of a lexical attribute, for the `linear_model`
    of `spacy_rnn.TextCatRNNEnsemble.v1`.

    weighting: "count" weighs an n-gram by its count in the Doc, as
        `spacy.TextCatBOW.v3` does; "l2" by count / the Doc's L2 norm;
        "log_l2" by (1 + log count) / the Doc's L2 norm, TF-IDF's sublinear
        term frequency without the IDF: a long Doc scores no higher than a
        short one.
    length: rows of the hashed weight table (rounded up to a power of 2).
    """
    name = "spacy_rnn.NgramLinear.v1"
    if ngram_size < 1:
        raise ValueError(f"{name}: ngram_size must be 1 or more, not {ngram_size}.")
    if length < 1:
        raise ValueError(f"{name}: length (rows of the weight table) must be 1 or more, not {length}.")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"{name}: weighting must be one of {', '.join(WEIGHTINGS)}, not {weighting!r}.")
    attr_id = intify_attr(attr) if isinstance(attr, str) else attr
    if attr_id is None:
        raise ValueError(f"{name}: unknown attr {attr!r}; use a lexical attribute such as NORM, LOWER or ORTH.")
    model = NgramLinear(nO, ngram_size, 2 ** (length - 1).bit_length(), attr_id, weighting)
    model.attrs["multi_label"] = not exclusive_classes
    return model


def checked_pooled_rnn(
    where: str, tok2vec: Model, width: int, depth: int, cell: str, bidirectional: bool, dropout: float,
    activation: str, pooling: List[str], max_length: int,
) -> Model[List[Floats2d], Floats2d]:
    """PooledRNN over the output of tok2vec (whose width, when known, is its
    input width), after checking its settings."""
    check_rnn_settings(where, cell, width, depth, bidirectional, dropout, activation)
    check_pooling(where, pooling)
    check_max_length(where, "max_length", max_length)
    return PooledRNN(
        width, pooling, max_length, nI=tok2vec.maybe_get_dim("nO"),
        cell=cell, depth=depth, bidirectional=bidirectional, dropout=dropout, activation=activation,
    )


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


OUTPUT_ACTIVATIONS = ("softmax", "softmax_activation", "logistic")


def check_linear_model(where: str, linear_model: Model, exclusive_classes: bool) -> None:
    """The linear model must give raw scores, for the same kind of classes."""
    activations = [node.name for node in linear_model.walk() if node.name in OUTPUT_ACTIVATIONS]
    if activations:
        raise ValueError(
            f"{where}: 'linear_model' ends in an output activation ({activations[0]}); its scores are added to the "
            "RNN's before the ensemble's own activation. Build it without one, e.g. spacy.TextCatBOW.v3 with "
            "no_output_layer = true."
        )
    if linear_model.attrs.get("multi_label", not exclusive_classes) == exclusive_classes:
        raise ValueError(
            f"{where}: 'linear_model' and the ensemble disagree on exclusive_classes. Set the same value in both."
        )
