"""The text classifiers: `spacy_rnn.TextCatRNN.v1` and `.v2`,
`spacy_rnn.TextCatRNNEnsemble.v1` and `.v2`, and the ensemble's linear model
`spacy_rnn.NgramLinear.v1`."""
from typing import List, Literal, Optional, Tuple, Union

from spacy.attrs import intify_attr
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, LayerNorm, Linear, Logistic, Model, Softmax_v2, add, chain
from thinc.layers import softmax_activation
from thinc.types import Floats2d

from ..layers.checked import CheckedChain
from ..layers.frozen import with_frozen_features
from ..layers.ngrams import WEIGHTINGS, NgramLinear
from ..layers.rnn import PooledRNN, RNNStatesView
from .settings import (
    MAX_LENGTH, PRETRAINED_ENCODER, ActivationName, CellName, PooledNorm, check_max_length, check_pooled_norm,
    check_pooling, check_pretrained, check_rnn_settings,
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
    width, depth, cell, bidirectional, dropout, activation: the recurrent
        network (see `spacy_rnn.architectures.settings`).
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
    output_layer = rnn_output_layer(exclusive_classes, nO, rnn.get_dim("nO"))
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


@registry.architectures("spacy_rnn.TextCatRNN.v2")
def build_textcat_rnn_v2(
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
    pooled_norm: PooledNorm = "none",
    pretrained: Optional[Model[List[Doc], List[Floats2d]]] = None,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """TextCatRNN.v1 with two more settings; with pooled_norm "none" and no
    `pretrained`, v1's model (v1's saved weights load into it). Refs as in
    v1, and "pretrained_encoder" with `pretrained`.

    pooled_norm (str): "none", or "layer": a LayerNorm (a learned gain and
        bias per unit) over the pooled vector before the output layer, which
        then reads it at one scale whatever the length of the Doc and
        however saturated the states are.
    pretrained (Optional[Model]): see `spacy_rnn.architectures.settings`.
    The other settings are those of `spacy_rnn.TextCatRNN.v1`.
    """
    inputs, rnn, norm = checked_pooled_rnn_v2(
        "spacy_rnn.TextCatRNN.v2", tok2vec, pretrained, pooled_norm, width, depth, cell, bidirectional, dropout,
        activation, pooling, max_length,
    )
    output_layer = rnn_output_layer(exclusive_classes, nO, rnn.get_dim("nO"))
    model = CheckedChain(inputs, rnn, *norm, output_layer)
    set_rnn_refs(model, tok2vec, inputs, rnn, pretrained, max_length)
    model.set_ref("output_layer", output_layer)
    model.attrs["multi_label"] = not exclusive_classes
    return model


@registry.architectures("spacy_rnn.TextCatRNNEnsemble.v2")
def build_textcat_rnn_ensemble_v2(
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
    pooled_norm: PooledNorm = "none",
    pretrained: Optional[Model[List[Doc], List[Floats2d]]] = None,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """TextCatRNNEnsemble.v1 with the two settings of TextCatRNN.v2
    (`pooled_norm` acts before the dropout of the pooled vector); with
    pooled_norm "none" and no `pretrained`, v1's model."""
    name = "spacy_rnn.TextCatRNNEnsemble.v2"
    check_linear_model(name, linear_model, exclusive_classes)
    inputs, rnn, norm = checked_pooled_rnn_v2(
        name, tok2vec, pretrained, pooled_norm, width, depth, cell, bidirectional, dropout, activation, pooling,
        max_length,
    )
    rnn_scores = chain(inputs, rnn, *norm, Dropout(0.0), Linear(nO=nO, nI=rnn.get_dim("nO")))
    output_layer = softmax_activation() if exclusive_classes else Logistic()
    model = CheckedChain(add(rnn_scores, linear_model), output_layer)
    set_rnn_refs(model, tok2vec, inputs, rnn, pretrained, max_length)
    model.set_ref("linear_model", linear_model)
    model.set_ref("output_layer", output_layer)
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


def checked_pooled_rnn_v2(
    where: str, tok2vec: Model, pretrained: Optional[Model], pooled_norm: str, width: int, depth: int, cell: str,
    bidirectional: bool, dropout: float, activation: str, pooling: List[str], max_length: int,
) -> Tuple[Model[List[Doc], List[Floats2d]], Model[List[Floats2d], Floats2d], List[Model[Floats2d, Floats2d]]]:
    """The v2 classifiers' input (tok2vec, or tok2vec and the frozen
    features), the PooledRNN over it, and the normalisation of the pooled
    vector (no layer for "none"), after checking their settings."""
    check_pooled_norm(where, pooled_norm)
    check_pretrained(where, pretrained)
    inputs = tok2vec if pretrained is None else with_frozen_features(tok2vec, pretrained)
    rnn = checked_pooled_rnn(where, inputs, width, depth, cell, bidirectional, dropout, activation, pooling, max_length)
    return inputs, rnn, [LayerNorm(nI=rnn.get_dim("nO"))] if pooled_norm == "layer" else []


def set_rnn_refs(
    model: Model, tok2vec: Model, inputs: Model, rnn: Model, pretrained: Optional[Model], max_length: int
) -> None:
    """The refs of a v2 classifier's recurrent part: "tok2vec", "rnn", "encoder"
    (its input and the RNN's states, as in v1) and, in the frozen-feature
    mode, "pretrained_encoder"."""
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("rnn", rnn)
    model.set_ref("encoder", CheckedChain(inputs, RNNStatesView(rnn, max_length)))
    if pretrained is not None:
        model.set_ref(PRETRAINED_ENCODER, pretrained.get_ref("encoder"))


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


def rnn_output_layer(exclusive_classes: bool, nO: Optional[int], nI: int) -> Model[Floats2d, Floats2d]:
    """TextCatRNN's output layer over the pooled vector: a softmax for
    exclusive classes, a linear layer and logistic otherwise."""
    if exclusive_classes:
        return Softmax_v2(nO=nO, nI=nI)
    return chain(Linear(nO=nO, nI=nI), Logistic())
