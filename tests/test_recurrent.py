"""The recurrent layers: shapes, gradients, padding invariance, empty Docs,
parameter counts, and the sigmoid Elman cell against its equation."""
import itertools

import numpy
import pytest
import torch
from thinc.api import fix_random_seed

from spacy_rnn.architectures.textcat import build_textcat_rnn
from spacy_rnn.architectures.tok2vec import build_rnn_encoder
from spacy_rnn.nn import recurrent
from spacy_rnn.nn.recurrent import PooledRecurrentEncoder, RecurrentEncoder, count_parameters
from spacy_rnn.threads import concurrent_directions

CELLS = [("rnn", "sigmoid"), ("rnn", "tanh"), ("lstm", "sigmoid"), ("gru", "sigmoid")]
LENGTHS = [3, 0, 11, 1, 5]  # uneven, with an empty Doc


def random_docs(lengths, width=6, seed=0):
    rng = numpy.random.default_rng(seed)
    return [rng.normal(size=(n, width)).astype("float32") for n in lengths]


@pytest.mark.parametrize("cell,activation", CELLS)
@pytest.mark.parametrize("bidirectional,depth", list(itertools.product([False, True], [1, 2])))
def test_encoder_shapes_and_gradients(cell, activation, bidirectional, depth):
    fix_random_seed(0)
    model = build_rnn_encoder(8, depth=depth, cell=cell, bidirectional=bidirectional, activation=activation)
    Xs = random_docs(LENGTHS)
    model.initialize(X=Xs)
    Ys, backprop = model.begin_update(Xs)
    assert [y.shape for y in Ys] == [(n, 8) for n in LENGTHS]
    dXs = backprop([numpy.ones_like(y) for y in Ys])
    assert [dx.shape for dx in dXs] == [x.shape for x in Xs]
    assert all(numpy.abs(dx).sum() > 0 for dx in dXs if len(dx))
    assert all(numpy.isfinite(y).all() for y in Ys)


@pytest.mark.parametrize("cell,activation", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_output_does_not_depend_on_the_batch(cell, activation, bidirectional):
    fix_random_seed(0)
    model = build_rnn_encoder(8, depth=2, cell=cell, bidirectional=bidirectional, activation=activation)
    short, long_doc = random_docs([4, 300], seed=1)
    model.initialize(X=[short, long_doc])
    alone = model.predict([short])[0]
    for batch in ([short, long_doc], [long_doc, short], [long_doc, numpy.zeros((0, 6), "f"), short]):
        batched = [y for x, y in zip(batch, model.predict(batch)) if x is short][0]
        numpy.testing.assert_allclose(batched, alone, atol=1e-5)


@pytest.mark.parametrize("pooling", [["last"], ["mean"], ["max"], ["attention"], ["max", "last", "mean", "attention"]])
def test_pooling_does_not_depend_on_the_batch(pooling):
    torch.manual_seed(0)
    module = PooledRecurrentEncoder(6, 8, pooling=pooling, cell="lstm", bidirectional=True)
    xs = [torch.randn(n, 6) for n in (4, 300)]
    alone = module(xs[0], [4])[0]
    batched = module(torch.cat(xs), [4, 300])[0]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)


def test_empty_docs_get_zero_vectors():
    module = PooledRecurrentEncoder(6, 8, pooling=["last", "mean", "max", "attention"], cell="gru")
    pooled = module(torch.randn(5, 6), [0, 5, 0])
    assert pooled.shape == (3, 32)
    assert torch.all(pooled[0] == 0) and torch.all(pooled[2] == 0)
    assert torch.any(pooled[1] != 0)
    states, final = RecurrentEncoder(6, 8)(torch.zeros(0, 6), [0, 0])
    assert states.shape == (0, 8) and final.shape == (2, 8) and torch.all(final == 0)


def test_textcat_model_on_empty_batch_and_empty_docs():
    from spacy.lang.en import English

    nlp = English()
    model = build_textcat_rnn(_tiny_embed(), exclusive_classes=True, width=8, nO=3)
    docs = [nlp.make_doc(""), nlp.make_doc("a few words"), nlp.make_doc("")]
    model.initialize(X=docs)
    scores = model.predict(docs)
    assert scores.shape == (3, 3)
    numpy.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    numpy.testing.assert_allclose(scores[0], scores[2])


def _tiny_embed():
    from spacy.ml.models import MultiHashEmbed

    return MultiHashEmbed(width=6, attrs=["NORM"], rows=[100], include_static_vectors=False)


# Parameter counts. The design notes' formula is N·d + N² + N per gate
# (W, U, b). PyTorch's fused kernels keep two biases (b_ih, b_hh): N·d + N² + 2N
# per gate. Our sigmoid Elman cell has a single bias, as in the equation.
D, N = 10, 7


def per_gate(d, n, biases):
    return n * d + n * n + biases * n


@pytest.mark.parametrize(
    "cell,activation,gates,biases",
    [("rnn", "sigmoid", 1, 1), ("rnn", "tanh", 1, 2), ("lstm", "sigmoid", 4, 2), ("gru", "sigmoid", 3, 2)],
)
def test_parameter_counts(cell, activation, gates, biases):
    one_layer = RecurrentEncoder(D, N, cell=cell, activation=activation)
    assert count_parameters(one_layer) == gates * per_gate(D, N, biases)
    stacked_bidi = RecurrentEncoder(D, 2 * N, cell=cell, depth=2, bidirectional=True, activation=activation)
    expected = 2 * gates * (per_gate(D, N, biases) + per_gate(2 * N, N, biases))
    assert count_parameters(stacked_bidi) == expected


def test_sigmoid_elman_follows_its_equation():
    torch.manual_seed(0)
    encoder = RecurrentEncoder(3, 8, cell="rnn", bidirectional=True)
    lengths = [5, 2]
    xs = [torch.randn(n, 3) for n in lengths]
    states, final = encoder(torch.cat(xs), lengths)
    forward_layer, backward_layer = encoder.layers[0]

    def reference(layer, seq):
        W, b, U = layer.input.weight, layer.input.bias, layer.recurrent.weight
        h, out = torch.zeros(4), []
        for x in seq:
            h = torch.sigmoid(W @ x + U @ h + b)
            out.append(h)
        return torch.stack(out)

    for i, x in enumerate(xs):
        fwd = reference(forward_layer, x)
        bwd = reference(backward_layer, x.flip(0)).flip(0)
        expected = torch.cat([fwd, bwd], dim=1)
        start = sum(lengths[:i])
        torch.testing.assert_close(states[start : start + len(x)], expected)
        torch.testing.assert_close(final[i], torch.cat([fwd[-1], bwd[0]]))


def test_tanh_elman_matches_torch_rnn_with_the_same_weights():
    torch.manual_seed(0)
    ours = RecurrentEncoder(3, 4, cell="rnn", activation="sigmoid")
    theirs = RecurrentEncoder(3, 4, cell="rnn", activation="tanh")
    ours.layers[0][0].activation = "tanh"
    elman, fused = ours.layers[0][0], theirs.layers[0][0].rnn
    with torch.no_grad():
        fused.weight_ih_l0.copy_(elman.input.weight)
        fused.bias_ih_l0.copy_(elman.input.bias)
        fused.weight_hh_l0.copy_(elman.recurrent.weight)
        fused.bias_hh_l0.zero_()
    x = torch.randn(6, 3)
    for got, want in zip(ours(x, [4, 2]), theirs(x, [4, 2])):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_elman_backpropagation_through_time_matches_numerical_gradients(activation):
    from spacy_rnn.nn.recurrent import ElmanRecurrence

    torch.manual_seed(0)
    projected = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    weight_t = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, w: ElmanRecurrence.apply(p, w, activation), (projected, weight_t))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_chunk_size_changes_neither_states_nor_gradients(cell, monkeypatch):
    """CPU chunks of 16 sequences and one GPU-sized chunk per batch give the
    same states, final states and gradients."""
    torch.manual_seed(0)
    lengths = [5, 0, 17, 1, 9, 17, 3] * 5
    encoder = RecurrentEncoder(6, 8, cell=cell, bidirectional=True, depth=2)
    flat = torch.randn(sum(lengths), 6)
    results = []
    for chunk_size in (recurrent.CHUNK_SIZE, recurrent.GPU_CHUNK_SIZE):
        monkeypatch.setattr(recurrent, "CHUNK_SIZE", chunk_size)
        results.append(states_and_gradients(encoder, flat, lengths))
    for small_chunks, one_chunk in zip(*results):
        torch.testing.assert_close(one_chunk, small_chunks, atol=1e-5, rtol=1e-5)


def states_and_gradients(encoder, flat, lengths):
    """The encoder's states and final states, and the gradients of a fixed
    loss on them with respect to its input and each parameter, as CPU copies."""
    encoder.zero_grad()
    inputs = flat.detach().clone().requires_grad_()
    states, finals = encoder(inputs, lengths)
    (states.square().sum() + finals.sum()).backward()
    return [t.detach().cpu().clone() for t in (states, finals, inputs.grad, *(p.grad for p in encoder.parameters()))]


@pytest.mark.parametrize("cell,activation", [("lstm", "sigmoid"), ("gru", "sigmoid"), ("rnn", "sigmoid"), ("rnn", "tanh")])
def test_concurrent_directions_change_neither_states_nor_gradients(cell, activation):
    """Both directions at once (the backward one on a second thread, forward
    and backward pass) give what one direction after the other gives, and so
    does inference without gradients."""
    torch.manual_seed(0)
    lengths = [5, 0, 17, 1, 9, 17, 3] * 3
    encoder = RecurrentEncoder(6, 8, cell=cell, activation=activation, bidirectional=True, depth=2)
    flat = torch.randn(sum(lengths), 6)
    results = []
    for allowed in (False, True):
        with concurrent_directions(allowed):
            results.append(states_and_gradients(encoder, flat, lengths))
            with torch.no_grad():
                results.append([t.clone() for t in encoder(flat, lengths)])
    for one_after_the_other, at_once in zip(results[0] + results[1], results[2] + results[3]):
        torch.testing.assert_close(at_once, one_after_the_other, atol=1e-6, rtol=1e-6)
