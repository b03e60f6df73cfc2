"""Thinc layers around the torch encoder-decoder.

`Seq2Seq` maps (Docs, target ids) to the logits of every target position
under teacher forcing: that is its forward pass, used for training.
`generate` decodes Docs with the same weights. Source vectors cross to torch
as one array plus the Docs' lengths; target ids as one padded id matrix. The
encoder reads the first `max_source_length` tokens of each Doc (0: all), so
that the padded memory the decoder attends to stays bounded.
"""
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import numpy
import torch
from spacy.tokens import Doc
from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch
from thinc.types import Floats2d

from ..nn.seq2seq import EncoderDecoder
from ..vocab import BOS, EOS, PAD
from .rnn import first_tokens, pad_rows
from .torch_bridge import CheckedModel, TorchModuleShim, module_threads

TargetIds = List[List[int]]  # one list per Doc, ending with EOS
Seq2SeqInput = Tuple[List[Doc], TargetIds]


class Generation(NamedTuple):
    """Output ids of one Doc (up to max_length, possibly continuing after EOS)
    and, with the attention decoder, the most attended source token of each."""

    ids: List[int]
    sources: Optional[List[int]]


def Seq2Seq(
    tok2vec: Model[List[Doc], List[Floats2d]],
    width: int,
    target_width: int,
    decoder: str,
    max_source_length: int = 0,
    nO: Optional[int] = None,
    **rnn_kwargs: Any,
) -> Model[Seq2SeqInput, Floats2d]:
    """Token vectors from `tok2vec` feeding an RNN encoder-decoder with nO
    target ids; output: logits (total target length, nO), Doc by Doc."""
    module_kwargs = dict(rnn_kwargs, width=width, target_width=target_width, decoder=decoder)
    encoder_decoder = Model(
        "rnn_encoder_decoder",
        _forward_encoder_decoder,
        init=_init_encoder_decoder,
        dims={"nI": None, "nO": nO},
        attrs={"module_kwargs": module_kwargs},
        shims=[TorchModuleShim(EncoderDecoder, settings=module_kwargs)],
    )
    model = CheckedModel(
        "rnn_seq2seq",
        _forward,
        init=_init,
        layers=[tok2vec, encoder_decoder],
        dims={"nO": nO},
        attrs={"max_source_length": max_source_length},
    )
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("encoder_decoder", encoder_decoder)
    return model


def _init(model: Model, X: Optional[Seq2SeqInput] = None, Y=None) -> Model:
    tok2vec, encoder_decoder = model.layers
    docs = X[0] if X else None
    tok2vec.initialize(X=docs)
    if model.has_dim("nO"):
        encoder_decoder.set_dim("nO", model.get_dim("nO"))
    if tok2vec.has_dim("nO"):
        encoder_decoder.set_dim("nI", tok2vec.get_dim("nO"))
    elif docs:
        encoder_decoder.set_dim("nI", int(tok2vec.predict(docs[:1])[0].shape[1]))
    encoder_decoder.initialize()
    return model


def _init_encoder_decoder(model: Model, X=None, Y=None) -> Model:
    for dim, meaning in (("nI", "the width of the source token vectors"), ("nO", "the target vocabulary size")):
        if not model.has_dim(dim):
            raise ValueError(
                f"Cannot initialize the encoder-decoder: {meaning} ({dim}) is unknown. Initialize it through "
                "the rnn_seq2seq component (nlp.initialize()), which builds the target vocabulary first."
            )
    model.shims[0].build(nI=model.get_dim("nI"), nO=model.get_dim("nO"), **model.attrs["module_kwargs"])
    return model


def _forward(model: Model, inputs: Seq2SeqInput, is_train: bool):
    docs, targets = inputs
    tok2vec, encoder_decoder = model.layers
    vectors, backprop_tok2vec = tok2vec(docs, is_train)
    sources = first_tokens(vectors, model.attrs["max_source_length"])
    logits, backprop_encoder_decoder = encoder_decoder((sources, targets), is_train)

    def backprop(d_logits: Floats2d) -> Seq2SeqInput:
        d_sources, _ = backprop_encoder_decoder(d_logits)
        d_vectors = [pad_rows(model, d, int(x.shape[0])) for d, x in zip(d_sources, vectors)]
        if any(len(d) for d in d_vectors):  # thinc's HashEmbed cannot backprop a batch without tokens
            backprop_tok2vec(d_vectors)
        return inputs

    return logits, backprop


def _forward_encoder_decoder(model: Model, inputs: Tuple[List[Floats2d], TargetIds], is_train: bool):
    vectors, targets = inputs
    module_input, lengths = _source_input(model, vectors, is_train)
    decoder_inputs, target_lengths = teacher_forcing_inputs(targets)
    args = (*module_input, xp2torch(model.ops.xp.asarray(decoder_inputs)), target_lengths)
    logits, torch_backprop = model.shims[0](ArgsKwargs(args=args, kwargs={}), is_train)

    def backprop(d_logits: Floats2d) -> Tuple[List[Floats2d], TargetIds]:
        grads = torch_backprop(ArgsKwargs(args=(logits,), kwargs={"grad_tensors": (xp2torch(d_logits),)}))
        d_flat = grads.args[0]
        if d_flat is None:  # no source token in the whole batch
            d_flat = torch.zeros_like(module_input[0])
        return model.ops.unflatten(torch2xp(d_flat), lengths), targets

    return torch2xp(logits), backprop


def teacher_forcing_inputs(targets: TargetIds) -> Tuple[numpy.ndarray, List[int]]:
    """Each target shifted right behind BOS, padded with PAD: (n_docs, longest)."""
    lengths = [len(target) for target in targets]
    for target in targets:
        if not target or target[-1] != EOS:
            raise ValueError("Every target id list must end with EOS: encode targets with the target vocabulary.")
    inputs = numpy.full((len(targets), max(lengths, default=0)), PAD, dtype="int64")
    for row, target in enumerate(targets):
        inputs[row, 0] = BOS
        inputs[row, 1 : len(target)] = target[:-1]
    return inputs, lengths


def _source_input(model: Model, vectors: List[Floats2d], is_train: bool):
    lengths = [int(x.shape[0]) for x in vectors]
    flat = model.ops.xp.concatenate(vectors) if vectors else model.ops.alloc2f(0, model.get_dim("nI"))
    return (xp2torch(model.ops.asarray2f(flat), requires_grad=is_train), lengths), lengths


def generate(
    model: Model[Seq2SeqInput, Floats2d], docs: Sequence[Doc], beam_size: int, max_length: int, length_penalty: float
) -> List[Generation]:
    """Decode all Docs together: greedy search when beam_size is 1, beam
    search otherwise."""
    if not docs:
        return []
    encoder_decoder = model.get_ref("encoder_decoder")
    module = encoder_decoder.shims[0].module
    if module is None:
        raise ValueError("The encoder-decoder is not initialized: call nlp.initialize() (or load a trained pipeline).")
    vectors = first_tokens(model.get_ref("tok2vec").predict(list(docs)), model.attrs["max_source_length"])
    (flat, lengths), _ = _source_input(encoder_decoder, vectors, is_train=False)
    module.eval()
    with module_threads():
        ids, sources = module.generate(
            flat, lengths, bos=BOS, eos=EOS, banned=(PAD, BOS), max_length=max_length,
            beam_size=beam_size, length_penalty=length_penalty,
        )
    ids_rows = ids.cpu().tolist()
    sources_rows = sources.cpu().tolist() if sources is not None else [None] * len(ids_rows)
    return [Generation(row, source_row) for row, source_row in zip(ids_rows, sources_rows)]
