"""bf16 mixed precision on the CPU (spacy_rnn.precision): detection and
fallback, every cell forward and backward under forced bf16, training,
pretraining and rnn_seq2seq under it, the config callback, and fp32 left as
it was when it is off. This machine may lack native bf16: forced on, torch
emulates it, which is slow but computes the same."""
import logging
import random

import numpy
import pytest
import spacy
import torch
from spacy.training import Example
from spacy.training.pretrain import make_update
from spacy.util import load_config_from_str, load_model_from_config, registry
from thinc.api import Adam, ArgsKwargs, fix_random_seed

from spacy_rnn import precision, set_target
from spacy_rnn.layers.shims import TorchModuleShim
from spacy_rnn.nn.encoder_decoder import EncoderDecoder
from spacy_rnn.nn.lm_heads import AdaptiveLogSoftmax
from spacy_rnn.nn.recurrent import PooledRecurrentEncoder
from spacy_rnn.threads import torch_threads

CELLS = [("rnn", "sigmoid"), ("rnn", "tanh"), ("rnn", "relu"), ("lstm", "sigmoid"), ("gru", "sigmoid")]
LENGTHS = [5, 3, 0, 7, 1, 4, 6, 2] * 3
EMBED = {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 12, "attrs": ["NORM", "SUFFIX"], "rows": [500, 100]}
TRAIN = [("I loved this movie", "POS"), ("what a great film", "POS"), ("really good fun", "POS"),
         ("I hated this movie", "NEG"), ("what an awful film", "NEG"), ("really bad", "NEG")]
CORPUS = ["the cat sat on the mat", "the dog sat on the rug", "a cat lay on a mat", "a dog lay on a rug",
          "the cat saw the dog", "the dog saw the cat", "my cat sat on my mat", "my dog lay on my rug"]
COLOURS = "red green blue black white pink grey gold".split()
TEXTCAT_RNN = {"@architectures": "spacy_rnn.TextCatRNN.v1", "exclusive_classes": True, "width": 16, "tok2vec": EMBED}
CONFIG = """
[nlp]
lang = "en"

[nlp.after_pipeline_creation]
@callbacks = "spacy_rnn.cpu_bf16.v1"
mode = "on"
"""


@pytest.fixture(autouse=True)
def precision_off():
    """Each test starts and ends with the default: off."""
    precision.set_cpu_bf16("off")
    yield
    precision.set_cpu_bf16("off")


@pytest.fixture
def support(monkeypatch):
    """Pretend that the CPU has native bf16 or not: support(bool)."""
    return lambda supported: monkeypatch.setattr(precision, "bf16_support", lambda: (supported, "REASON"))


def relative_error(value, reference):
    return float((value - reference).detach().norm() / reference.detach().norm())


# Detection and the mode


def test_auto_without_support_stays_off_and_logs_why(support, caplog):
    support(False)
    with caplog.at_level(logging.INFO, logger="spacy_rnn"):
        assert precision.set_cpu_bf16("auto") is False
    assert not precision.cpu_bf16_enabled()
    assert "bf16 mixed precision off (mode 'auto'): REASON" in caplog.text


def test_auto_with_support_turns_on(support, caplog):
    support(True)
    with caplog.at_level(logging.INFO, logger="spacy_rnn"):
        assert precision.set_cpu_bf16("auto") is True
    assert precision.cpu_bf16_enabled()
    assert "bf16 mixed precision on (mode 'auto'): REASON" in caplog.text


@pytest.mark.parametrize("supported", [False, True])
def test_on_forces_it_and_off_turns_it_off(support, supported, caplog):
    support(supported)
    with caplog.at_level(logging.INFO, logger="spacy_rnn"):
        assert precision.set_cpu_bf16("on") is True
    assert precision.cpu_bf16_enabled()
    assert caplog.records[-1].levelno == (logging.INFO if supported else logging.WARNING)
    assert ("expect it slower" in caplog.text) is not supported
    assert precision.set_cpu_bf16("off") is False
    assert not precision.cpu_bf16_enabled()


def test_a_bad_mode_is_refused_with_the_modes():
    with pytest.raises(ValueError, match="'auto', 'on', 'off'"):
        precision.set_cpu_bf16("bf16")
    with pytest.raises(ValueError, match="Unknown bf16 mode 'True'"):
        registry.callbacks.get("spacy_rnn.cpu_bf16.v1")(mode="True")
    assert not precision.cpu_bf16_enabled()


@pytest.mark.parametrize(
    "onednn,flags,supported,says",
    [
        (True, "fpu avx512f avx512_bf16 amx_bf16", True, "natively on this CPU (CPU flags: avx512_bf16, amx_bf16)"),
        (True, "fpu avx512f", False, "only emulate bf16 on this CPU, more slowly than fp32 (CPU flags: no avx512_bf16"),
        (False, "fpu avx2", False, "no bf16 kernels on this CPU (CPU flags: no avx512_bf16, amx_bf16)"),
        (True, None, False, "(CPU flags: unknown, no /proc/cpuinfo)"),
    ],
)
def test_detection_needs_onednn_and_native_bf16_instructions(monkeypatch, tmp_path, onednn, flags, supported, says):
    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo)
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
    found, reason = precision.bf16_support()
    assert found is supported
    assert says in reason


def test_this_machine_is_detected_as_torch_sees_it():
    supported, reason = precision.bf16_support()
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert not supported and "no bf16 kernels" in reason


# Each cell, through the shim that runs it


def run_shim(shim, x, is_train=True):
    """(states, final) of a PooledRecurrentEncoder shim, and every parameter's
    gradient for the gradient of sum(states) + sum(final)."""
    shim.module.zero_grad()
    x = x.detach().requires_grad_()
    (states, final), backprop = shim(ArgsKwargs(args=(x, LENGTHS), kwargs={"pool": False}), is_train)
    grads = backprop(ArgsKwargs(args=((states, final),), kwargs={"grad_tensors": (torch.ones_like(states),
                                                                                  torch.ones_like(final))}))
    return states, final, grads.args[0], {name: p.grad for name, p in shim.module.named_parameters()}


@pytest.mark.parametrize("bidirectional,depth", [(False, 1), (True, 1), (True, 2)])
@pytest.mark.parametrize("cell,activation", CELLS)
def test_every_cell_runs_forward_and_backward_in_bf16(cell, activation, bidirectional, depth):
    torch.manual_seed(0)
    shim = TorchModuleShim(PooledRecurrentEncoder)
    shim.build(nI=12, width=16, cell=cell, activation=activation, bidirectional=bidirectional, depth=depth)
    x = torch.randn(sum(LENGTHS), 12)
    with torch_threads(2):  # a bidirectional layer's second direction runs on the second thread
        reference = run_shim(shim, x)
        precision.set_cpu_bf16("on")
        states, final, d_x, grads = run_shim(shim, x)
    assert states.dtype == final.dtype == d_x.dtype == torch.float32
    assert all(bool(value.isfinite().all()) for value in (states, final, d_x))
    for value, expected in zip((states, final), reference):
        assert relative_error(value, expected) < 0.02  # measured: at most 0.6%
        torch.testing.assert_close(value, expected, atol=0.05, rtol=0.05)
    # Gradients differ more where a relu unit's pre-activation is near 0 and its derivative flips (measured: 4.5%).
    assert relative_error(d_x, reference[2]) < 0.08
    # Each direction really ran in bf16 (the second thread too), in training and inference: none equals fp32.
    directions = 2 if bidirectional else 1
    with torch_threads(2):
        predicted = shim(ArgsKwargs(args=(x, LENGTHS), kwargs={"pool": False}), False)[0][0]
    for computed in (states, predicted):
        for half, expected in zip(computed.chunk(directions, dim=1), reference[0].chunk(directions, dim=1)):
            assert half.shape == expected.shape and not torch.equal(half, expected)
    assert set(grads) == set(reference[3])
    for name, grad in grads.items():
        assert grad is not None and grad.dtype == torch.float32 and bool(grad.isfinite().all()), name
    everything = torch.cat([grad.flatten() for grad in grads.values()])
    assert relative_error(everything, torch.cat([grad.flatten() for grad in reference[3].values()])) < 0.08
    assert all(p.dtype == torch.float32 for p in shim.module.parameters())


def test_pooling_attention_runs_under_bf16():
    torch.manual_seed(0)
    shim = TorchModuleShim(PooledRecurrentEncoder)
    shim.build(nI=12, width=16, cell="lstm", pooling=("attention", "mean", "max", "last"))
    x = torch.randn(sum(LENGTHS), 12)
    reference, _ = shim(ArgsKwargs(args=(x, LENGTHS), kwargs={}), False)
    precision.set_cpu_bf16("on")
    pooled, _ = shim(ArgsKwargs(args=(x, LENGTHS), kwargs={}), False)
    assert pooled.dtype == torch.float32 and not torch.equal(pooled, reference)
    torch.testing.assert_close(pooled, reference, atol=0.03, rtol=0.03)


def test_the_adaptive_softmax_keeps_torchs_weights_and_results_and_runs_under_bf16():
    torch.manual_seed(0)
    ours = AdaptiveLogSoftmax(16, 300, [20, 100], div_value=4.0, head_bias=True)
    torchs = torch.nn.AdaptiveLogSoftmaxWithLoss(16, 300, [20, 100], div_value=4.0, head_bias=True)
    torchs.load_state_dict(ours.state_dict(), strict=True)  # the same names and shapes: saved weights load
    x = torch.randn(200, 16, requires_grad=True)
    x_torch = x.detach().clone().requires_grad_()
    target = torch.randint(0, 300, (200,))
    target[:3] = torch.tensor([0, 20, 299])  # the first class of each cluster and the last
    loglik, expected = ours.log_likelihood(x, target), torchs(x_torch, target).output
    assert torch.equal(loglik, expected)  # fp32: bit for bit
    loglik.sum().backward()
    expected.sum().backward()
    assert torch.equal(x.grad, x_torch.grad)
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours.parameters(), torchs.parameters()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = ours.log_likelihood(x, target)
    assert mixed.dtype == torch.float32 and not torch.equal(mixed, expected)
    torch.testing.assert_close(mixed, expected, atol=0.05, rtol=0.02)


def test_off_hands_back_the_modules_own_outputs():
    """Off, the shim adds nothing: its outputs are the module's, the same tensors' values bit for bit."""
    torch.manual_seed(0)
    shim = TorchModuleShim(PooledRecurrentEncoder)
    shim.build(nI=12, width=16, cell="lstm")
    x = torch.randn(sum(LENGTHS), 12)
    pooled, _ = shim(ArgsKwargs(args=(x, LENGTHS), kwargs={}), False)
    shim.module.eval()
    with torch.no_grad():
        assert torch.equal(pooled, shim.module(x, LENGTHS))


# Training, pretraining and rnn_seq2seq


def update_losses(nlp, examples, optimizer, steps):
    """Initialize nlp and update it `steps` times on all examples: the loss of each update."""
    optimizer = nlp.initialize(lambda: examples, sgd=optimizer)
    losses = []
    for _ in range(steps):
        step = {}
        nlp.update(examples, sgd=optimizer, losses=step, drop=0.0)
        losses.append(step[nlp.pipe_names[0]])
    return losses


def test_the_callback_trains_saves_and_loads_a_textcat_under_bf16(support, tmp_path):
    fix_random_seed(0)
    nlp = load_model_from_config(load_config_from_str(CONFIG), auto_fill=True)
    assert precision.cpu_bf16_enabled()  # set when the pipeline was created
    nlp.add_pipe("textcat", config={"model": TEXTCAT_RNN})
    examples = [Example.from_dict(nlp.make_doc(text), {"cats": {"POS": label == "POS", "NEG": label == "NEG"}})
                for text, label in TRAIN]
    losses = update_losses(nlp, examples, Adam(0.01), steps=15)
    assert losses[-1] < 0.5 * losses[0]
    texts = [text for text, _ in TRAIN]
    predicted = numpy.array([list(doc.cats.values()) for doc in nlp.pipe(texts)])
    assert numpy.isfinite(predicted).all()
    nlp.to_disk(tmp_path / "pipeline")
    support(False)  # loading runs the callback again: "on" turns bf16 on whatever the CPU
    precision.set_cpu_bf16("off")
    loaded = spacy.load(tmp_path / "pipeline")
    assert precision.cpu_bf16_enabled()
    assert numpy.array_equal(numpy.array([list(doc.cats.values()) for doc in loaded.pipe(texts)]), predicted)
    precision.set_cpu_bf16("off")
    in_fp32 = numpy.array([list(doc.cats.values()) for doc in loaded.pipe(texts)])
    assert not numpy.array_equal(in_fp32, predicted)
    numpy.testing.assert_allclose(in_fp32, predicted, atol=0.02)


def bilm_objective(tmp_path):
    words = tmp_path / "words.txt"
    counts = {}
    for word in " ".join(CORPUS).split():
        counts[word] = counts.get(word, 0) + 1
    words.write_text("\n".join(sorted(counts, key=lambda w: -counts[w])) + "\n", encoding="utf8")
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat", config={"model": TEXTCAT_RNN})
    encoder = nlp.get_pipe("textcat").model.get_ref("encoder")
    encoder.initialize(X=[nlp.make_doc("Give it a doc to infer shapes")])
    bilm = registry.architectures.get("spacy_rnn.BiLM.v1")(str(words))(nlp.vocab, encoder)
    return nlp, bilm.initialize(X=[nlp.make_doc("Give it a doc to infer shapes")])


def bilm_loss_and_gradients(bilm, docs):
    for shim in (node.shims[0] for node in bilm.walk() if node.shims):
        shim.module.zero_grad()
    predictions, backprop = bilm.begin_update(docs)
    loss, d_predictions = bilm.attrs["loss"](bilm.ops, docs, predictions)
    backprop(d_predictions)
    grads = [p.grad.flatten() for node in bilm.walk() for shim in node.shims for p in shim.module.parameters()]
    return loss, torch.cat(grads), predictions


def test_the_bilm_objective_learns_under_bf16(tmp_path):
    fix_random_seed(0)
    nlp, bilm = bilm_objective(tmp_path)
    docs = [nlp.make_doc(text) for text in CORPUS]
    loss, grads, predictions = bilm_loss_and_gradients(bilm, docs)
    precision.set_cpu_bf16("on")
    loss_bf16, grads_bf16, predictions_bf16 = bilm_loss_and_gradients(bilm, docs)
    assert predictions_bf16.dtype == "float32" and numpy.isfinite(predictions_bf16).all()
    assert loss_bf16 != loss and loss_bf16 == pytest.approx(loss, rel=0.01)
    assert bool(grads_bf16.isfinite().all()) and relative_error(grads_bf16, grads) < 0.05
    optimizer = Adam(0.02)
    losses = [make_update(bilm, docs, optimizer, bilm.attrs["loss"]) for _ in range(25)]
    assert losses[-1] < 0.6 * losses[0]


def seq2seq_nlp(decoder, cell, coverage):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    tok2vec = {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 16, "attrs": ["ORTH"], "rows": [300]}
    model = {"@architectures": "spacy_rnn.Seq2Seq.v2", "width": 32, "target_width": 16, "decoder": decoder,
             "cell": cell, "coverage": coverage, "dropout": 0.0, "tok2vec": tok2vec}
    nlp.add_pipe("rnn_seq2seq", config={"min_freq": 1, "beam_size": 3, "max_length": 8, "model": model})
    return nlp


def train_seq2seq(decoder, cell, coverage, steps=20):
    """An rnn_seq2seq model trained to copy colours: (nlp, texts, losses)."""
    nlp = seq2seq_nlp(decoder, cell, coverage)
    rng = random.Random(0)
    texts = [" ".join(rng.choice(COLOURS) for _ in range(rng.randint(2, 5))) for _ in range(12)]
    examples = [Example(nlp.make_doc(text), set_target(nlp.make_doc(text), text)) for text in texts]
    return nlp, texts, update_losses(nlp, examples, Adam(0.02), steps)


@pytest.mark.parametrize("decoder,cell,coverage", [("attention", "lstm", False), ("copy", "gru", True),
                                                    ("repeat", "rnn", False)])
def test_rnn_seq2seq_trains_and_searches_under_bf16(decoder, cell, coverage, monkeypatch):
    _, _, fp32_losses = train_seq2seq(decoder, cell, coverage)
    precision.set_cpu_bf16("on")
    nlp, texts, losses = train_seq2seq(decoder, cell, coverage)
    assert numpy.isfinite(losses).all() and losses[-1] < 0.7 * losses[0]
    assert losses != fp32_losses and losses[-1] == pytest.approx(fp32_losses[-1], rel=0.05)  # measured: 2% at most
    autocast_in_search = []
    decode = EncoderDecoder.decode

    def spy(self, *args, **kwargs):
        autocast_in_search.append(torch.is_autocast_enabled("cpu"))
        return decode(self, *args, **kwargs)

    monkeypatch.setattr(EncoderDecoder, "decode", spy)
    seq2seq = nlp.get_pipe("rnn_seq2seq")
    for beam_size in (1, 3):
        seq2seq.cfg["beam_size"] = beam_size
        generated = [doc._.generated for doc in nlp.pipe(texts[:4])]
        assert all(isinstance(text, str) for text in generated)
        assert set(" ".join(generated).split()) <= set(COLOURS) | {"<UNK>"}
    assert autocast_in_search and all(autocast_in_search)
