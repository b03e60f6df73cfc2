"""The language model's regularisers (spacy_rnn.BiLM.v2, AWD-LSTM's): with
none it is BiLM.v1; AR and TAR add their penalties to the loss and their
gradients to the states; embedding dropout drops words; weight-drop drops
recurrent weights for one update only; `spacy pretrain` runs with all four."""
import numpy
import pytest
import torch
from spacy.util import registry
from thinc.api import Model, fix_random_seed, set_dropout_rate

from spacy_rnn.layers.bilm import RECURRENT_WEIGHT, BiLM, Regularisation, encode, split_at_recurrent, word_dropout_mask
from test_pretrain import CORPUS, pretrain_config, pretrainable, spacy_cli, textcat_nlp, tok2vec_nlp
from test_pretrain import words  # noqa: F401 (the fixture)

REGULARISED = {"activation_penalty": 2.0, "temporal_penalty": 1.0, "embedding_dropout": 0.1, "weight_drop": 0.5}


def objective(version, nlp, layer, words, **settings):
    model = registry.architectures.get(f"spacy_rnn.BiLM.{version}")(str(words), **settings)(nlp.vocab, layer)
    return model.initialize(X=[nlp.make_doc("Give it a doc to infer shapes")])


def gradients(model):
    """Copies of every gradient of the model: thinc params' and torch parameters'."""
    grads = [node.get_grad(name).copy() for node in model.walk() for name in node.param_names if node.has_grad(name)]
    for node in model.walk():
        for shim in node.shims:
            grads += [p.grad.clone().numpy() for _, p in shim.module.named_parameters() if p.grad is not None]
    return grads


def one_update(version, words, seed=0, **settings):
    """The loss, predictions and gradients of one training step of a fresh objective on CORPUS, dropout 0.3."""
    fix_random_seed(seed)
    nlp = textcat_nlp()
    bilm = objective(version, nlp, pretrainable(nlp), words, **settings)
    set_dropout_rate(bilm, 0.3)
    docs = [nlp.make_doc(text) for text in CORPUS]
    fix_random_seed(seed + 1)
    predictions, backprop = bilm.begin_update(docs)
    loss, d_predictions = bilm.attrs["loss"](bilm.ops, docs, predictions)
    backprop(d_predictions)
    return loss, predictions, gradients(bilm)


def test_bilm_v2_without_regularisers_is_bilm_v1(words):
    loss, predictions, grads = one_update("v1", words)
    loss_v2, predictions_v2, grads_v2 = one_update("v2", words)
    assert loss_v2 == loss
    numpy.testing.assert_array_equal(predictions_v2, predictions)
    assert len(grads_v2) == len(grads) > 4
    for grad_v2, grad in zip(grads_v2, grads):
        numpy.testing.assert_array_equal(grad_v2, grad)


def fixed_states(states):
    """A tok2vec stand-in that gives `states` (one array per Doc) and records the gradient it gets back."""

    def forward(model, docs, is_train):
        def backprop(d_states):
            model.attrs["d_states"] = [d.copy() for d in d_states]
            return []

        return [model.ops.asarray2f(numpy.array(x, dtype="float32").reshape(-1, width)) for x in states], backprop

    width = len(states[0][0])
    return Model("fixed_states", forward, dims={"nO": width})


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # heads of width 1: tiny clusters
def test_ar_and_tar_add_their_penalties_to_the_loss_and_their_gradients_to_the_states(words):
    nlp = textcat_nlp()
    docs = [nlp.make_doc("the cat sat"), nlp.make_doc(""), nlp.make_doc("a dog")]
    states = [[[1, 2], [3, 4], [0, 0]], [], [[1, 1], [2, 0]]]
    listed = words.read_text().split()
    plain = BiLM(fixed_states(states), listed, bidirectional=True).initialize()
    penalised = BiLM(fixed_states(states), listed, bidirectional=True,
                     regularisation=Regularisation(activation=2.0, temporal=1.0)).initialize()
    penalised.shims[0].module.load_state_dict(plain.shims[0].module.state_dict())
    # AR: the mean of the 10 squares is 36 / 10; TAR: the steps within each Doc are (2, 2), (-3, -4) and (1, -1),
    # 35 / 6 over their 6 units (not the step from the last state of a Doc to the first of the next).
    expected = 2.0 * 36 / 10 + 1.0 * 35 / 6
    losses = []
    for model in (plain, penalised):
        predictions, backprop = model.begin_update(docs)
        loss, d_predictions = model.attrs["loss"](model.ops, docs, predictions)
        backprop(d_predictions)
        losses.append(loss)
    assert losses[1] - losses[0] == pytest.approx(expected, rel=1e-6)
    h = numpy.array([row for doc in states for row in doc], dtype="float32")
    d_ar = 2 * 2.0 / h.size * h
    d_tar = numpy.zeros_like(h)
    for t, same_doc in zip(range(1, len(h)), [True, True, False, True]):
        if same_doc:
            d_tar[t] += 2 * 1.0 / 6 * (h[t] - h[t - 1])
            d_tar[t - 1] -= 2 * 1.0 / 6 * (h[t] - h[t - 1])
    d_plain = numpy.concatenate(plain.layers[0].attrs["d_states"])
    d_penalised = numpy.concatenate(penalised.layers[0].attrs["d_states"])
    numpy.testing.assert_allclose(d_penalised - d_plain, d_ar + d_tar, rtol=1e-5, atol=1e-7)
    # Not in prediction: the loss of predicted log-likelihoods has no penalty.
    predictions = penalised.predict(docs)
    assert penalised.attrs["loss"](penalised.ops, docs, predictions)[0] == pytest.approx(losses[0], rel=1e-6)


def test_embedding_dropout_drops_every_token_of_a_word_together():
    nlp = textcat_nlp()
    docs = [nlp.make_doc("the cat saw the dog"), nlp.make_doc("The dog saw a cat")]
    fix_random_seed(0)
    mask = word_dropout_mask(docs, 0.5)[:, 0]
    norms = [token.norm_ for doc in docs for token in doc]
    assert set(mask.tolist()) == {0.0, 2.0}
    for norm in set(norms):
        assert len({float(m) for m, other in zip(mask, norms) if other == norm}) == 1


@pytest.mark.parametrize("component", ["textcat", "tok2vec"])
def test_embedding_dropout_masks_the_input_of_the_recurrent_layer(component):
    fix_random_seed(0)
    nlp = textcat_nlp() if component == "textcat" else tok2vec_nlp()
    layer = pretrainable(nlp)
    docs = [nlp.make_doc(text) for text in CORPUS[:3]]
    below, recurrent = split_at_recurrent(layer)
    assert recurrent.name in ("rnn_states", "rnn_states_view") and below
    fix_random_seed(5)
    states, backprop = encode(layer, docs, True, 0.5)
    fix_random_seed(5)
    mask = word_dropout_mask(docs, 0.5)
    vectors = docs
    for node in below:
        vectors = node.predict(vectors)
    masked = numpy.concatenate(vectors) * mask
    expected = recurrent.predict(layer.ops.unflatten(masked, [len(doc) for doc in docs]))
    for got, want in zip(states, expected):
        numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not numpy.allclose(numpy.concatenate(states), numpy.concatenate(layer.predict(docs)), atol=1e-4)
    backprop([numpy.ones_like(x) for x in states])  # runs back to the embedding


@pytest.mark.parametrize("settings,n_weights", [
    ({"cell": "lstm"}, 2),
    ({"cell": "gru", "bidirectional": False, "depth": 2}, 2),
    ({"cell": "rnn", "activation": "sigmoid"}, 2),
    ({"cell": "rnn", "activation": "tanh", "bidirectional": False}, 1),
])
def test_weight_drop_drops_recurrent_weights_for_one_update_then_restores_them(words, settings, n_weights):
    fix_random_seed(0)
    nlp = textcat_nlp(**settings)
    bilm = objective("v2", nlp, pretrainable(nlp), words, weight_drop=0.5)
    module = bilm.get_ref("tok2vec").layers[-1].shims[0].module
    raw = {name: p.detach().clone() for name, p in module.named_parameters()}
    recurrent = [name for name in raw if RECURRENT_WEIGHT.search(name)]
    assert len(recurrent) == n_weights  # one per layer and direction
    docs = [nlp.make_doc(text) for text in CORPUS]
    predictions, backprop = bilm.begin_update(docs)
    params = dict(module.named_parameters())
    for name in recurrent:  # in the update: each weight 0 or 2 times its raw value
        dropped = params[name].detach()
        kept = dropped != 0
        assert 0.3 < float(kept.float().mean()) < 0.7
        torch.testing.assert_close(dropped[kept], 2 * raw[name][kept])
    backprop(bilm.attrs["loss"](bilm.ops, docs, predictions)[1])
    for name, weights in raw.items():  # after it: the raw weights, for the optimizer to update
        assert torch.equal(params[name].detach(), weights)


def test_weight_drop_zeroes_the_gradient_of_each_dropped_weight(words):
    fix_random_seed(0)
    nlp = textcat_nlp(cell="lstm")
    bilm = objective("v2", nlp, pretrainable(nlp), words, weight_drop=0.5)
    module = bilm.get_ref("tok2vec").layers[-1].shims[0].module
    docs = [nlp.make_doc(text) for text in CORPUS]
    predictions, backprop = bilm.begin_update(docs)
    dropped = {name: p.detach() == 0 for name, p in module.named_parameters() if RECURRENT_WEIGHT.search(name)}
    backprop(bilm.attrs["loss"](bilm.ops, docs, predictions)[1])
    for name, p in module.named_parameters():
        if name in dropped:
            assert p.grad[dropped[name]].abs().max() == 0
            assert (p.grad[~dropped[name]] != 0).float().mean() > 0.9


@pytest.mark.parametrize("setting,value,message", [
    ("weight_drop", 1.0, "'weight_drop' is a probability from 0 up to"),
    ("embedding_dropout", -0.1, "'embedding_dropout' is a probability"),
    ("activation_penalty", -1.0, "'activation_penalty' must be 0 or more"),
])
def test_bad_regularisers_are_refused(words, setting, value, message):
    with pytest.raises(ValueError, match=message):
        registry.architectures.get("spacy_rnn.BiLM.v2")(str(words), **{setting: value})


def test_spacy_pretrain_runs_with_every_regulariser(tmp_path, words):
    import srsly

    raw = tmp_path / "raw.jsonl"
    srsly.write_jsonl(raw, [{"text": text} for text in CORPUS * 10])
    config = pretrain_config("textcat", "encoder", raw_text=raw, lm_words=words)
    config["pretraining"]["objective"] = {"@architectures": "spacy_rnn.BiLM.v2", "words": str(words), **REGULARISED}
    config["pretraining"]["dropout"] = 0.2
    config.to_disk(tmp_path / "pretrain.cfg")
    out = spacy_cli("spacy", "pretrain", str(tmp_path / "pretrain.cfg"), str(tmp_path / "pretrained"))
    assert "Successfully finished pretrain" in out
    log = list(srsly.read_jsonl(tmp_path / "pretrained" / "log.jsonl"))
    assert [row["epoch"] for row in log] == [0, 1, 2] and log[1]["epoch_loss"] < log[0]["epoch_loss"]
