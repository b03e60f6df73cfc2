"""Language-model heads over the states of a recurrent encoder, for pretraining it.

Plain torch, no spaCy. The forward half of the state at token t predicts
token t+1, the backward half predicts token t-1 (ELMo's bidirectional
language model): each half has read only the tokens on its own side, so no
state sees the token it predicts. Past either end of a sequence the target
is the BOUNDARY class. Classes are ids: BOUNDARY, UNKNOWN (a word outside the
word list), then the word list, most frequent first, as
`torch.nn.AdaptiveLogSoftmaxWithLoss` expects.
"""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

BOUNDARY = 0
UNKNOWN = 1
N_SPECIAL = 2  # classes before the word list


def neighbour_targets(ids: Tensor, lengths: Sequence[int]) -> Tuple[Tensor, Tensor]:
    """For each token of a flat batch of sequences, the id of the next token
    and of the previous one in its own sequence (BOUNDARY past either end)."""
    lengths_t = torch.as_tensor(list(lengths), dtype=torch.long, device=ids.device)
    lengths_t = lengths_t[lengths_t > 0]
    ends = torch.cumsum(lengths_t, 0)
    following = torch.roll(ids, -1).index_fill(0, ends - 1, BOUNDARY)
    preceding = torch.roll(ids, 1).index_fill(0, ends - lengths_t, BOUNDARY)
    return following, preceding


def adaptive_cutoffs(n_classes: int, cutoffs: Sequence[int]) -> List[int]:
    """The cutoffs that fall inside n_classes; if none does, one cutoff at
    half the classes (AdaptiveLogSoftmaxWithLoss needs at least one)."""
    return [cutoff for cutoff in cutoffs if cutoff < n_classes] or [max(1, n_classes // 2)]


class AdaptiveLogSoftmax(nn.AdaptiveLogSoftmaxWithLoss):
    """torch's adaptive softmax (the same weights, saved under the same
    names) with a `log_likelihood` that also works under bf16 autocast: the
    head's and clusters' products may run in bf16, their log-softmax and
    the sum of a word's head and in-cluster log-probabilities run in fp32."""

    def log_likelihood(self, input: Tensor, target: Tensor) -> Tensor:
        """log P(target) of each row of input (n, in_features), (n,)."""
        head_logprob = torch.log_softmax(self.head(input).float(), dim=1)
        cluster = torch.bucketize(target, torch.as_tensor(self.cutoffs, device=target.device), right=True)
        head_column = torch.where(cluster == 0, target, self.shortlist_size + cluster - 1)
        loglik = head_logprob.gather(1, head_column[:, None]).squeeze(1)
        for index, (low, high) in enumerate(zip(self.cutoffs, self.cutoffs[1:])):
            rows = ((target >= low) & (target < high)).nonzero().squeeze(1)
            if len(rows):
                cluster_logprob = torch.log_softmax(self.tail[index](input[rows]).float(), dim=1)
                in_cluster = cluster_logprob.gather(1, (target[rows] - low)[:, None]).squeeze(1)
                loglik = loglik.index_add(0, rows, in_cluster)
        return loglik


class BiLMHeads(nn.Module):
    """One adaptive softmax per direction over states (n_tokens, nI) whose
    first half is the forward direction's and second half the backward's
    (the whole state for one direction): (states, lengths, ids) -> the
    log-likelihood of each token's targets, (n_tokens, directions), column 0
    the next token, column 1 the previous one."""

    def __init__(
        self, nI: int, n_classes: int, bidirectional: bool, cutoffs: Sequence[int] = (2000, 10000),
        div_value: float = 4.0,
    ):
        super().__init__()
        directions = 2 if bidirectional else 1
        self.heads = nn.ModuleList(
            AdaptiveLogSoftmax(
                nI // directions, n_classes, adaptive_cutoffs(n_classes, cutoffs), div_value=div_value, head_bias=True
            )
            for _ in range(directions)
        )

    def forward(self, states: Tensor, lengths: Sequence[int], ids: Tensor) -> Tensor:
        halves = states.chunk(len(self.heads), dim=1)
        targets = neighbour_targets(ids, lengths)
        return torch.stack(
            [head.log_likelihood(half, target) for head, half, target in zip(self.heads, halves, targets)], 1
        )
