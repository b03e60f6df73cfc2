"""Frozen features from a pretrained encoder, used the way ELMo uses its
biLM (Peters et al. 2018, section 3.2, equation 1): the encoder runs in
inference mode, without gradient, and is never updated; its token layer and
the states of each of its recurrent layers are mixed per token as
γ Σ_j softmax(s)_j h_j, with one learned weight s_j per layer (from 0, an
even mix) and a learned scale γ (from 1). The token vectors are repeated to
the width of the states, as ELMo repeats its token layer for its two
directions."""
from functools import partial
from typing import Callable, List, Optional, Tuple

from spacy.tokens import Doc
from thinc.api import Model, concatenate
from thinc.types import Floats2d, Floats3d

from .rnn import every_layer_states

FROZEN_LAYER_MIX = "frozen_layer_mix"  # the name of the layer FrozenLayerMix builds


def FrozenLayerMix(encoder: Model[List[Doc], List[Floats2d]], max_length: int = 0) -> Model[List[Doc], List[Floats2d]]:
    """The mixed layers of `encoder`, a chain of a tok2vec and an
    EncoderStates (the layer a pretrained encoder file loads into, the ref
    "encoder"), read in windows of max_length tokens (0: whole Docs); one
    array per Doc, as wide as the states."""
    _tok2vec, states = encoder.layers
    model = Model(
        FROZEN_LAYER_MIX,
        partial(_forward, max_length=max_length),
        init=_init,
        layers=[encoder],
        dims={"nO": states.get_dim("nO")},
        params={"layer_weights": None, "gamma": None},
        attrs={"n_layers": 1 + states.attrs["module_kwargs"]["depth"]},
    )
    model.set_ref("encoder", encoder)
    return model


def with_frozen_features(
    tok2vec: Model[List[Doc], List[Floats2d]], features: Model[List[Doc], List[Floats2d]]
) -> Model[List[Doc], List[Floats2d]]:
    """[tok2vec's vectors ; the frozen features] per token."""
    model = concatenate(tok2vec, features)
    if tok2vec.has_dim("nO") and features.has_dim("nO"):
        model.set_dim("nO", tok2vec.get_dim("nO") + features.get_dim("nO"))
    return model


def check_repeatable(where: str, token_width: int, width: int) -> None:
    """The token vectors must repeat a whole number of times to the width of the states."""
    if width % token_width:
        raise ValueError(
            f"{where}: the token vectors (width {token_width}) cannot be mixed with the recurrent states (width "
            f"{width}): they are repeated to the states' width, as ELMo repeats its token layer, so the states' width "
            "must be a multiple of the tok2vec's. Use the widths of the pretraining config."
        )


def _init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    encoder = model.get_ref("encoder")
    encoder.initialize(X=X)
    _tok2vec, states = encoder.layers
    check_repeatable(f"The '{model.name}' layer", states.get_dim("nI"), states.get_dim("nO"))
    model.set_param("layer_weights", model.ops.alloc1f(model.attrs["n_layers"]))
    model.set_param("gamma", model.ops.asarray1f([1.0]))
    return model


def _forward(model: Model, docs: List[Doc], is_train: bool, max_length: int = 0) -> Tuple[List[Floats2d], Callable]:
    tok2vec, states = model.get_ref("encoder").layers
    vectors = tok2vec.predict(docs)
    layers = token_and_recurrent_layers(model, vectors, every_layer_states(states, vectors, max_length))
    xp = model.ops.xp
    weights = model.ops.softmax(model.get_param("layer_weights"))
    gamma = model.get_param("gamma")[0]
    mixed = gamma * xp.einsum("tlw,l->tw", layers, weights)
    lengths = [int(x.shape[0]) for x in vectors]

    def backprop(d_mixed: List[Floats2d]) -> List[Doc]:
        d_flat = xp.concatenate(d_mixed) if d_mixed else model.ops.alloc2f(0, layers.shape[2])
        per_layer = xp.einsum("tw,tlw->l", d_flat, layers)  # the gradient of each layer's share, over γ
        d_weights = gamma * per_layer
        model.inc_grad("layer_weights", weights * (d_weights - (weights * d_weights).sum()))  # through the softmax
        model.inc_grad("gamma", model.ops.asarray1f([(per_layer * weights).sum()]))
        return []

    return model.ops.unflatten(model.ops.asarray2f(mixed), lengths), backprop


def token_and_recurrent_layers(model: Model, vectors: List[Floats2d], states: Floats3d) -> Floats3d:
    """(n_tokens, 1 + depth, width): the token vectors repeated to the
    width of the states, then the states of each recurrent layer."""
    xp = model.ops.xp
    width = states.shape[2]
    flat = xp.concatenate(vectors) if vectors else model.ops.alloc2f(0, width)
    tokens = xp.tile(flat, (1, width // flat.shape[1]))
    return xp.concatenate([tokens[:, None, :], states], axis=1)
