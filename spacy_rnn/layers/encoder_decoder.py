"""Thinc layers around the torch encoder-decoder.

`Seq2Seq` maps (Docs, target ids) to the scores of every target position
under teacher forcing: that is its forward pass, used for training.
`generate` decodes Docs with the same weights. Source vectors cross to torch
as one array plus the Docs' lengths; target ids as one padded id matrix. The
encoder reads the first `max_source_length` tokens of each Doc (0: all), so
that the padded memory the decoder attends to stays bounded.

The copy decoder also needs the target id of each source token it reads
(source ids, see `WordVocab.copy_source`): its input is (Docs, target ids,
source ids), and target and source ids may hold extended ids, from nO on,
for words of the source outside the target vocabulary. Its scores have one
column per id of the extended vocabulary of the batch.

The model's `encoder` ref (tok2vec + `EncoderStatesView`) gives the states
of the recurrent encoder, sharing its weights: `[initialize] init_tok2vec`
loads an encoder pretrained by `spacy pretrain` through a text classifier's
`encoder` ref with the same settings into it.
"""
from functools import partial
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy
import torch
from spacy.tokens import Doc
from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch
from thinc.types import Floats1d, Floats2d

from ..nn.encoder_decoder import EncoderDecoder
from ..precision import cpu_autocast
from ..target_vocab import BOS, EOS, PAD, UNK
from ..threads import module_threads
from .checked import CheckedChain, CheckedModel
from .rnn import forward_states, first_tokens, pad_rows
from .shims import SubmoduleShim, TorchModuleShim

ENCODER_SETTINGS = ("nI", "width", "cell", "depth", "bidirectional", "activation")  # shared with a pretrained encoder

TargetIds = List[List[int]]  # one list per Doc, ending with EOS
SourceIds = List[List[int]]  # the copy decoder's: one id per source token read, one list per Doc
Seq2SeqInput = Union[Tuple[List[Doc], TargetIds], Tuple[List[Doc], TargetIds, SourceIds]]
Seq2SeqScores = Tuple[Floats2d, Floats1d]  # scores and coverage loss of every target position


class Generation(NamedTuple):
    """Output ids of one Doc (up to max_length, possibly continuing after EOS;
    extended ids for copied words) and, with the attention and copy decoders,
    the most attended source token of each."""

    ids: List[int]
    sources: Optional[List[int]]


def Seq2Seq(
    tok2vec: Model[List[Doc], List[Floats2d]],
    width: int,
    target_width: int,
    decoder: str,
    max_source_length: int = 0,
    nO: Optional[int] = None,
    output_coverage: bool = False,
    **rnn_kwargs: Any,
) -> Model[Seq2SeqInput, Union[Floats2d, Seq2SeqScores]]:
    """Token vectors from `tok2vec` feeding an RNN encoder-decoder with nO
    target ids; output: scores (total target length, nO or the extended
    vocabulary size), Doc by Doc, which are logits, or log probabilities for
    the copy decoder. With output_coverage, the output is (scores, coverage
    loss of each target position), the loss zero without coverage."""
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
        attrs={"max_source_length": max_source_length, "decoder": decoder, "output_coverage": output_coverage},
    )
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("encoder_decoder", encoder_decoder)
    model.set_ref("encoder", CheckedChain(tok2vec, EncoderStatesView(encoder_decoder, max_source_length)))
    return model


def EncoderStatesView(encoder_decoder: Model, max_length: int = 0) -> Model[List[Floats2d], List[Floats2d]]:
    """All states of the encoder of `encoder_decoder`, one array per Doc (read
    in windows of max_length tokens, as RNNStates does), sharing its weights.
    It saves and loads the encoder's weights alone, in the format of a text
    classifier's `encoder` ref, and is usable once the encoder-decoder is built."""
    module_kwargs = encoder_decoder.attrs["module_kwargs"]
    return Model(
        "rnn_states_view",
        partial(forward_states, max_length=max_length),
        init=_init_encoder_view,
        dims={"nI": None, "nO": module_kwargs["width"]},
        attrs={"module_kwargs": {key: module_kwargs.get(key) for key in ENCODER_SETTINGS if key != "nI"}},
        shims=[SubmoduleShim(encoder_decoder.shims[0], "encoder", ENCODER_SETTINGS)],
    )


def _init_encoder_view(model: Model, X=None, Y=None) -> Model:
    shim: SubmoduleShim = model.shims[0]
    if shim.module is None:
        raise ValueError(
            "The rnn_seq2seq encoder is built with its decoder, once the target vocabulary is known, so it cannot be "
            "initialized or pretrained on its own. Pretrain the encoder of a text classifier config with the same "
            "tok2vec and encoder settings (e.g. configs/pretrain_textcat_lstm_w256.cfg) and load the file into the "
            "rnn_seq2seq model with [initialize] init_tok2vec ([pretraining] component = \"rnn_seq2seq\", "
            "layer = \"encoder\")."
        )
    model.set_dim("nI", shim.whole.cfg["nI"])
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
    docs, targets, source_ids = _unpack(model, inputs)
    tok2vec, encoder_decoder = model.layers
    vectors, backprop_tok2vec = tok2vec(docs, is_train)
    sources = first_tokens(vectors, model.attrs["max_source_length"])
    scores, backprop_encoder_decoder = encoder_decoder((sources, targets, source_ids), is_train)
    output_coverage = model.attrs["output_coverage"]

    def backprop(d_output: Union[Floats2d, Seq2SeqScores]) -> Seq2SeqInput:
        d_scores = d_output if output_coverage else (d_output, None)
        d_sources, _, _ = backprop_encoder_decoder(d_scores)
        d_vectors = [pad_rows(model, d, int(x.shape[0])) for d, x in zip(d_sources, vectors)]
        if any(len(d) for d in d_vectors):  # thinc's HashEmbed cannot backprop a batch without tokens
            backprop_tok2vec(d_vectors)
        return inputs

    return (scores if output_coverage else scores[0]), backprop


def _unpack(model: Model, inputs: Seq2SeqInput) -> Tuple[List[Doc], TargetIds, Optional[SourceIds]]:
    """Docs, target ids and, for the copy decoder, source ids (None otherwise)."""
    docs, targets, *rest = inputs
    return docs, targets, _copy_source_ids(model, rest[0] if rest else None)


def _copy_source_ids(model: Model, source_ids: Optional[SourceIds]) -> Optional[SourceIds]:
    """The source ids of the tokens the encoder reads, for the copy decoder;
    None for the others."""
    if model.attrs["decoder"] != "copy":
        return None
    if source_ids is None:
        raise ValueError(
            "The copy decoder needs the target id of every source token: give the model (Docs, target ids, source "
            "ids), as the rnn_seq2seq component does."
        )
    limit = model.attrs["max_source_length"] or None
    return [ids[:limit] for ids in source_ids]


def _forward_encoder_decoder(
    model: Model, inputs: Tuple[List[Floats2d], TargetIds, Optional[SourceIds]], is_train: bool
):
    vectors, targets, source_ids = inputs
    module_input, lengths = _source_input(model, vectors, is_train)
    decoder_inputs, target_lengths = teacher_forcing_inputs(targets)
    decoder_inputs[decoder_inputs >= model.get_dim("nO")] = UNK  # a copied word is read as <UNK>
    args = (
        *module_input,
        xp2torch(model.ops.xp.asarray(decoder_inputs)),
        target_lengths,
        _source_ids_tensor(model, source_ids, lengths),
    )
    (scores, coverage), torch_backprop = model.shims[0](ArgsKwargs(args=args, kwargs={}), is_train)

    def backprop(d_output: Tuple[Floats2d, Optional[Floats1d]]) -> Tuple[List[Floats2d], TargetIds, Any]:
        d_scores, d_coverage = d_output
        outputs, grads = [scores], [xp2torch(d_scores)]
        if coverage is not None and d_coverage is not None:
            outputs.append(coverage)
            grads.append(xp2torch(d_coverage))
        grads = torch_backprop(ArgsKwargs(args=(tuple(outputs),), kwargs={"grad_tensors": tuple(grads)}))
        d_flat = grads.args[0]
        if d_flat is None:  # no source token in the whole batch
            d_flat = torch.zeros_like(module_input[0])
        return model.ops.unflatten(torch2xp(d_flat), lengths), targets, source_ids

    coverage_losses = model.ops.alloc1f(scores.shape[0]) if coverage is None else torch2xp(coverage)
    return (torch2xp(scores), coverage_losses), backprop


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


def _source_ids_tensor(model: Model, source_ids: Optional[SourceIds], lengths: List[int]) -> Optional[torch.Tensor]:
    """The source ids of a batch as one tensor (n_tokens,), checked against the
    number of source tokens of each Doc."""
    if source_ids is None:
        return None
    counts = [len(ids) for ids in source_ids]
    if counts != lengths:
        raise ValueError(
            f"Got source ids for {counts} tokens, but the encoder reads {lengths} tokens of these Docs: compute "
            "them from the same Docs (their first max_source_length tokens), with TargetVocab.copy_source."
        )
    flat = numpy.asarray([token_id for ids in source_ids for token_id in ids], dtype="int64")
    return xp2torch(model.ops.xp.asarray(flat))


def _source_input(model: Model, vectors: List[Floats2d], is_train: bool):
    lengths = [int(x.shape[0]) for x in vectors]
    flat = model.ops.xp.concatenate(vectors) if vectors else model.ops.alloc2f(0, model.get_dim("nI"))
    return (xp2torch(model.ops.asarray2f(flat), requires_grad=is_train), lengths), lengths


def generate(
    model: Model[Seq2SeqInput, Any],
    docs: Sequence[Doc],
    beam_size: int,
    max_length: int,
    length_penalty: float,
    no_repeat_ngram_size: int = 0,
    source_ids: Optional[SourceIds] = None,
    token_bonus: Optional[Sequence[float]] = None,
    copy_bonus: float = 0.0,
) -> List[Generation]:
    """Decode all Docs together: greedy search when beam_size is 1, beam
    search otherwise; source_ids for the copy decoder. token_bonus (one
    number per target id) and copy_bonus (for a copied word) are added to
    the log probability of each token the search considers."""
    if not docs:
        return []
    source_ids = _copy_source_ids(model, source_ids)
    encoder_decoder = model.get_ref("encoder_decoder")
    module = encoder_decoder.shims[0].module
    if module is None:
        raise ValueError("The encoder-decoder is not initialized: call nlp.initialize() (or load a trained pipeline).")
    vectors = first_tokens(model.get_ref("tok2vec").predict(list(docs)), model.attrs["max_source_length"])
    (flat, lengths), _ = _source_input(encoder_decoder, vectors, is_train=False)
    source_tensor = _source_ids_tensor(encoder_decoder, source_ids, lengths)
    module.eval()
    with module_threads(), cpu_autocast():
        ids, sources = module.generate(
            flat, lengths, bos=BOS, eos=EOS, unk=UNK, banned=(PAD, BOS), max_length=max_length,
            beam_size=beam_size, length_penalty=length_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
            source_ids=source_tensor, copy_bonus=copy_bonus,
            token_bonus=None if token_bonus is None else torch.tensor(token_bonus, dtype=flat.dtype),
        )
    ids_rows = ids.cpu().tolist()
    sources_rows = sources.cpu().tolist() if sources is not None else [None] * len(ids_rows)
    return [Generation(row, source_row) for row, source_row in zip(ids_rows, sources_rows)]
