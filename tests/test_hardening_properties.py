"""Property tests of the RNN layers: for any Doc lengths (empty ones
included) and any batch composition or order, each Doc gets the output it
gets alone; a Doc longer than max_length is read as independent windows
(RNNEncoder) or cut (pooled)."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from thinc.api import fix_random_seed

from spacy_rnn.layers.rnn import PooledRNN, RNNStates

WIDTH_IN = 5
CELLS = [("lstm", "sigmoid"), ("gru", "sigmoid"), ("rnn", "sigmoid"), ("rnn", "tanh")]
MAX_LENGTH = 9
lengths_strategy = st.lists(st.integers(0, 25), min_size=1, max_size=7)


def initialized(layer):
    fix_random_seed(0)
    layer.initialize(X=[numpy.zeros((3, WIDTH_IN), dtype="f")])
    return layer


@pytest.fixture(scope="module", params=CELLS, ids=["-".join(cell) for cell in CELLS])
def layers(request):
    cell, activation = request.param
    settings_ = dict(cell=cell, activation=activation, bidirectional=True, depth=2)
    states = initialized(RNNStates(8, max_length=MAX_LENGTH, **settings_))
    pooled = initialized(PooledRNN(8, ["last", "mean", "max", "attention"], max_length=MAX_LENGTH, **settings_))
    return states, pooled


def docs_for(lengths, seed):
    rng = numpy.random.default_rng(seed)
    return [rng.normal(size=(n, WIDTH_IN)).astype("f") for n in lengths]


@settings(max_examples=25, deadline=None)
@given(lengths=lengths_strategy, seed=st.integers(0, 2**16), data=st.data())
def test_any_batch_gives_each_doc_its_own_output(layers, lengths, seed, data):
    states_layer, pooled_layer = layers
    docs = docs_for(lengths, seed)
    order = data.draw(st.permutations(range(len(docs))))
    batch = [docs[i] for i in order]
    states = states_layer.predict(batch)
    pooled = pooled_layer.predict(batch)
    for position, i in enumerate(order):
        alone_states = states_layer.predict([docs[i]])[0]
        assert states[position].shape == (lengths[i], 8)
        numpy.testing.assert_allclose(states[position], alone_states, atol=1e-5)
        numpy.testing.assert_allclose(pooled[position], pooled_layer.predict([docs[i]])[0], atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(length=st.integers(MAX_LENGTH + 1, 4 * MAX_LENGTH), seed=st.integers(0, 2**16))
def test_long_docs_are_windowed_or_cut_at_max_length(layers, length, seed):
    states_layer, pooled_layer = layers
    (doc,) = docs_for([length], seed)
    windows = [doc[start : start + MAX_LENGTH] for start in range(0, length, MAX_LENGTH)]
    expected = numpy.concatenate([states_layer.predict([window])[0] for window in windows])
    numpy.testing.assert_allclose(states_layer.predict([doc])[0], expected, atol=1e-5)
    numpy.testing.assert_allclose(pooled_layer.predict([doc]), pooled_layer.predict([doc[:MAX_LENGTH]]), atol=1e-6)


def test_gradient_of_a_cut_doc_is_zero_past_max_length(layers):
    _, pooled_layer = layers
    docs = docs_for([MAX_LENGTH + 4, 3], 0)
    pooled, backprop = pooled_layer.begin_update(docs)
    d_docs = backprop(numpy.ones_like(pooled))
    assert [d.shape for d in d_docs] == [d.shape for d in docs]
    assert numpy.abs(d_docs[0][:MAX_LENGTH]).sum() > 0 and not d_docs[0][MAX_LENGTH:].any()
