"""Greedy and beam search over the steps of a decoder. Plain torch, no spaCy.

A search is driven by a step function, (previous tokens, state) -> (log
probabilities, state, most attended source position or None), and the end
index; it can block repeated n-grams (`block_repeats`). The state is a tensor
with the batch on dim 1, or a (named) tuple of such tensors and Nones.
"""
from typing import Any, Callable, List, Optional, Tuple

import torch
from torch import Tensor

StepFunction = Callable[[Tensor, Any], Tuple[Tensor, Any, Optional[Tensor]]]


def greedy_search(
    step: StepFunction,
    state: Any,
    n_seqs: int,
    bos: int,
    eos: int,
    max_length: int,
    no_repeat_ngram_size: int = 0,
) -> Tuple[Tensor, Optional[Tensor]]:
    """The most probable next token at every step, for all sequences at once,
    until each has produced `eos` or `max_length` tokens; with
    no_repeat_ngram_size n > 0, never one that repeats an n-gram."""
    previous = torch.full((n_seqs,), bos, dtype=torch.long, device=_device(state))
    finished = torch.zeros_like(previous, dtype=torch.bool)
    tokens: List[Tensor] = []
    sources: List[Tensor] = []
    for _ in range(max_length):
        log_probs, state, attended = step(previous, state)
        if no_repeat_ngram_size and tokens:
            log_probs = block_repeats(log_probs, torch.stack(tokens, dim=1), no_repeat_ngram_size, eos)
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
    state: Any,
    n_seqs: int,
    bos: int,
    eos: int,
    max_length: int,
    beam_size: int,
    length_penalty: float,
    no_repeat_ngram_size: int = 0,
) -> Tuple[Tensor, Optional[Tensor]]:
    """Beam search over all sequences at once; the state has beam_size rows
    per sequence, in a row.

    A hypothesis that has produced `eos` stays in its beam, continued by `eos`
    at no cost, and competes with the others. Hypotheses are ranked by their
    log probability divided by length ** length_penalty (0: no normalisation;
    1: mean log probability per token, `eos` included). With
    no_repeat_ngram_size n > 0, no hypothesis repeats an n-gram.
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
        if no_repeat_ngram_size:
            log_probs = block_repeats(log_probs, tokens, no_repeat_ngram_size, eos)
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


def block_repeats(log_probs: Tensor, history: Tensor, n: int, eos: int) -> Tensor:
    """log_probs (rows, n_classes) with -inf for every token that would end an
    n-gram its row's history (rows, steps) already holds; `eos` stays allowed,
    so that every row can end."""
    if history.shape[1] < n:
        return log_probs
    windows = history.unfold(1, n, 1)  # (rows, steps - n + 1, n)
    prefix = history[:, history.shape[1] - n + 1 :]
    repeats = (windows[:, :, :-1] == prefix[:, None, :]).all(dim=2)
    counts = torch.zeros_like(log_probs).scatter_add_(1, windows[:, :, -1], repeats.to(log_probs.dtype))
    counts[:, eos] = 0
    return log_probs.masked_fill(counts > 0, float("-inf"))


def _device(state: Any) -> torch.device:
    if isinstance(state, Tensor):
        return state.device
    return next(_device(part) for part in state if part is not None)


def _stack(columns: List[Tensor], n_seqs: int, like: Tensor) -> Tensor:
    return torch.stack(columns, dim=1) if columns else like.new_empty((n_seqs, 0))


def select_state(state: Any, rows: Tensor) -> Any:
    """The decoder state of the given batch rows: a tensor with the batch on
    dim 1, or a (named) tuple of such tensors and Nones."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state[:, rows]
    parts = [select_state(part, rows) for part in state]
    return type(state)(*parts) if hasattr(state, "_fields") else tuple(parts)
