"""Registered training callbacks."""
from typing import Callable, Dict

from spacy.language import Language
from spacy.util import registry
from thinc.api import Model

from .layers.torch_bridge import LEARN_RATE_SCALE


@registry.callbacks("spacy_rnn.pretrained_encoder_schedule.v1")
def create_pretrained_encoder_schedule(
    learn_rate_scale: float = 1.0, frozen_steps: int = 0
) -> Callable[[Language, Dict], None]:
    """A `[training.before_update]` callback for fine-tuning a pretrained
    encoder: in every spacy-rnn text classifier of the pipeline, the encoder
    (the embedding and recurrent layers behind the "encoder" ref, which
    `spacy pretrain` trains) does not learn during the first `frozen_steps`
    updates, then learns at `learn_rate_scale` times the optimizer's learning
    rate; the layers above it (pooling included) learn at the full rate
    throughout.

    learn_rate_scale (float): The encoder's share of the learning rate, e.g.
        0.25; 1: the same rate as the rest of the model.
    frozen_steps (int): Updates before the encoder starts to learn; 0: from
        the first.
    """
    if learn_rate_scale < 0 or frozen_steps < 0:
        raise ValueError(
            "spacy_rnn.pretrained_encoder_schedule.v1: learn_rate_scale and frozen_steps must be 0 or more, "
            f"not {learn_rate_scale} and {frozen_steps}."
        )

    def before_update(nlp: Language, info: Dict) -> None:
        scale = 0.0 if info["step"] < frozen_steps else learn_rate_scale
        for _, pipe in nlp.components:
            model = getattr(pipe, "model", None)
            if isinstance(model, Model) and model.has_ref("encoder") and model.has_ref("rnn"):
                set_encoder_learn_rate(model, scale)

    return before_update


def set_encoder_learn_rate(model: Model, scale: float) -> None:
    """Mark the encoder's nodes of a TextCatRNN or TextCatRNNEnsemble model
    (its tok2vec, and the pooled RNN: the pooling shares the RNN's torch
    module) to learn at `scale` times the optimizer's rate."""
    for ref in ("tok2vec", "rnn"):
        for node in model.get_ref(ref).walk():
            node.attrs[LEARN_RATE_SCALE] = scale
