"""Recurrent encoders over a flat batch of variable-length sequences.

Plain torch, no spaCy. A batch arrives as the concatenation of its sequences,
shape (n_tokens, nI), plus their lengths. Sequences are grouped by length
into small chunks padded on the right only, and the backward direction reads
each sequence reversed within its own length, so no padding ever precedes a
real token in a recurrence: a sequence gets the same states alone as inside
any batch, in both directions. Zero-length sequences are allowed: they
produce no states and a final state of zeros.
"""
from typing import List, NamedTuple, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..precision import autocast_input, in_callers_precision
from ..threads import directions_run_concurrently, on_second_thread

CELLS = ("rnn", "lstm", "gru")
ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
TORCH_RNN_ACTIVATIONS = ("tanh", "relu")  # what torch.nn.RNN's fused kernel offers


CHUNK_SIZE = 16  # sequences per padded chunk: measured fastest for training and inference on CPU
GPU_CHUNK_SIZE = 1024  # on a GPU, one fused kernel call per batch: each call costs a launch, padding costs little


def chunk_size_for(device: torch.device) -> int:
    return CHUNK_SIZE if device.type == "cpu" else GPU_CHUNK_SIZE


class Chunk(NamedTuple):
    """Padded positions of one chunk: the flat row read at each position when
    reading forward and backward (row n_tokens is the zero padding row), the
    real positions, and the last real position of each sequence."""

    forward: Tensor
    backward: Tensor
    real: Tuple[Tensor, Tensor]
    last: Tuple[Tensor, Tensor]


class ChunkedBatch:
    """Index maps between a flat batch and padded chunks of similar-length
    sequences, in reading order (forward) and reversed within each length
    (backward).

    Sequences are sorted by length and cut into chunks of chunk_size; each
    chunk is padded on the right only, so a recurrence reading left to right
    never sees padding before a real token, and its states at real positions
    do not depend on the rest of the batch. Zero-length sequences are left out.
    """

    def __init__(self, lengths: Sequence[int], device: torch.device, chunk_size: int = CHUNK_SIZE):
        lengths_t = torch.as_tensor(list(lengths), dtype=torch.long)
        self.n_seqs = len(lengths_t)
        self.n_tokens = int(lengths_t.sum()) if self.n_seqs else 0
        starts = torch.cumsum(lengths_t, 0) - lengths_t
        order = torch.argsort(lengths_t, descending=True, stable=True)
        order = order[lengths_t[order] > 0]
        self.order = order.to(device)
        self.chunks: List[Chunk] = []
        tokens_read = {False: [], True: []}  # flat row read at each real position, per direction
        for chunk in torch.split(order, chunk_size) if len(order) else ():
            chunk_lengths = lengths_t[chunk]
            steps = torch.arange(int(chunk_lengths[0]))
            valid = steps[None, :] < chunk_lengths[:, None]
            forward = starts[chunk, None] + steps[None, :]
            backward = starts[chunk, None] + chunk_lengths[:, None] - 1 - steps[None, :]
            tokens_read[False].append(forward[valid])
            tokens_read[True].append(backward[valid])
            self.chunks.append(
                Chunk(
                    forward=torch.where(valid, forward, self.n_tokens).to(device),
                    backward=torch.where(valid, backward, self.n_tokens).to(device),
                    real=tuple(t.to(device) for t in valid.nonzero(as_tuple=True)),
                    last=(torch.arange(len(chunk), device=device), (chunk_lengths - 1).to(device)),
                )
            )
        self.restore = {}
        for backward, rows in tokens_read.items():
            if rows:
                rows_t = torch.cat(rows)
                restore = torch.empty_like(rows_t)
                restore[rows_t] = torch.arange(len(rows_t))
                self.restore[backward] = restore.to(device)

    def run(self, network: nn.Module, flat: Tensor, backward: bool) -> Tuple[Tensor, Tensor]:
        """Run a one-directional network over every chunk, reading each
        sequence forward or reversed. Returns the states (n_tokens, H), each
        at the token it was computed at, and the final states (n_nonempty, H)
        in sorted order."""
        padded_source = torch.cat([flat, flat.new_zeros((1, flat.shape[1]))])
        real_states, finals = [], []
        for chunk in self.chunks:
            states = network(padded_source[chunk.backward if backward else chunk.forward])
            real_states.append(states[chunk.real])
            finals.append(states[chunk.last])
        return torch.cat(real_states)[self.restore[backward]], torch.cat(finals)

    def unsort(self, sorted_rows: Tensor) -> Tensor:
        """Rows in sorted order -> one row per input sequence, zeros for the
        zero-length ones."""
        out = sorted_rows.new_zeros((self.n_seqs, sorted_rows.shape[1]))
        return out.index_copy(0, self.order, sorted_rows)


class ElmanLayer(nn.Module):
    """One direction of one layer: h_t = act(W x_t + U h_{t-1} + b) over a
    right-padded batch (batch, steps, d) -> (batch, steps, N).

    N·d + N² + N weights (a single bias). The input projection of every step
    is a single matrix product; only the recurrence is a loop, with its own
    backward pass (ElmanRecurrence). Under bf16 autocast the input projection
    runs in bf16 and the recurrence in fp32.
    """

    def __init__(self, input_size: int, hidden_size: int, activation: str):
        super().__init__()
        self.input = nn.Linear(input_size, hidden_size)  # W, b
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)  # U
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return ElmanRecurrence.apply(self.input(x), self.recurrent.weight.t(), self.activation)


class ElmanRecurrence(torch.autograd.Function):
    """h_t = act(P_t + h_{t-1} Uᵀ) for t = 1…T, from precomputed P = W x + b.

    Backpropagation through time is written out as one loop of two small
    matrix products per step, instead of an autograd graph of T steps. The
    activation's derivative is taken from its output: sigmoid h(1-h), tanh
    1-h², relu [h > 0]. Always in fp32: under CPU autocast its inputs are
    cast to fp32 and autocast is off inside, backward too.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx, projected: Tensor, weight_t: Tensor, activation: str) -> Tensor:
        act = ACTIVATIONS[activation]
        states = torch.empty_like(projected)
        h = projected.new_zeros((projected.shape[0], projected.shape[2]))
        for step in range(projected.shape[1]):
            h = act(torch.addmm(projected[:, step], h, weight_t))
            states[:, step] = h
        ctx.activation = activation
        ctx.save_for_backward(states, weight_t)
        return states

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, d_states: Tensor):
        states, weight_t = ctx.saved_tensors
        derivative = {
            "sigmoid": lambda h: h * (1 - h),
            "tanh": lambda h: 1 - h * h,
            "relu": lambda h: (h > 0).to(h.dtype),
        }[ctx.activation]
        d_projected = torch.empty_like(states)
        d_weight_t = torch.zeros_like(weight_t)
        d_h = torch.zeros_like(states[:, 0])
        weight = weight_t.t()
        for step in range(states.shape[1] - 1, -1, -1):
            d_pre = (d_states[:, step] + d_h) * derivative(states[:, step])
            d_projected[:, step] = d_pre
            if step > 0:
                d_weight_t.addmm_(states[:, step - 1].t(), d_pre)
            d_h = d_pre @ weight
        return d_projected, d_weight_t, None


class TorchRNNLayer(nn.Module):
    """One direction of one layer with PyTorch's fused kernel, returning only
    the states (batch, steps, N). Under CPU autocast an LSTM reads its input
    in bf16 (see `spacy_rnn.precision.autocast_input`)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, activation: str):
        super().__init__()
        if cell == "lstm":
            self.rnn = nn.LSTM(input_size, hidden_size, batch_first=True)
        elif cell == "gru":
            self.rnn = nn.GRU(input_size, hidden_size, batch_first=True)
        else:
            self.rnn = nn.RNN(input_size, hidden_size, nonlinearity=activation, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(autocast_input(x) if isinstance(self.rnn, nn.LSTM) else x)[0]


def build_direction(cell: str, input_size: int, hidden_size: int, activation: str) -> nn.Module:
    """Fused kernels for LSTM, GRU and tanh/relu Elman cells; our own loop
    for the sigmoid Elman cell, which torch.nn.RNN does not offer."""
    if cell == "rnn" and activation not in TORCH_RNN_ACTIVATIONS:
        return ElmanLayer(input_size, hidden_size, activation)
    return TorchRNNLayer(cell, input_size, hidden_size, activation)


class RecurrentEncoder(nn.Module):
    """A stacked, optionally bidirectional recurrent network over a flat
    batch: (n_tokens, nI) + lengths -> states (n_tokens, width) in input
    order, and final states (n_seqs, width); with all_layers, the states of
    every layer, (n_tokens, depth, width), the first layer's first.

    With two directions, each gets width/2 units; the final state is the
    concatenation of the forward network's state after the last token and the
    backward network's state after the first token. Dropout applies between
    stacked layers.
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
        self.dropout = dropout
        directions = 2 if bidirectional else 1
        hidden = width // directions
        self.layers = nn.ModuleList(
            nn.ModuleList(
                build_direction(cell, nI if layer == 0 else width, hidden, activation) for _ in range(directions)
            )
            for layer in range(depth)
        )

    def forward(self, flat: Tensor, lengths: Sequence[int], all_layers: bool = False) -> Tuple[Tensor, Tensor]:
        batch = ChunkedBatch(lengths, flat.device, chunk_size_for(flat.device))
        if batch.n_tokens == 0:
            shape = (0, len(self.layers), self.width) if all_layers else (0, self.width)
            return flat.new_zeros(shape), flat.new_zeros((batch.n_seqs, self.width))
        states = flat
        every_layer = []
        for depth, directions in enumerate(self.layers):
            if depth > 0:
                states = nn.functional.dropout(states, self.dropout, self.training)
            outputs = run_directions(batch, directions, states)
            states = torch.cat([out[0] for out in outputs], dim=1)
            finals = torch.cat([out[1] for out in outputs], dim=1)
            if all_layers:
                every_layer.append(states)
        return (torch.stack(every_layer, dim=1) if all_layers else states), batch.unsort(finals)


def run_directions(batch: ChunkedBatch, directions: nn.ModuleList, states: Tensor) -> List[Tuple[Tensor, Tensor]]:
    """(states, final states) of each direction of a layer; on the CPU, both
    at once where the thread policy allows it (`spacy_rnn.threads`), both in
    the caller's precision."""
    if len(directions) == 1 or states.device.type != "cpu" or not directions_run_concurrently():
        return [batch.run(network, states, backward=i == 1) for i, network in enumerate(directions)]
    if torch.is_grad_enabled() and (states.requires_grad or any(p.requires_grad for p in directions.parameters())):
        outputs = ConcurrentDirections.apply(states, batch, directions, *directions.parameters())
        return [outputs[:2], outputs[2:]]
    backward = on_second_thread(in_callers_precision(lambda: batch.run(directions[1], states, backward=True)))
    return [batch.run(directions[0], states, backward=False), backward.result()]


class ConcurrentDirections(torch.autograd.Function):
    """Both directions of a layer, each on its own detached copy of the input,
    the backward one on the second thread; their backward passes run the same
    way. The parameters get their gradients from those inner backward passes,
    the input the sum of both copies' gradients."""

    @staticmethod
    def forward(ctx, states: Tensor, batch: ChunkedBatch, directions: nn.ModuleList, *parameters: Tensor):
        inputs = [states.detach().requires_grad_(), states.detach().requires_grad_()]

        def direction(i: int) -> Tuple[Tensor, Tensor]:
            with torch.enable_grad():
                return batch.run(directions[i], inputs[i], backward=i == 1)

        second = on_second_thread(in_callers_precision(lambda: direction(1)))
        ctx.inputs, ctx.outputs = inputs, [direction(0), second.result()]
        return tuple(t.detach() for output in ctx.outputs for t in output)

    @staticmethod
    def backward(ctx, *grads: Tensor):
        def direction(i: int) -> Tensor:
            torch.autograd.backward(ctx.outputs[i], grads[2 * i : 2 * i + 2])
            return ctx.inputs[i].grad

        second = on_second_thread(lambda: direction(1))
        d_states = direction(0) + second.result()
        ctx.inputs = ctx.outputs = None
        return (d_states,) + (None,) * (len(ctx.needs_input_grad) - 1)


POOLINGS = ("last", "mean", "max", "attention")


class Pooling(nn.Module):
    """One vector per sequence from its states: the concatenation of the
    chosen reductions ('last' = the encoder's final state; 'mean', 'max',
    'attention' = softmax-weighted sum with a learned scoring vector).
    Zero-length sequences pool to zeros. Pools in fp32 (bf16 states are cast)."""

    def __init__(self, width: int, methods: Sequence[str]):
        super().__init__()
        self.methods = tuple(methods)
        self.attention = nn.Linear(width, 1) if "attention" in self.methods else None

    def forward(self, states: Tensor, final: Tensor, lengths: Sequence[int]) -> Tensor:
        states, final = states.float(), final.float()
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
        scores = self.attention(states).float()  # (n_tokens, 1)
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
    (n_seqs, width · len(pooling)); with pool=False, the encoder's (states,
    final states) instead (of every layer with all_layers), for a view of
    the states that shares the weights."""

    def __init__(self, nI: int, width: int, pooling: Sequence[str] = ("max", "last"), **encoder_kwargs):
        super().__init__()
        self.encoder = RecurrentEncoder(nI, width, **encoder_kwargs)
        self.pooling = Pooling(width, pooling)

    def forward(
        self, flat: Tensor, lengths: Sequence[int], pool: bool = True, all_layers: bool = False
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        if not pool:
            return self.encoder(flat, lengths, all_layers=all_layers)
        states, final = self.encoder(flat, lengths)
        return self.pooling(states, final, lengths)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
