"""Recurrent encoders over a flat batch of variable-length sequences.

Plain torch, no spaCy. A batch arrives as the concatenation of its sequences,
shape (n_tokens, nI), plus their lengths. It is packed by true length (no
padding ever enters a recurrence), so a sequence gets the same states alone
as inside any batch, in both directions. Zero-length sequences are allowed:
they produce no states and a final state of zeros.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

CELLS = ("rnn", "lstm", "gru")
ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
TORCH_RNN_ACTIVATIONS = ("tanh", "relu")  # what torch.nn.RNN's fused kernel offers


class Packing:
    """Index maps between a flat batch and the time-major packed layout.

    Sequences are ordered by decreasing length (stable); zero-length ones
    are left out of the packed batch.
    """

    def __init__(self, lengths: Sequence[int], device: torch.device):
        lengths_t = torch.as_tensor(list(lengths), dtype=torch.long)
        self.n_seqs = len(lengths_t)
        self.n_tokens = int(lengths_t.sum()) if self.n_seqs else 0
        order = torch.argsort(lengths_t, descending=True, stable=True)
        self.sorted_lengths = lengths_t[order][lengths_t[order] > 0]
        self.order = order[: len(self.sorted_lengths)].to(device)
        if self.n_tokens == 0:
            return
        starts = torch.cumsum(lengths_t, 0) - lengths_t
        steps = torch.arange(int(self.sorted_lengths[0]))
        active = self.sorted_lengths[None, :] > steps[:, None]  # (T, B) time-major
        self.batch_sizes = active.sum(1)  # stays on the CPU, as torch requires
        flat_index = (starts[self.order.cpu()][None, :] + steps[:, None])[active]
        self.pack_index = flat_index.to(device)
        unpack_index = torch.empty_like(flat_index)
        unpack_index[flat_index] = torch.arange(len(flat_index))
        self.unpack_index = unpack_index.to(device)

    def pack(self, flat: Tensor) -> PackedSequence:
        return PackedSequence(flat[self.pack_index], self.batch_sizes)

    def unpack(self, packed_data: Tensor) -> Tensor:
        return packed_data[self.unpack_index]

    def unsort(self, sorted_rows: Tensor) -> Tensor:
        """Rows in packed (length-sorted) order -> one row per input sequence,
        zeros for the zero-length ones."""
        out = sorted_rows.new_zeros((self.n_seqs, sorted_rows.shape[1]))
        return out.index_copy(0, self.order, sorted_rows)


def packed_lengths(batch_sizes: Tensor) -> Tensor:
    """Length of each (sorted) sequence of a packed batch."""
    n_seqs = int(batch_sizes[0])
    return (batch_sizes[:, None] > torch.arange(n_seqs)[None, :]).sum(0)


def packed_offsets(batch_sizes: Tensor) -> Tensor:
    """Start of each time step in the packed data."""
    return torch.cumsum(batch_sizes, 0) - batch_sizes


def packed_reversal(batch_sizes: Tensor) -> Tensor:
    """Index that reverses every sequence of a packed batch within its own
    length (its own inverse)."""
    lengths = packed_lengths(batch_sizes)
    offsets = packed_offsets(batch_sizes)
    steps = torch.arange(len(batch_sizes))
    active = lengths[None, :] > steps[:, None]
    step_of, seq_of = active.nonzero(as_tuple=True)
    return offsets[lengths[seq_of] - 1 - step_of] + seq_of


def packed_last(data: Tensor, batch_sizes: Tensor) -> Tensor:
    """The state at each sequence's last step, in sorted order."""
    lengths = packed_lengths(batch_sizes)
    index = packed_offsets(batch_sizes)[lengths - 1] + torch.arange(len(lengths))
    return data[index.to(data.device)]


class ElmanLayer(nn.Module):
    """One direction of one layer: h_t = act(W x_t + U h_{t-1} + b).

    N·d + N² + N weights (a single bias). The input projection of every step
    is a single matrix product; only the recurrence is a loop.
    """

    def __init__(self, input_size: int, hidden_size: int, activation: str):
        super().__init__()
        self.input = nn.Linear(input_size, hidden_size)  # W, b
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)  # U
        self.activation = ACTIVATIONS[activation]

    def forward(self, data: Tensor, batch_sizes: Tensor) -> Tensor:
        projected = self.input(data)
        weight_t = self.recurrent.weight.t()
        h = projected.new_zeros((int(batch_sizes[0]), projected.shape[1]))
        states: List[Tensor] = []
        offset = 0
        for size in batch_sizes.tolist():
            step = projected[offset : offset + size]
            h = self.activation(torch.addmm(step, h[:size], weight_t))
            states.append(h)
            offset += size
        return torch.cat(states)


class ElmanRNN(nn.Module):
    """Stacked, optionally bidirectional Elman network over packed sequences,
    with the interface of torch.nn.RNN for packed input: returns the packed
    states of the last layer and h_n of shape (layers·directions, batch, N)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        activation: str = "sigmoid",
    ):
        super().__init__()
        self.directions = 2 if bidirectional else 1
        self.dropout = dropout
        self.layers = nn.ModuleList(
            ElmanLayer(
                input_size if i < self.directions else hidden_size * self.directions,
                hidden_size,
                activation,
            )
            for i in range(num_layers * self.directions)
        )

    def forward(self, packed: PackedSequence) -> Tuple[PackedSequence, Tensor]:
        data, batch_sizes = packed.data, packed.batch_sizes
        reversal = packed_reversal(batch_sizes).to(data.device) if self.directions == 2 else None
        finals = []
        for first in range(0, len(self.layers), self.directions):
            if first > 0:
                data = nn.functional.dropout(data, self.dropout, self.training)
            outputs = [self.layers[first](data, batch_sizes)]
            if reversal is not None:
                backward = self.layers[first + 1](data[reversal], batch_sizes)
                outputs.append(backward[reversal])
                finals += [packed_last(outputs[0], batch_sizes), packed_last(backward, batch_sizes)]
            else:
                finals.append(packed_last(outputs[0], batch_sizes))
            data = torch.cat(outputs, dim=1) if reversal is not None else outputs[0]
        return PackedSequence(data, batch_sizes), torch.stack(finals)


def build_rnn(
    cell: str, nI: int, hidden: int, depth: int, bidirectional: bool, dropout: float, activation: str
) -> nn.Module:
    """The torch recurrent network for a cell name: fused kernels for LSTM,
    GRU and tanh/relu Elman networks, our own loop for the sigmoid one."""
    dropout = dropout if depth > 1 else 0.0
    kwargs = dict(num_layers=depth, bidirectional=bidirectional, dropout=dropout)
    if cell == "lstm":
        return nn.LSTM(nI, hidden, **kwargs)
    if cell == "gru":
        return nn.GRU(nI, hidden, **kwargs)
    if activation in TORCH_RNN_ACTIVATIONS:
        return nn.RNN(nI, hidden, nonlinearity=activation, **kwargs)
    return ElmanRNN(nI, hidden, activation=activation, **kwargs)


class RecurrentEncoder(nn.Module):
    """A recurrent network over a flat batch: (n_tokens, nI) + lengths ->
    states (n_tokens, width) in input order, and final states (n_seqs, width).

    With two directions, each gets width/2 units; the final state is the
    concatenation of the forward network's state after the last token and the
    backward network's state after the first token.
    """

    def __init__(
        self,
        nI: int,
        width: int,
        cell: str = "lstm",
        depth: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        activation: str = "sigmoid",
    ):
        super().__init__()
        self.width = width
        self.directions = 2 if bidirectional else 1
        hidden = width // self.directions
        self.rnn = build_rnn(cell, nI, hidden, depth, bidirectional, dropout, activation)

    def forward(self, flat: Tensor, lengths: Sequence[int]) -> Tuple[Tensor, Tensor]:
        packing = Packing(lengths, flat.device)
        if packing.n_tokens == 0:
            return flat.new_zeros((0, self.width)), flat.new_zeros((packing.n_seqs, self.width))
        packed_states, h_n = self.rnn(packing.pack(flat))
        if isinstance(h_n, tuple):  # LSTM: (h_n, c_n)
            h_n = h_n[0]
        last_layer = h_n[-self.directions :]  # (directions, n_nonempty, hidden)
        final = last_layer.transpose(0, 1).reshape(last_layer.shape[1], self.width)
        return packing.unpack(packed_states.data), packing.unsort(final)


POOLINGS = ("last", "mean", "max", "attention")


class Pooling(nn.Module):
    """One vector per sequence from its states: the concatenation of the
    chosen reductions ('last' = the encoder's final state; 'mean', 'max',
    'attention' = softmax-weighted sum with a learned scoring vector).
    Zero-length sequences pool to zeros."""

    def __init__(self, width: int, methods: Sequence[str]):
        super().__init__()
        self.methods = tuple(methods)
        self.attention = nn.Linear(width, 1) if "attention" in self.methods else None

    def forward(self, states: Tensor, final: Tensor, lengths: Sequence[int]) -> Tensor:
        lengths_t = torch.as_tensor(list(lengths), dtype=torch.long, device=states.device)
        segment = torch.repeat_interleave(torch.arange(len(lengths_t), device=states.device), lengths_t)
        pooled = []
        for method in self.methods:
            if method == "last":
                pooled.append(final)
            elif method == "mean":
                sums = segment_sum(states, segment, len(lengths_t))
                pooled.append(sums / lengths_t.clamp(min=1).unsqueeze(1).to(states.dtype))
            elif method == "max":
                pooled.append(segment_max(states, segment, len(lengths_t)))
            else:
                pooled.append(self.attend(states, segment, len(lengths_t)))
        return torch.cat(pooled, dim=1) if len(pooled) > 1 else pooled[0]

    def attend(self, states: Tensor, segment: Tensor, n_seqs: int) -> Tensor:
        scores = self.attention(states)  # (n_tokens, 1)
        scores = scores - segment_max(scores, segment, n_seqs).detach()[segment]
        weights = scores.exp()
        weights = weights / segment_sum(weights, segment, n_seqs)[segment]
        return segment_sum(weights * states, segment, n_seqs)


def segment_sum(values: Tensor, segment: Tensor, n_segments: int) -> Tensor:
    return values.new_zeros((n_segments, values.shape[1])).index_add(0, segment, values)


def segment_max(values: Tensor, segment: Tensor, n_segments: int) -> Tensor:
    index = segment.unsqueeze(1).expand_as(values)
    empty = values.new_zeros((n_segments, values.shape[1]))
    return empty.scatter_reduce(0, index, values, reduce="amax", include_self=False)


class PooledRecurrentEncoder(nn.Module):
    """RecurrentEncoder followed by Pooling: (n_tokens, nI) + lengths ->
    (n_seqs, width · len(pooling))."""

    def __init__(self, nI: int, width: int, pooling: Sequence[str] = ("max", "last"), **encoder_kwargs):
        super().__init__()
        self.encoder = RecurrentEncoder(nI, width, **encoder_kwargs)
        self.pooling = Pooling(width, pooling)

    def forward(self, flat: Tensor, lengths: Sequence[int]) -> Tensor:
        states, final = self.encoder(flat, lengths)
        return self.pooling(states, final, lengths)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
