"""Greedy and beam search on hand-made next-token tables, independent of any
trained model: the step function's state is the previous token."""
import itertools
import math

import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_rnn.nn.seq2seq import beam_search, greedy_search

BOS, EOS = 0, 1


def markov_step(tables):
    """A step function for a batch whose row i follows tables[i // rows_per_table]:
    the log probability of the next token given the previous one."""
    log_tables = torch.log(torch.as_tensor(tables, dtype=torch.float32))

    def step(previous, state):
        table_index = state[0]  # (rows,) which table each row follows
        return log_tables[table_index, previous], state, None

    return step


def search(tables, beam_size, max_length, length_penalty=0.0):
    n_seqs = len(tables)
    if beam_size == 1:
        state = torch.arange(n_seqs)[None]
        tokens, _ = greedy_search(markov_step(tables), state, n_seqs, BOS, EOS, max_length)
    else:
        state = torch.arange(n_seqs).repeat_interleave(beam_size)[None]
        tokens, _ = beam_search(markov_step(tables), state, n_seqs, BOS, EOS, max_length, beam_size, length_penalty)
    return [cut(row) for row in tokens.tolist()]


def cut(row):
    return row[: row.index(EOS) + 1] if EOS in row else row


# Tokens: 0 BOS, 1 EOS, 2 A, 3 B. From BOS: A 0.6, B 0.4. After A: EOS 0.5, A 0.5.
# After B: EOS 1.0. Greedy takes A (then at best 0.3); B EOS has probability 0.4.
TRAP = [
    [0.0, 0.0, 0.6, 0.4],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.5, 0.5, 0.0],
    [0.0, 1.0, 0.0, 0.0],
]


def test_beam_finds_what_greedy_misses():
    assert search([TRAP], beam_size=1, max_length=5) == [[2, 1]]
    assert search([TRAP], beam_size=2, max_length=5) == [[3, 1]]


def test_length_penalty_decides_between_short_and_long():
    # From BOS: EOS 0.45, A 0.55; after A: B 0.8, EOS 0.2; after B: EOS 0.8, A 0.2.
    table = [
        [0.0, 0.45, 0.55, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.2, 0.0, 0.8],
        [0.0, 0.8, 0.2, 0.0],
    ]
    # Total log probability: "EOS" (0.45) beats "A B EOS" (0.352).
    assert search([table], beam_size=3, max_length=4, length_penalty=0.0) == [[1]]
    # Mean per token: "A B EOS" has 0.352 ** (1/3) ≈ 0.71 > 0.45.
    assert search([table], beam_size=3, max_length=4, length_penalty=1.0) == [[2, 3, 1]]


def test_batch_rows_are_searched_independently():
    other = [
        [0.0, 0.1, 0.2, 0.7],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.2, 0.8, 0.0],
    ]
    for beam_size in (1, 2, 3):
        together = search([TRAP, other], beam_size, max_length=5)
        assert together == search([TRAP], beam_size, max_length=5) + search([other], beam_size, max_length=5)


def test_max_length_stops_an_output_without_eos():
    loop = [
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
    ]
    assert search([loop], beam_size=1, max_length=3) == [[2, 2, 2]]
    assert search([loop], beam_size=2, max_length=3) == [[2, 2, 2]]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.05, 1.0), min_size=16, max_size=16), st.sampled_from([0.0, 1.0]))
def test_a_wide_beam_finds_the_best_output(weights, length_penalty):
    """With room for every output of up to 3 tokens, the beam returns the
    best one by the same ranking, found by enumeration."""
    table = numpy.asarray(weights).reshape(4, 4)
    table[:, BOS] = 0.0
    table /= table.sum(axis=1, keepdims=True)
    max_length = 3

    def score(output):
        log_prob = sum(math.log(table[a, b]) for a, b in zip([BOS] + output, output))
        return log_prob / len(output) ** length_penalty

    # Outputs end at their first EOS, or run to max_length without one.
    outputs = [list(o) for n in range(1, max_length + 1) for o in itertools.product([1, 2, 3], repeat=n)]
    outputs = [o for o in outputs if EOS not in o[:-1] and (o[-1] == EOS or len(o) == max_length)]
    best = max(outputs, key=score)
    (found,) = search([table.tolist()], beam_size=27, max_length=max_length, length_penalty=length_penalty)
    assert score(found) == pytest.approx(score(best), rel=1e-4)
