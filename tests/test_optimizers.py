"""spacy_rnn.LazyAdam.v1: thinc's Adam that updates only the rows of the
hashed tables (HashEmbed's E, SparseLinear's W) that a batch touched."""
import numpy
import pytest
from numpy.testing import assert_allclose
from spacy.lang.en import English
from spacy.training import Example
from spacy.util import fix_random_seed, registry
from thinc.api import Adam, Config, HashEmbed, NumpyOps

from spacy_rnn.optimizers import LazyAdam, create_lazy_adam

TEXTS = [
    ("I loved this movie", "POS"),
    ("what a great film", "POS"),
    ("wonderful acting and a fine story", "POS"),
    ("best thing I saw this year", "POS"),
    ("really good fun", "POS"),
    ("a charming and clever comedy", "POS"),
    ("I hated this movie", "NEG"),
    ("what an awful film", "NEG"),
    ("boring acting and a dull story", "NEG"),
    ("worst thing I saw this year", "NEG"),
    ("really bad", "NEG"),
    ("a tedious and silly mess", "NEG"),
]
ADAM = {"learn_rate": 0.01, "L2": 0.01, "grad_clip": 1.0, "use_averages": True}


def ensemble_config():
    return {
        "model": {
            "@architectures": "spacy_rnn.TextCatRNNEnsemble.v1",
            "exclusive_classes": True,
            "width": 8,
            "tok2vec": {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 8, "attrs": ["NORM", "SUFFIX"],
                        "rows": [500, 100]},
            "linear_model": {"@architectures": "spacy_rnn.NgramLinear.v1", "exclusive_classes": True,
                             "length": 1024},
        }
    }


def textcat_pipeline():
    fix_random_seed(0)
    nlp = English()
    nlp.add_pipe("textcat", config=ensemble_config())
    examples = [
        Example.from_dict(nlp.make_doc(text), {"cats": {"POS": float(label == "POS"), "NEG": float(label == "NEG")}})
        for text, label in TEXTS
    ]
    return nlp, examples


def hashed_node(model, layer_name):
    return next(node for node in model.walk() if node.name == layer_name)


def embed_rows(model, ids):
    """The rows of thinc's HashEmbed table that `ids` read: each id hashed
    with the layer's seed, 4 times, modulo the table's rows."""
    return numpy.unique(model.ops.hash(ids, model.attrs["seed"]) % model.get_dim("nV"))


def embed_step(model, ids, optimizer, seed):
    _, backprop = model.begin_update(ids)
    backprop(numpy.random.default_rng(seed).normal(size=(len(ids), model.get_dim("nO"))).astype("float32"))
    model.finish_update(optimizer)


@pytest.mark.parametrize("settings", [ADAM, {**ADAM, "L2_is_weight_decay": False}, {**ADAM, "use_averages": False}])
def test_untouched_rows_of_a_hash_embed_table_stay_bit_identical(settings):
    model = HashEmbed(8, 200, seed=3)
    model.initialize()
    optimizer = create_lazy_adam(**settings)
    first, second = numpy.arange(0, 10, dtype="uint64"), numpy.arange(100, 110, dtype="uint64")
    only_first = numpy.setdiff1d(embed_rows(model, first), embed_rows(model, second))
    assert len(only_first) > 10
    embed_step(model, first, optimizer, seed=0)
    before = model.get_param("E").copy()
    moments = [optimizer.mom1[(model.id, "E")].reshape(before.shape).copy(),
               optimizer.mom2[(model.id, "E")].reshape(before.shape).copy()]
    embed_step(model, second, optimizer, seed=1)
    after = model.get_param("E")
    touched = embed_rows(model, second)
    untouched = numpy.setdiff1d(numpy.arange(len(after)), touched)
    assert numpy.array_equal(after[untouched], before[untouched])
    assert (after[touched] != before[touched]).all()
    for moment, moment_before in zip((optimizer.mom1, optimizer.mom2), moments):
        assert numpy.array_equal(moment[(model.id, "E")].reshape(after.shape)[untouched], moment_before[untouched])
    # thinc's dense Adam moves the rows the first batch touched at the second step too (momentum, decay)
    dense_model = HashEmbed(8, 200, seed=3)
    dense_model.initialize()
    dense = Adam(**settings)
    embed_step(dense_model, first, dense, seed=0)
    dense_before = dense_model.get_param("E").copy()
    embed_step(dense_model, second, dense, seed=1)
    assert (dense_model.get_param("E")[only_first] != dense_before[only_first]).all()


def test_untouched_ngram_weights_stay_bit_identical():
    nlp = English()
    model = registry.resolve({"model": {"@architectures": "spacy_rnn.NgramLinear.v1", "exclusive_classes": True,
                                        "length": 4096}})["model"]
    first = [nlp.make_doc(text) for text, _ in TEXTS[:6]]
    second = [nlp.make_doc(text) for text, _ in TEXTS[6:]]
    model.initialize(X=first, Y=numpy.zeros((6, 2), dtype="float32"))
    linear = hashed_node(model, "sparse_linear")
    optimizer = create_lazy_adam(**ADAM)
    touched_before = None
    for seed, docs in enumerate((first, second)):
        _, backprop = model.begin_update(docs)
        backprop(numpy.random.default_rng(seed).normal(size=(len(docs), 2)).astype("float32"))
        touched = linear.get_grad("W") != 0
        before = linear.get_param("W").copy()
        model.finish_update(optimizer)
        after = linear.get_param("W")
        assert 0 < touched.sum() < 0.1 * touched.size
        assert numpy.array_equal(after[~touched], before[~touched])
        assert (after[touched] != before[touched]).all()
        if touched_before is not None:  # among the weights left alone, many the first batch moved
            assert (touched_before & ~touched).sum() > 10
        touched_before = touched


@pytest.mark.parametrize(
    "settings",
    [
        {"L2": 0.0, "grad_clip": 0.0},
        {"L2": 0.01, "grad_clip": 0.0},
        {"L2": 0.01, "L2_is_weight_decay": False, "grad_clip": 0.0},
        {"L2": 0.0, "grad_clip": 0.5},
        {"L2": 0.1, "L2_is_weight_decay": False, "grad_clip": 0.5},
        {"L2": 0.1, "grad_clip": 0.5, "learn_rate": [0.02, 0.01, 0.005, 0.001]},
    ],
)
def test_lazy_adam_equals_thincs_adam_where_every_row_is_touched(settings):
    settings = {"learn_rate": 0.01, "use_averages": True, **settings}
    lazy, dense = create_lazy_adam(**settings), Adam(**settings)
    rng = numpy.random.default_rng(0)
    shapes = {(1, "E"): (30, 8), (2, "W"): (200,), (3, "dense"): (5, 4)}
    start = {key: rng.normal(size=shape) for key, shape in shapes.items()}
    lazy_weights = {key: weights.astype("float32") for key, weights in start.items()}
    dense_weights = {key: weights.copy() for key, weights in lazy_weights.items()}
    for _ in range(6):
        for key in start:
            gradient = rng.normal(size=start[key].shape).astype("float32")
            lazy_weights[key], _ = lazy(key, lazy_weights[key], gradient.copy())
            dense_weights[key], _ = dense(key, dense_weights[key], gradient.copy())
        lazy.step_schedules()
        dense.step_schedules()
    assert lazy.learn_rate == dense.learn_rate
    for key in start:
        assert not numpy.allclose(lazy_weights[key], start[key])
        assert_allclose(lazy_weights[key], dense_weights[key], rtol=1e-6, atol=0)
        assert_allclose(lazy.mom1[key], dense.mom1[key], rtol=1e-6, atol=0)
        assert_allclose(lazy.mom2[key], dense.mom2[key], rtol=1e-6, atol=0)
        assert_allclose(lazy.averages[key], dense.averages[key], rtol=1e-6, atol=0)


def test_averages_are_thincs_averages_of_the_weights():
    """thinc's averaging of every row at every step, computed lazily: an
    untouched row's average moves toward its unchanged weights."""
    ops = NumpyOps()
    optimizer = create_lazy_adam(**ADAM)
    rng = numpy.random.default_rng(0)
    weights = rng.normal(size=(40, 8)).astype("float32")
    expected = numpy.zeros_like(weights)
    for step in range(1, 26):
        gradient = numpy.zeros_like(weights)
        rows = rng.choice(40, size=4, replace=False) if step < 20 else []
        gradient[rows] = rng.normal(size=(len(rows), 8))
        weights, _ = optimizer((1, "E"), weights, gradient)
        ops.update_averages(expected, weights, step)
    average = optimizer.averages[(1, "E")]
    assert_allclose(average, expected, rtol=1e-5, atol=1e-6)
    assert not numpy.allclose(expected, weights, rtol=1e-3, atol=1e-4)


def test_lazy_adam_resolves_from_a_config_with_a_schedule():
    config = Config().from_str(
        """
        [training]

        [training.optimizer]
        @optimizers = "spacy_rnn.LazyAdam.v1"
        L2 = 0.01
        grad_clip = 1.0
        use_averages = true
        lazy_params = ["E"]

        [training.optimizer.learn_rate]
        @schedules = "warmup_linear.v1"
        warmup_steps = 10
        total_steps = 100
        initial_rate = 0.01
        """
    )
    optimizer = registry.resolve(config)["training"]["optimizer"]
    assert isinstance(optimizer, LazyAdam)
    assert optimizer.lazy_params == {"E"} and optimizer.L2 == 0.01 and optimizer.averages is not None
    first_rate = optimizer.learn_rate
    optimizer.step_schedules()
    assert optimizer.learn_rate > first_rate


def test_a_textcat_ensemble_trains_with_lazy_adam():
    nlp, examples = textcat_pipeline()
    optimizer = nlp.initialize(lambda: examples, sgd=create_lazy_adam(**ADAM))
    model = nlp.get_pipe("textcat").model
    losses = []
    for _ in range(30):
        step_losses = {}
        nlp.update(examples, sgd=optimizer, losses=step_losses, drop=0.0)
        losses.append(step_losses["textcat"])
    assert losses[-1] < 0.2 * losses[0]
    table = hashed_node(model, "hashembed")
    key = (table.id, "E")
    trained = table.get_param("E").copy()
    with nlp.use_params(optimizer.averages):
        assert numpy.array_equal(table.get_param("E"), optimizer.averages[key])
        assert not numpy.allclose(table.get_param("E"), trained)
        predicted = [doc.cats["POS"] > 0.5 for doc in nlp.pipe([text for text, _ in TEXTS])]
        assert predicted == [label == "POS" for _, label in TEXTS]
    assert numpy.array_equal(table.get_param("E"), trained)


def test_parameters_not_named_lazy_get_thincs_dense_update():
    """A torch module's weights, keyed by their dotted names, get thinc's
    Adam, whose moments move rows that have no gradient at a step."""
    key = (7, "rnn.weight_ih_l0")
    lazy, dense = create_lazy_adam(**ADAM), Adam(**ADAM)
    rng = numpy.random.default_rng(0)
    lazy_weights = rng.normal(size=(6, 4)).astype("float32")
    dense_weights = lazy_weights.copy()
    for step in range(3):
        gradient = rng.normal(size=(6, 4)).astype("float32")
        gradient[:3] *= step == 0
        before = lazy_weights.copy()
        lazy_weights, _ = lazy(key, lazy_weights, gradient.copy())
        dense_weights, _ = dense(key, dense_weights, gradient.copy())
        assert (lazy_weights[:3] != before[:3]).all()
    assert_allclose(lazy_weights, dense_weights, rtol=1e-6, atol=0)


def test_the_rnn_trains_alike_with_lazy_and_dense_adam():
    """Trained on one batch, whose hashed rows both optimizers update alike,
    the RNN's torch weights end up the same with LazyAdam and thinc's Adam,
    while the hashed rows the batch did not touch differ (thinc's weight decay
    shrinks them)."""
    models = []
    for optimizer in (create_lazy_adam(**ADAM), Adam(**ADAM)):
        nlp, examples = textcat_pipeline()
        optimizer = nlp.initialize(lambda: examples, sgd=optimizer)
        for _ in range(3):
            nlp.update(examples, sgd=optimizer, drop=0.0)
        models.append(nlp.get_pipe("textcat").model)
    lazy_rnn, dense_rnn = (
        [(name, parameter.detach().numpy()) for node in model.walk() for shim in node.shims
         for name, parameter in shim._model.named_parameters()]
        for model in models
    )
    assert [name for name, _ in lazy_rnn] == [name for name, _ in dense_rnn] and lazy_rnn
    for (name, lazy_weights), (_, dense_weights) in zip(lazy_rnn, dense_rnn):
        assert_allclose(lazy_weights, dense_weights, rtol=1e-5, atol=1e-7, err_msg=name)
    lazy_table, dense_table = (hashed_node(model, "hashembed").get_param("E") for model in models)
    assert not numpy.allclose(lazy_table, dense_table)
