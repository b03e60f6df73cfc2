"""Greedy and beam search on hand-made next-token tables, independent of any
trained model: the step function's state is the previous token. Also n-gram
blocking (no_repeat_ngram_size)."""
import itertools
import math

import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_rnn.nn.search import beam_search, block_repeats, greedy_search

BOS, EOS = 0, 1


def markov_step(tables):
    """A step function for a batch whose row i follows tables[i // rows_per_table]:
    the log probability of the next token given the previous one."""
    log_tables = torch.log(torch.as_tensor(tables, dtype=torch.float32))

    def step(previous, state):
        table_index = state[0]  # (rows,) which table each row follows
        return log_tables[table_index, previous], state, None

    return step


def search(tables, beam_size, max_length, length_penalty=0.0, no_repeat_ngram_size=0):
    n_seqs = len(tables)
    if beam_size == 1:
        state = torch.arange(n_seqs)[None]
        tokens, _ = greedy_search(markov_step(tables), state, n_seqs, BOS, EOS, max_length, no_repeat_ngram_size)
    else:
        state = torch.arange(n_seqs).repeat_interleave(beam_size)[None]
        tokens, _ = beam_search(
            markov_step(tables), state, n_seqs, BOS, EOS, max_length, beam_size, length_penalty, no_repeat_ngram_size
        )
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


def ngrams(row, n):
    return [tuple(row[i : i + n]) for i in range(len(row) - n + 1)]


def test_block_repeats_bans_the_token_that_would_repeat_an_ngram():
    history = torch.tensor([[2, 3, 2], [2, 3, 4], [2, 3, 2]])
    log_probs = torch.zeros(3, 5)
    blocked = block_repeats(log_probs, history, 2, EOS)  # "3 2" then ... "2 3" was seen: 3 may not follow 2
    assert blocked[0].tolist() == [0, 0, 0, float("-inf"), 0]
    assert blocked[1].tolist() == [0] * 5
    assert block_repeats(log_probs, history, 4, EOS).tolist() == log_probs.tolist()  # no 4-gram seen yet
    eos_loop = block_repeats(log_probs, torch.tensor([[EOS, EOS]]), 1, EOS)
    assert eos_loop[0, EOS] == 0  # the end stays allowed


# From BOS: A 0.9; A -> B 0.9, B -> A 0.9, EOS 0.1 after each: the best
# outputs cycle "A B A B A ...", which repeats trigrams.
CYCLE = [
    [0.0, 0.1, 0.9, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.1, 0.0, 0.9],
    [0.0, 0.1, 0.9, 0.0],
]


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_blocked_search_never_repeats_a_trigram(beam_size, length_penalty):
    (free,) = search([CYCLE], beam_size, max_length=8, length_penalty=length_penalty)
    if length_penalty:  # the cycle wins by mean log probability
        assert len(set(ngrams(free, 3))) < len(ngrams(free, 3))
    (blocked,) = search([CYCLE], beam_size, max_length=8, length_penalty=length_penalty, no_repeat_ngram_size=3)
    assert len(set(ngrams(blocked, 3))) == len(ngrams(blocked, 3))
    # After "A B A B", A would repeat "A B A": the end comes instead. Ranked by
    # total log probability, the beam prefers ending at once (0.1 > 0.9⁴ · 0.1).
    assert blocked == ([EOS] if beam_size > 1 and not length_penalty else [2, 3, 2, 3, EOS])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0.05, 1.0), min_size=36, max_size=36),
    st.sampled_from([1, 2, 4]),
    st.sampled_from([0.0, 1.0]),
    st.sampled_from([2, 3]),
)
def test_no_output_repeats_an_ngram(weights, beam_size, length_penalty, n):
    table = numpy.asarray(weights).reshape(6, 6)
    table[:, BOS] = 0.0
    table /= table.sum(axis=1, keepdims=True)
    (found,) = search([table.tolist()], beam_size, max_length=10, length_penalty=length_penalty,
                      no_repeat_ngram_size=n)
    assert len(set(ngrams(found, n))) == len(ngrams(found, n))
