"""Registered training callbacks."""
from typing import Callable, Dict, Iterator

from spacy.language import Language
from spacy.util import registry
from thinc.api import Model

from .layers.checked import LEARN_RATE_SCALE, SUBMODULE_LEARN_RATE_SCALES
from .precision import check_mode, set_cpu_bf16


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
    return encoder_schedule("spacy_rnn.pretrained_encoder_schedule.v1", learn_rate_scale, frozen_steps, seq2seq=False)


@registry.callbacks("spacy_rnn.pretrained_encoder_schedule.v2")
def create_pretrained_encoder_schedule_v2(
    learn_rate_scale: float = 1.0, frozen_steps: int = 0
) -> Callable[[Language, Dict], None]:
    """v1, for the text classifiers and for every `rnn_seq2seq` model too: its
    tok2vec and the encoder of its encoder-decoder (what `init_tok2vec` loads
    through its "encoder" ref); the decoder learns at the full rate."""
    return encoder_schedule("spacy_rnn.pretrained_encoder_schedule.v2", learn_rate_scale, frozen_steps, seq2seq=True)


@registry.callbacks("spacy_rnn.pretrained_encoder_schedule.v3")
def create_pretrained_encoder_schedule_v3(
    layer_decay: float = 1.0, unfreeze_steps: int = 0
) -> Callable[[Language, Dict], None]:
    """v2's models fine-tuned part by part, as ULMFiT does (Howard & Ruder
    2018, section 3.2: discriminative fine-tuning; 3.3: gradual unfreezing).
    The parts, from the top: everything above the recurrent network (pooling,
    output layer, the ensemble's linear model, the seq2seq decoder); the
    recurrent network (all its layers); the embedding (tok2vec). Part k from
    the top learns at layer_decay**k times the optimizer's rate, from update
    k * unfreeze_steps on, and not at all before. The optimizer's rate itself
    is the config's, e.g. thinc's `slanted_triangular.v1` (ULMFiT's slanted
    triangular rate) as [training.optimizer.learn_rate].

    layer_decay (float): Each part's rate as a share of the rate of the part
        above it, e.g. 0.38 (ULMFiT divides by 2.6); 1: one rate for all.
    unfreeze_steps (int): Updates between the unfreezing of one part and of
        the next (ULMFiT: one epoch); 0: every part learns from the first.
    """
    name = "spacy_rnn.pretrained_encoder_schedule.v3"
    if layer_decay < 0 or unfreeze_steps < 0:
        raise ValueError(
            f"{name}: layer_decay and unfreeze_steps must be 0 or more, not {layer_decay} and {unfreeze_steps}."
        )

    def before_update(nlp: Language, info: Dict) -> None:
        scales = part_scales(info["step"], layer_decay, unfreeze_steps)
        for model in encoder_models(nlp, seq2seq=True):
            set_part_scales(model, scales["recurrent"], scales["embedding"])

    return before_update


def part_scales(step: int, layer_decay: float, unfreeze_steps: int) -> Dict[str, float]:
    """The share of the optimizer's rate each part of a model learns at, at
    update `step` (from 0), under pretrained_encoder_schedule.v3."""
    return {
        part: layer_decay**k if step >= k * unfreeze_steps else 0.0 for k, part in enumerate(FINE_TUNED_PARTS)
    }


FINE_TUNED_PARTS = ("top", "recurrent", "embedding")


@registry.callbacks("spacy_rnn.cpu_bf16.v1")
def create_cpu_bf16(mode: str = "auto") -> Callable[[Language], Language]:
    """An `[nlp.after_pipeline_creation]` callback that sets spacy-rnn's bf16
    mixed precision on the CPU (`spacy_rnn.precision`) for the whole process,
    so that `spacy train`, `spacy pretrain` and `spacy.load` of the saved
    pipeline all run under it. It logs whether bf16 is on and why.

    mode (str): "auto": on where the CPU computes bf16 natively; "on": always
        (emulated, slowly, elsewhere); "off": fp32, the default without it.
    """
    check_mode(mode)

    def set_precision(nlp: Language) -> Language:
        set_cpu_bf16(mode)
        return nlp

    return set_precision


def encoder_schedule(name: str, learn_rate_scale: float, frozen_steps: int, seq2seq: bool) -> Callable:
    if learn_rate_scale < 0 or frozen_steps < 0:
        raise ValueError(
            f"{name}: learn_rate_scale and frozen_steps must be 0 or more, not {learn_rate_scale} and {frozen_steps}."
        )

    def before_update(nlp: Language, info: Dict) -> None:
        scale = 0.0 if info["step"] < frozen_steps else learn_rate_scale
        for model in encoder_models(nlp, seq2seq):
            if model.has_ref("rnn"):
                set_encoder_learn_rate(model, scale)
            else:
                set_seq2seq_encoder_learn_rate(model, scale)

    return before_update


def encoder_models(nlp: Language, seq2seq: bool) -> Iterator[Model]:
    """The models of the pipeline that hold a pretrainable encoder: the text
    classifiers (refs "encoder" and "rnn") and, with `seq2seq`, the
    encoder-decoders (refs "encoder" and "encoder_decoder")."""
    for _, pipe in nlp.components:
        model = getattr(pipe, "model", None)
        if isinstance(model, Model) and model.has_ref("encoder"):
            if model.has_ref("rnn") or (seq2seq and model.has_ref("encoder_decoder")):
                yield model


def set_encoder_learn_rate(model: Model, scale: float) -> None:
    """Mark the encoder's nodes of a TextCatRNN or TextCatRNNEnsemble model
    (its tok2vec, and the pooled RNN: the pooling shares the RNN's torch
    module) to learn at `scale` times the optimizer's rate."""
    for ref in ("tok2vec", "rnn"):
        for node in model.get_ref(ref).walk():
            node.attrs[LEARN_RATE_SCALE] = scale


def set_seq2seq_encoder_learn_rate(model: Model, scale: float) -> None:
    """Mark the tok2vec of a Seq2Seq model, and the encoder inside its
    encoder-decoder's torch module, to learn at `scale` times the rate."""
    for node in model.get_ref("tok2vec").walk():
        node.attrs[LEARN_RATE_SCALE] = scale
    model.get_ref("encoder_decoder").attrs[SUBMODULE_LEARN_RATE_SCALES] = {"encoder": scale}


def set_part_scales(model: Model, recurrent: float, embedding: float) -> None:
    """Mark a TextCatRNN, TextCatRNNEnsemble or Seq2Seq model to learn at
    `embedding` times the optimizer's rate in its tok2vec, `recurrent` in its
    recurrent encoder (a submodule of a torch module) and the full rate
    elsewhere."""
    for node in model.get_ref("tok2vec").walk():
        node.attrs[LEARN_RATE_SCALE] = embedding
    holder = model.get_ref("rnn") if model.has_ref("rnn") else model.get_ref("encoder_decoder")
    holder.attrs[LEARN_RATE_SCALE] = 1.0
    holder.attrs[SUBMODULE_LEARN_RATE_SCALES] = {"encoder": recurrent}
