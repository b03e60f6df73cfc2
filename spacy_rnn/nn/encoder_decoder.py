"""An RNN encoder-decoder. Plain torch, no spaCy.

The encoder is the project's `RecurrentEncoder` over a flat batch of source
token vectors plus their lengths. Three decoders read target token
embeddings one step at a time:

- "repeat": the encoder's final state is repeated at every output step and
  concatenated to the embedding of the previous target token (the design
  notes' RepeatVector decoder, fed its previous output so that it can be
  trained with teacher forcing and searched with a beam);
- "attention": Luong et al. (2015) "general" attention: the decoder state h_t
  scores every encoder state, score(h_t, s) = h_tᵀ W_a s; the softmax-weighted
  context c_t gives the attentional state tanh(W_c [c_t; h_t]);
- "copy": the attention decoder with copy attention (See et al. 2017, "Get To
  The Point"). A switch p_gen = σ(w·[c_t; h_t; x_t] + b), from the context,
  the decoder state and the decoder input, mixes generating and copying:
  P(w) = p_gen P_vocab(w) + (1 − p_gen) Σ_{i: source token i has id w} a_t,i.
  The caller gives each source token's id; source words outside the target
  vocabulary get ids after it (an extended vocabulary per batch), so they
  can be produced. Fed back as decoder input, such an id reads <UNK>'s
  embedding.

Coverage (See et al., with "attention" or "copy"): the coverage vector cov_t,
the sum of the attention weights of the past steps, enters each score as
cov_t,i · (v·h_t + b), and each step has the coverage loss
Σ_i min(a_t,i, cov_t,i).

In all, the decoder starts from tanh(W_b · final encoder state) and a linear
layer gives the logits over the target vocabulary. Under bf16 autocast
(`spacy_rnn.precision`) the matrix products run in bf16; the attention
weights, p_gen, the copy mixture, coverage, the log-softmax of the search
and the decoder's initial state are fp32. `EncoderDecoder.generate`
searches with `spacy_rnn.nn.search`, driven by a step function.
"""
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..precision import autocast_input
from .recurrent import ACTIVATIONS, TORCH_RNN_ACTIVATIONS, RecurrentEncoder
from .search import beam_search, greedy_search

DECODERS = ("repeat", "attention", "copy")
ATTENDING_DECODERS = ("attention", "copy")
MIN_PROBABILITY = 1e-30  # floor of a copy mixture before its log: an id no step can produce scores about -69

State = Union[Tensor, Tuple[Tensor, Tensor]]  # (1, batch, H), or (h, c) for an LSTM


class Memory(NamedTuple):
    """What the decoder reads from the encoder: the states padded on the right
    (batch, max(1, longest), width), a mask of the real ones, the final states
    (batch, width); for the copy decoder, the id of each source token (batch,
    max(1, longest)) and the size of the extended vocabulary."""

    states: Tensor
    mask: Tensor
    final: Tensor
    source_ids: Optional[Tensor] = None
    n_classes: int = 0

    def repeat(self, times: int) -> "Memory":
        """Each row `times` times in a row, for a beam of that size."""
        return Memory(*(t.repeat_interleave(times, dim=0) if isinstance(t, Tensor) else t for t in self))


class DecoderState(NamedTuple):
    """The recurrent state and, with coverage, the coverage vector (1, batch,
    source): every tensor has the batch on dim 1 (see `spacy_rnn.nn.search.select_state`)."""

    rnn: State
    coverage: Optional[Tensor] = None


class DecoderOutput(NamedTuple):
    """What the decoder gives for input tokens (batch, steps): the scores
    (batch, steps, n_classes), which are logits, or log probabilities for the
    copy decoder; the state after the last step; the attention weights
    (batch, steps, source); p_gen (batch, steps) for the copy decoder; each
    step's coverage loss (batch, steps) with coverage."""

    scores: Tensor
    state: DecoderState
    attention: Optional[Tensor]
    p_gen: Optional[Tensor]
    coverage_loss: Optional[Tensor]


class DecoderRNN(nn.Module):
    """A one-layer recurrent network that starts from a given state:
    (batch, steps, d) + state -> (batch, steps, H) + state. PyTorch's fused
    kernels for LSTM, GRU and tanh/relu Elman cells; a step loop for the
    sigmoid Elman cell h_t = σ(W x_t + U h_{t-1} + b)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, activation: str):
        super().__init__()
        self.cell = cell
        self.activation = activation
        if cell == "lstm":
            self.rnn = nn.LSTM(input_size, hidden_size, batch_first=True)
        elif cell == "gru":
            self.rnn = nn.GRU(input_size, hidden_size, batch_first=True)
        elif activation in TORCH_RNN_ACTIVATIONS:
            self.rnn = nn.RNN(input_size, hidden_size, nonlinearity=activation, batch_first=True)
        else:
            self.rnn = None
            self.input = nn.Linear(input_size, hidden_size)
            self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)

    def initial_state(self, hidden: Tensor) -> State:
        """The state whose hidden vectors are `hidden` (batch, H); an LSTM's
        memory cells start at zero."""
        hidden = hidden.unsqueeze(0).contiguous()
        return (hidden, torch.zeros_like(hidden)) if self.cell == "lstm" else hidden

    def forward(self, inputs: Tensor, state: State) -> Tuple[Tensor, State]:
        if self.rnn is not None:
            return self.rnn(autocast_input(inputs) if self.cell == "lstm" else inputs, state)
        act = ACTIVATIONS[self.activation]
        projected = self.input(inputs).float()  # the state stays fp32 under autocast
        hidden = state[0]
        outputs = []
        for step in range(projected.shape[1]):
            hidden = act(projected[:, step] + self.recurrent(hidden))
            outputs.append(hidden)
        return torch.stack(outputs, dim=1), hidden.unsqueeze(0)


class EncoderDecoder(nn.Module):
    """Source vectors (n_tokens, nI) + lengths -> scores over nO target ids
    (and the extended ids of copied source words, with the copy decoder).

    `forward` scores teacher-forced decoder inputs (training); `generate`
    searches for outputs (greedy when beam_size is 1).
    """

    def __init__(
        self,
        nI: int,
        nO: int,
        width: int,
        target_width: int,
        decoder: str = "attention",
        cell: str = "lstm",
        depth: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        activation: str = "sigmoid",
        coverage: bool = False,
    ):
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"Unknown decoder {decoder!r}: use one of {', '.join(DECODERS)}.")
        if coverage and decoder not in ATTENDING_DECODERS:
            raise ValueError(
                f"Coverage needs an attention decoder ({' or '.join(ATTENDING_DECODERS)}), not {decoder!r}."
            )
        self.decoder = decoder
        self.n_ids = nO
        self.coverage = coverage
        self.dropout = nn.Dropout(dropout)
        self.encoder = RecurrentEncoder(nI, width, cell, depth, bidirectional, dropout, activation)
        self.bridge = nn.Linear(width, width)
        self.embed = nn.Embedding(nO, target_width)
        decoder_input = target_width + (width if decoder == "repeat" else 0)
        self.decoder_rnn = DecoderRNN(cell, decoder_input, width, activation)
        if decoder in ATTENDING_DECODERS:
            self.attention = nn.Linear(width, width, bias=False)  # W_a
            self.combine = nn.Linear(2 * width, width)  # W_c
        if coverage:
            self.coverage_scale = nn.Linear(width, 1)  # v, b: the weight of cov_t,i in the score
        if decoder == "copy":
            self.switch = nn.Linear(2 * width + target_width, 1)  # p_gen from [c_t; h_t; x_t]
        self.output = nn.Linear(width, nO)

    def encode(self, flat: Tensor, lengths: Sequence[int], source_ids: Optional[Tensor] = None) -> Memory:
        """The memory of a batch; `source_ids` (n_tokens,), the id of each
        source token, is needed by the copy decoder only."""
        states, final = self.encoder(flat, lengths)
        longest = max(1, max(lengths, default=0))
        lengths_t = torch.as_tensor(list(lengths), device=flat.device)
        mask = torch.arange(longest, device=flat.device)[None, :] < lengths_t[:, None]
        padded = states.new_zeros((len(lengths), longest, states.shape[1]))
        padded[mask] = states
        if self.decoder != "copy":
            return Memory(padded, mask, final, None, self.n_ids)
        if source_ids is None or source_ids.shape != (sum(lengths),):
            raise ValueError(
                "The copy decoder needs the id of every source token (one tensor of sum(lengths) ids), got "
                f"{None if source_ids is None else tuple(source_ids.shape)} for {sum(lengths)} tokens."
            )
        padded_ids = torch.zeros(mask.shape, dtype=torch.long, device=flat.device)
        padded_ids[mask] = source_ids
        n_classes = max(self.n_ids, int(source_ids.max()) + 1 if len(source_ids) else 0)
        return Memory(padded, mask, final, padded_ids, n_classes)

    def start(self, memory: Memory) -> DecoderState:
        rnn = self.decoder_rnn.initial_state(torch.tanh(self.bridge(memory.final).float()))
        coverage = memory.states.new_zeros((1, *memory.mask.shape), dtype=torch.float32) if self.coverage else None
        return DecoderState(rnn, coverage)

    def decode(self, tokens: Tensor, state: DecoderState, memory: Memory) -> DecoderOutput:
        """Run the decoder over input tokens (batch, steps), ids below nO."""
        embedded = self.dropout(self.embed(tokens))
        inputs = embedded
        if self.decoder == "repeat":
            inputs = torch.cat([embedded, memory.final[:, None].expand(-1, tokens.shape[1], -1)], dim=2)
        hidden, rnn_state = self.decoder_rnn(inputs, state.rnn)
        if self.decoder == "repeat":
            return DecoderOutput(self.output(self.dropout(hidden)), DecoderState(rnn_state), None, None, None)
        weights, coverage, coverage_loss = self.attend(hidden, memory, state.coverage)
        context = torch.bmm(weights, memory.states)
        attentional = torch.tanh(self.combine(torch.cat([context, hidden], dim=2)))
        logits = self.output(self.dropout(attentional))
        state = DecoderState(rnn_state, coverage)
        if self.decoder == "attention":
            return DecoderOutput(logits, state, weights, None, coverage_loss)
        p_gen = torch.sigmoid(self.switch(torch.cat([context, hidden, embedded], dim=2)).float()).squeeze(2)
        p_gen = torch.where(memory.mask.any(dim=1)[:, None], p_gen, torch.ones_like(p_gen))  # nothing to copy
        return DecoderOutput(self.mix(logits, weights, p_gen, memory), state, weights, p_gen, coverage_loss)

    def attend(
        self, hidden: Tensor, memory: Memory, coverage: Optional[Tensor]
    ) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """Attention weights (batch, steps, source) of the decoder states over
        the real source tokens (none for a Doc without tokens); with coverage,
        also the coverage after the last step and each step's coverage loss."""
        scores = torch.bmm(self.attention(hidden), memory.states.transpose(1, 2))
        if coverage is None:
            return _attention_weights(scores, memory.mask[:, None, :]), None, None
        coverage = coverage[0]
        scales = self.coverage_scale(hidden)
        weights, losses = [], []
        for step in range(hidden.shape[1]):
            step_weights = _attention_weights(scores[:, step] + scales[:, step] * coverage, memory.mask)
            losses.append(torch.minimum(step_weights, coverage).sum(dim=1))
            coverage = coverage + step_weights
            weights.append(step_weights)
        return torch.stack(weights, dim=1), coverage[None], torch.stack(losses, dim=1)

    def mix(self, logits: Tensor, weights: Tensor, p_gen: Tensor, memory: Memory) -> Tensor:
        """log(p_gen P_vocab(w) + (1 − p_gen) Σ_{i: id_i = w} a_i) for every id w
        of the extended vocabulary: (batch, steps, n_classes)."""
        generated = torch.softmax(logits.float(), dim=2) * p_gen[..., None]
        mixed = nn.functional.pad(generated, (0, memory.n_classes - self.n_ids))
        ids = memory.source_ids[:, None, :].expand_as(weights)
        mixed = mixed.scatter_add(2, ids, weights * (1 - p_gen)[..., None])
        return torch.log(mixed.clamp_min(MIN_PROBABILITY))

    def forward(
        self,
        flat: Tensor,
        lengths: Sequence[int],
        decoder_inputs: Tensor,
        target_lengths: Sequence[int],
        source_ids: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Teacher forcing: decoder_inputs (batch, steps) holds each target
        shifted right (BOS first), padded, ids below nO. Returns the scores of
        the real target positions only, (sum(target_lengths), n_classes), Doc
        by Doc, and with coverage their coverage losses (sum(target_lengths),)."""
        memory = self.encode(flat, lengths, source_ids)
        output = self.decode(decoder_inputs, self.start(memory), memory)
        steps = torch.arange(decoder_inputs.shape[1], device=flat.device)
        real = steps[None, :] < torch.as_tensor(list(target_lengths), device=flat.device)[:, None]
        coverage_loss = None if output.coverage_loss is None else output.coverage_loss[real]
        return output.scores[real], coverage_loss

    @torch.no_grad()
    def generate(
        self,
        flat: Tensor,
        lengths: Sequence[int],
        bos: int,
        eos: int,
        unk: int,
        banned: Sequence[int],
        max_length: int,
        beam_size: int = 1,
        length_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        source_ids: Optional[Tensor] = None,
        token_bonus: Optional[Tensor] = None,
        copy_bonus: float = 0.0,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Output ids (n_seqs, ≤ max_length), which may continue after EOS, and
        for the attention decoders the most attended source position of each.
        The copy decoder may output the extended id of any source token
        (never one that no source token of the Doc has); fed back, it reads
        `unk`'s embedding. token_bonus (n_ids,) is added to the log probability
        of each vocabulary id at every step, copy_bonus to that of each
        extended id: the search then ranks outputs by their log probability
        plus their tokens' bonuses."""
        memory = self.encode(flat, lengths, source_ids)
        if beam_size > 1:
            memory = memory.repeat(beam_size)
        available = torch.zeros((len(memory.mask), memory.n_classes), dtype=torch.bool, device=flat.device)
        available[:, : self.n_ids] = True
        if memory.source_ids is not None:
            available.scatter_(1, memory.source_ids.masked_fill(~memory.mask, unk), True)
        available[:, list(banned)] = False
        bonus = None
        if token_bonus is not None:
            bonus = torch.full((memory.n_classes,), copy_bonus, device=flat.device)
            bonus[: self.n_ids] = token_bonus.to(flat.device)

        def step(previous: Tensor, state: DecoderState) -> Tuple[Tensor, DecoderState, Optional[Tensor]]:
            output = self.decode(previous.masked_fill(previous >= self.n_ids, unk)[:, None], state, memory)
            scores = output.scores[:, 0]
            log_probs = scores if self.decoder == "copy" else torch.log_softmax(scores.float(), dim=1)
            if bonus is not None:
                log_probs = log_probs + bonus
            attended = None if output.attention is None else output.attention[:, 0].argmax(dim=1)
            return log_probs.masked_fill(~available, float("-inf")), output.state, attended

        start = self.start(memory)
        if beam_size > 1:
            return beam_search(
                step, start, len(lengths), bos, eos, max_length, beam_size, length_penalty, no_repeat_ngram_size
            )
        return greedy_search(step, start, len(lengths), bos, eos, max_length, no_repeat_ngram_size)


def _attention_weights(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax of the scores over the real source positions (mask broadcast
    to the scores), in fp32; all zero for a Doc without tokens."""
    scores = scores.float()
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) * mask
