"""An RNN encoder-decoder with greedy and beam search. Plain torch, no spaCy.

The encoder is the project's `RecurrentEncoder` over a flat batch of source
token vectors plus their lengths. Two decoders read target token embeddings
one step at a time:

- "repeat": the encoder's final state is repeated at every output step and
  concatenated to the embedding of the previous target token (the design
  notes' RepeatVector decoder, fed its previous output so that it can be
  trained with teacher forcing and searched with a beam);
- "attention": Luong et al. (2015) "general" attention: the decoder state h_t
  scores every encoder state, score(h_t, s) = h_tᵀ W_a s; the softmax-weighted
  context c_t gives the attentional state tanh(W_c [c_t; h_t]).

In both, the decoder starts from tanh(W_b · final encoder state) and a linear
layer gives the logits over the target vocabulary. Decoding is a separate
piece (`greedy_search`, `beam_search`) driven by a step function and the
end index.
"""
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .recurrent import ACTIVATIONS, TORCH_RNN_ACTIVATIONS, RecurrentEncoder

DECODERS = ("repeat", "attention")

State = Union[Tensor, Tuple[Tensor, Tensor]]  # (1, batch, H), or (h, c) for an LSTM
StepFunction = Callable[[Tensor, State], Tuple[Tensor, State, Optional[Tensor]]]


class Memory(NamedTuple):
    """What the decoder reads from the encoder: the states padded on the right
    (batch, max(1, longest), width), a mask of the real ones, and the final states
    (batch, width)."""

    states: Tensor
    mask: Tensor
    final: Tensor

    def repeat(self, times: int) -> "Memory":
        """Each row `times` times in a row, for a beam of that size."""
        return Memory(*(t.repeat_interleave(times, dim=0) for t in self))


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
            return self.rnn(inputs, state)
        act = ACTIVATIONS[self.activation]
        projected = self.input(inputs)
        hidden = state[0]
        outputs = []
        for step in range(projected.shape[1]):
            hidden = act(projected[:, step] + self.recurrent(hidden))
            outputs.append(hidden)
        return torch.stack(outputs, dim=1), hidden.unsqueeze(0)


def select_state(state: State, rows: Tensor) -> State:
    """The decoder state of the given batch rows."""
    if isinstance(state, tuple):
        return tuple(part[:, rows] for part in state)
    return state[:, rows]


class EncoderDecoder(nn.Module):
    """Source vectors (n_tokens, nI) + lengths -> logits over nO target ids.

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
    ):
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"Unknown decoder {decoder!r}: use one of {', '.join(DECODERS)}.")
        self.decoder = decoder
        self.dropout = nn.Dropout(dropout)
        self.encoder = RecurrentEncoder(nI, width, cell, depth, bidirectional, dropout, activation)
        self.bridge = nn.Linear(width, width)
        self.embed = nn.Embedding(nO, target_width)
        decoder_input = target_width + (width if decoder == "repeat" else 0)
        self.decoder_rnn = DecoderRNN(cell, decoder_input, width, activation)
        if decoder == "attention":
            self.attention = nn.Linear(width, width, bias=False)  # W_a
            self.combine = nn.Linear(2 * width, width)  # W_c
        self.output = nn.Linear(width, nO)

    def encode(self, flat: Tensor, lengths: Sequence[int]) -> Memory:
        states, final = self.encoder(flat, lengths)
        longest = max(1, max(lengths, default=0))
        lengths_t = torch.as_tensor(list(lengths), device=flat.device)
        mask = torch.arange(longest, device=flat.device)[None, :] < lengths_t[:, None]
        padded = states.new_zeros((len(lengths), longest, states.shape[1]))
        padded[mask] = states
        return Memory(padded, mask, final)

    def start(self, memory: Memory) -> State:
        return self.decoder_rnn.initial_state(torch.tanh(self.bridge(memory.final)))

    def decode(self, tokens: Tensor, state: State, memory: Memory) -> Tuple[Tensor, State, Optional[Tensor]]:
        """Run the decoder over input tokens (batch, steps): logits (batch,
        steps, nO), the state after the last step, and for the attention
        decoder the most attended source position of each step."""
        inputs = self.dropout(self.embed(tokens))
        if self.decoder == "repeat":
            inputs = torch.cat([inputs, memory.final[:, None].expand(-1, tokens.shape[1], -1)], dim=2)
        hidden, state = self.decoder_rnn(inputs, state)
        most_attended = None
        if self.decoder == "attention":
            scores = torch.bmm(self.attention(hidden), memory.states.transpose(1, 2))
            # A Doc without tokens attends evenly to zero padding: its context is zero.
            scores = scores.masked_fill(~memory.mask[:, None, :], torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=2)
            context = torch.bmm(weights, memory.states)
            hidden = torch.tanh(self.combine(torch.cat([context, hidden], dim=2)))
            most_attended = weights.argmax(dim=2)
        return self.output(self.dropout(hidden)), state, most_attended

    def forward(
        self, flat: Tensor, lengths: Sequence[int], decoder_inputs: Tensor, target_lengths: Sequence[int]
    ) -> Tensor:
        """Teacher forcing: decoder_inputs (batch, steps) holds each target
        shifted right (BOS first), padded. Returns the logits of the real
        target positions only, (sum(target_lengths), nO), Doc by Doc."""
        memory = self.encode(flat, lengths)
        logits, _state, _attended = self.decode(decoder_inputs, self.start(memory), memory)
        steps = torch.arange(decoder_inputs.shape[1], device=flat.device)
        real = steps[None, :] < torch.as_tensor(list(target_lengths), device=flat.device)[:, None]
        return logits[real]

    @torch.no_grad()
    def generate(
        self,
        flat: Tensor,
        lengths: Sequence[int],
        bos: int,
        eos: int,
        banned: Sequence[int],
        max_length: int,
        beam_size: int = 1,
        length_penalty: float = 1.0,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Output ids (n_seqs, ≤ max_length), which may continue after EOS, and
        for the attention decoder the most attended source position of each."""
        memory = self.encode(flat, lengths)
        if beam_size > 1:
            memory = memory.repeat(beam_size)

        def step(previous: Tensor, state: State) -> Tuple[Tensor, State, Optional[Tensor]]:
            logits, state, attended = self.decode(previous[:, None], state, memory)
            log_probs = torch.log_softmax(logits[:, 0], dim=1)
            log_probs[:, list(banned)] = float("-inf")
            return log_probs, state, None if attended is None else attended[:, 0]

        if beam_size > 1:
            return beam_search(step, self.start(memory), len(lengths), bos, eos, max_length, beam_size, length_penalty)
        return greedy_search(step, self.start(memory), len(lengths), bos, eos, max_length)


def greedy_search(
    step: StepFunction, state: State, n_seqs: int, bos: int, eos: int, max_length: int
) -> Tuple[Tensor, Optional[Tensor]]:
    """The most probable next token at every step, for all sequences at once,
    until each has produced `eos` or `max_length` tokens."""
    previous = torch.full((n_seqs,), bos, dtype=torch.long, device=_device(state))
    finished = torch.zeros_like(previous, dtype=torch.bool)
    tokens: List[Tensor] = []
    sources: List[Tensor] = []
    for _ in range(max_length):
        log_probs, state, attended = step(previous, state)
        previous = log_probs.argmax(dim=1)
        tokens.append(previous)
        if attended is not None:
            sources.append(attended)
        finished |= previous == eos
        if finished.all():
            break
    return _stack(tokens, n_seqs, previous), (_stack(sources, n_seqs, previous) if sources else None)


def beam_search(
    step: StepFunction,
    state: State,
    n_seqs: int,
    bos: int,
    eos: int,
    max_length: int,
    beam_size: int,
    length_penalty: float,
) -> Tuple[Tensor, Optional[Tensor]]:
    """Beam search over all sequences at once; the state has beam_size rows
    per sequence, in a row.

    A hypothesis that has produced `eos` stays in its beam, continued by `eos`
    at no cost, and competes with the others. Hypotheses are ranked by their
    log probability divided by length ** length_penalty (0: no normalisation;
    1: mean log probability per token, `eos` included).
    """
    device = _device(state)
    rows_per_seq = torch.arange(n_seqs, device=device)[:, None] * beam_size
    scores = torch.full((n_seqs, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0  # the beams start identical: expand only the first
    lengths = torch.zeros((n_seqs, beam_size), dtype=torch.long, device=device)
    finished = torch.zeros((n_seqs, beam_size), dtype=torch.bool, device=device)
    previous = torch.full((n_seqs * beam_size,), bos, dtype=torch.long, device=device)
    tokens = previous.new_empty((n_seqs * beam_size, 0))
    sources: Optional[Tensor] = None
    for _ in range(max_length):
        log_probs, state, attended = step(previous, state)
        n_classes = log_probs.shape[1]
        log_probs = log_probs.view(n_seqs, beam_size, n_classes)
        carry_on = torch.full((n_classes,), float("-inf"), device=device)
        carry_on[eos] = 0.0
        log_probs = torch.where(finished[..., None], carry_on, log_probs)
        candidates = (scores[..., None] + log_probs).view(n_seqs, -1)
        candidate_lengths = lengths + (~finished).long()
        normalizer = candidate_lengths.clamp(min=1).to(scores.dtype).pow(length_penalty)
        ranked = (candidates.view(n_seqs, beam_size, n_classes) / normalizer[..., None]).view(n_seqs, -1)
        best = ranked.topk(beam_size, dim=1).indices
        beam, token = best // n_classes, best % n_classes
        scores = candidates.gather(1, best)
        lengths = candidate_lengths.gather(1, beam)
        finished = finished.gather(1, beam) | (token == eos)
        rows = (rows_per_seq + beam).view(-1)
        tokens = torch.cat([tokens[rows], token.view(-1, 1)], dim=1)
        if attended is not None:
            column = attended[rows].view(-1, 1)
            sources = column if sources is None else torch.cat([sources[rows], column], dim=1)
        state = select_state(state, rows)
        previous = token.view(-1)
        if finished.all():
            break
    final = scores / lengths.clamp(min=1).to(scores.dtype).pow(length_penalty)
    chosen = rows_per_seq[:, 0] + final.argmax(dim=1)
    return tokens[chosen], (None if sources is None else sources[chosen])


def _device(state: State) -> torch.device:
    return (state[0] if isinstance(state, tuple) else state).device


def _stack(columns: List[Tensor], n_seqs: int, like: Tensor) -> Tensor:
    return torch.stack(columns, dim=1) if columns else like.new_empty((n_seqs, 0))
