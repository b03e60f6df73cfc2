"""The GPU path (spacy.require_gpu / `spacy train --gpu-id 0`): torch modules
live on the GPU, train there, and predict what the CPU predicts. Skipped
without a CUDA GPU and cupy (thinc's GPU arrays)."""
import pytest
import spacy
import torch
from spacy.lang.en import English

from spacy_rnn.nn.recurrent import RecurrentEncoder
from test_ensemble import ensemble_config
from test_recurrent import states_and_gradients
from test_textcat import TRAIN, exclusive_examples, textcat_config, train
from tiny_pipeline import TEXTS, make_pipeline

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@pytest.fixture
def on_gpu():
    pytest.importorskip("cupy", reason="spacy.require_gpu needs cupy")
    spacy.require_gpu(0)
    yield
    spacy.require_cpu()


def torch_devices(nlp):
    """The devices of every torch parameter in the pipeline."""
    return {
        str(parameter.device)
        for _, component in nlp.pipeline
        for node in component.model.walk()
        for shim in node.shims
        for parameter in shim.module.parameters()
    }


@pytest.fixture(scope="module")
def saved_on_cpu(tmp_path_factory):
    """A pipeline trained and saved on the CPU, and its CPU predictions."""
    path = tmp_path_factory.mktemp("gpu") / "pipeline"
    make_pipeline().to_disk(path)
    docs = list(spacy.load(path).pipe(TEXTS, batch_size=16))
    return path, [(doc.cats, doc._.generated) for doc in docs]


def test_a_pipeline_saved_on_cpu_predicts_the_same_on_the_gpu(saved_on_cpu, on_gpu):
    path, expected = saved_on_cpu
    nlp = spacy.load(path)
    assert torch_devices(nlp) == {"cuda:0"}
    for doc, (cats, generated) in zip(nlp.pipe(TEXTS, batch_size=16), expected):
        assert doc.cats == pytest.approx(cats, abs=1e-4)
        assert doc._.generated == generated


@pytest.mark.parametrize(
    "config",
    [
        textcat_config("lstm"),
        textcat_config("gru", pooling=["attention"]),
        textcat_config("rnn", activation="sigmoid", pooling=["mean", "last"]),  # our own BPTT loop
        ensemble_config(),
    ],
    ids=["lstm", "gru", "elman-sigmoid", "ensemble"],
)
def test_textcat_learns_on_the_gpu_and_reloads_there(config, on_gpu, tmp_path, recwarn):
    nlp = English()
    nlp.add_pipe("textcat", config=config)
    losses = train(nlp, exclusive_examples(nlp), steps=60)
    assert torch_devices(nlp) == {"cuda:0"}
    # updates keep cuDNN's single weight buffer (else torch copies the weights at every call, and warns)
    assert not [w for w in recwarn if "contiguous chunk of memory" in str(w.message)]
    assert losses["textcat"] < 0.05
    for text, label in TRAIN:
        cats = nlp(text).cats
        assert max(cats, key=cats.get) == label, (text, cats)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    for text, _ in TRAIN:
        assert loaded(text).cats == pytest.approx(nlp(text).cats, abs=1e-5)


def test_trained_on_the_gpu_pipeline_makes_titles(on_gpu):
    nlp = make_pipeline()  # initialized and updated on the GPU
    assert torch_devices(nlp) == {"cuda:0"}
    docs = list(nlp.pipe(TEXTS[:20]))
    assert all(isinstance(doc._.generated, str) for doc in docs)


@pytest.mark.parametrize(
    "cell,activation", [("lstm", "sigmoid"), ("gru", "sigmoid"), ("rnn", "sigmoid"), ("rnn", "tanh")]
)
def test_the_encoder_gives_the_same_states_and_gradients_on_both_devices(cell, activation):
    torch.manual_seed(0)
    lengths = [5, 0, 17, 1, 9, 17, 3]
    encoder = RecurrentEncoder(6, 8, cell=cell, bidirectional=True, depth=2, activation=activation)
    flat = torch.randn(sum(lengths), 6)
    results = [states_and_gradients(encoder.to(device), flat.to(device), lengths) for device in ("cpu", "cuda")]
    # cuDNN's LSTM/GRU/tanh kernels use TF32 by default (10-bit mantissa): measured on an H200, states and
    # gradients differ from the CPU's by at most 5.3e-4 here. A wrong chunk or direction would differ by ~0.1.
    for on_cpu, on_gpu in zip(*results):
        torch.testing.assert_close(on_gpu, on_cpu, atol=2e-3, rtol=2e-3)
