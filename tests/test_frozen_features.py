"""TextCatRNN.v2 / TextCatRNNEnsemble.v2 (pooled_norm, and the frozen-feature
mode: a pretrained encoder run frozen, its layers mixed ELMo's way into the
input of a fresh recurrent network), PretrainedRNNFeatures.v1 and
RNNTok2Vec.v1."""
import numpy
import pytest
import spacy
from spacy.training import Example
from spacy.training.pretrain import make_update
from spacy.util import load_config, load_model_from_config, registry
from thinc.api import Adam, fix_random_seed

from conftest import REPO
from test_pooling_check import LINEAR, init_tok2vec_config, model_config, shim_weights, trained_encoder_file
from test_textcat import TRAIN

EMBED = {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 8, "attrs": ["NORM", "SUFFIX"], "rows": [500, 100]}
TASK_EMBED = {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 6, "attrs": ["NORM", "SHAPE"], "rows": [300, 50]}
PRETRAINED = {"@architectures": "spacy_rnn.PretrainedRNNFeatures.v1", "width": 16, "tok2vec": EMBED}
HELD_OUT = ["a great story", "an awful movie", "", "fun acting"]
LAYER = "pretrained_encoder"  # [pretraining] layer of the frozen mode


def textcat_model(architecture="spacy_rnn.TextCatRNN.v2", **settings):
    return model_config(architecture, **{"width": 12, "tok2vec": TASK_EMBED, **settings})


def textcat_nlp(architecture="spacy_rnn.TextCatRNN.v2", **settings):
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat", config={"model": textcat_model(architecture, **settings)})
    return nlp


def examples(nlp):
    return [Example.from_dict(nlp.make_doc(text), {"cats": {"POS": float(label == "POS"),
                                                            "NEG": float(label == "NEG")}})
            for text, label in TRAIN]


def train(nlp, steps, seed=0):
    """`steps` updates of nlp on TRAIN from a seeded initialization: (optimizer, losses)."""
    fix_random_seed(seed)
    optimizer = nlp.initialize(lambda: examples(nlp), sgd=Adam(0.01))
    losses = []
    for _ in range(steps):
        step = {}
        nlp.update(examples(nlp), sgd=optimizer, losses=step, drop=0.0)
        losses.append(step["textcat"])
    return optimizer, losses


def frozen_arrays(model):
    """Copies of every weight of the pretrained encoder of the frozen mode:
    the embedding's params and the torch module's weights."""
    encoder = model.get_ref("pretrained_encoder")
    arrays = {(node.id, name): node.get_param(name).copy() for node in encoder.walk() for name in node.param_names}
    for node in encoder.walk():
        for shim in node.shims:
            arrays.update({(shim.id, name): p.detach().clone().numpy() for name, p in shim.module.named_parameters()})
    return arrays


def encoder_file(tmp_path, pooling=("max", "last")):
    """The pipeline of a TextCatRNN.v1 with PRETRAINED's encoder settings,
    and the file of its encoder, as `spacy pretrain` saves it."""
    model = {"@architectures": "spacy_rnn.TextCatRNN.v1", "exclusive_classes": True, "width": 16, "tok2vec": EMBED,
             "pooling": list(pooling)}
    return trained_encoder_file(tmp_path, model, examples)


@pytest.mark.parametrize("architecture", ["TextCatRNN", "TextCatRNNEnsemble"])
def test_v2_without_its_new_settings_is_v1(architecture):
    fix_random_seed(0)
    v1 = textcat_nlp(f"spacy_rnn.{architecture}.v1", pooling=["max", "mean"])
    train(v1, steps=3)
    v2 = textcat_nlp(f"spacy_rnn.{architecture}.v2", pooling=["max", "mean"], pooled_norm="none", pretrained=None)
    assert [node.name for node in v2.get_pipe("textcat").model.walk()] == [
        node.name for node in v1.get_pipe("textcat").model.walk()]
    v2.get_pipe("textcat").from_bytes(v1.get_pipe("textcat").to_bytes())
    texts = [text for text, _ in TRAIN] + HELD_OUT
    assert [v2(text).cats for text in texts] == [v1(text).cats for text in texts]


@pytest.mark.parametrize("settings", [
    {"pooled_norm": "layer"},
    {"pooled_norm": "layer", "pretrained": PRETRAINED},
    {"pooled_norm": "none", "pretrained": PRETRAINED, "cell": "gru", "pooling": ["attention", "max"]},
    {"pooled_norm": "layer", "pretrained": {**PRETRAINED, "width": 8, "bidirectional": False, "depth": 2}},
])
@pytest.mark.parametrize("architecture", ["spacy_rnn.TextCatRNN.v2", "spacy_rnn.TextCatRNNEnsemble.v2"])
def test_v2_learns_the_toy_labels(architecture, settings):
    nlp = textcat_nlp(architecture, **settings)
    _, losses = train(nlp, steps=30)
    assert losses[-1] < 0.1 * losses[0]
    for text, label in TRAIN:
        cats = nlp(text).cats
        assert max(cats, key=cats.get) == label
    assert set(nlp("").cats) == {"POS", "NEG"}
    if settings["pooled_norm"] == "layer":
        assert any(node.name == "layernorm" for node in nlp.get_pipe("textcat").model.walk())


@pytest.mark.parametrize("architecture", ["spacy_rnn.TextCatRNN.v2", "spacy_rnn.TextCatRNNEnsemble.v2"])
def test_frozen_features_get_no_gradient_and_the_fresh_network_learns(architecture):
    nlp = textcat_nlp(architecture, pretrained=PRETRAINED)
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples(nlp), sgd=Adam(0.01))
    model = nlp.get_pipe("textcat").model
    frozen = frozen_arrays(model)
    rnn = model.get_ref("rnn").shims[0].module
    fresh = [p.detach().clone() for p in rnn.parameters()]
    mix = next(node for node in model.walk() if node.name == "frozen_layer_mix")
    mix_before = (mix.get_param("layer_weights").copy(), mix.get_param("gamma").copy())
    for _ in range(5):
        nlp.update(examples(nlp), sgd=optimizer, drop=0.1)

    for key, before in frozen_arrays(model).items():
        numpy.testing.assert_array_equal(before, frozen[key])
    frozen_ids = {node.id for node in model.get_ref("pretrained_encoder").walk()}
    frozen_ids |= {shim.id for node in model.get_ref("pretrained_encoder").walk() for shim in node.shims}
    updated = set(optimizer.mom1) | set(optimizer.mom2) | set(optimizer.averages)
    assert updated and not {key for key in updated if key[0] in frozen_ids}
    assert all(not numpy.allclose(p.detach(), before) for p, before in zip(rnn.parameters(), fresh))
    assert not numpy.array_equal(mix.get_param("layer_weights"), mix_before[0])
    assert not numpy.array_equal(mix.get_param("gamma"), mix_before[1])
    assert (mix.id, "layer_weights") in updated
    assert (model.get_ref("rnn").shims[0].id, "encoder.layers.0.0.rnn.weight_ih_l0") in updated


def test_the_layer_mix_backpropagates_its_gradient():
    """The gradients of the mixing weights and γ against finite differences
    of sum(output · R) for a fixed random R."""
    fix_random_seed(0)
    features = registry.resolve({"f": {**PRETRAINED, "bidirectional": False, "width": 8, "depth": 2}})["f"]
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(text) for text, _ in TRAIN[:4]]
    features.initialize(X=docs)
    features.set_param("layer_weights", numpy.asarray([0.3, -0.2, 0.5], dtype="f"))
    features.set_param("gamma", numpy.asarray([1.3], dtype="f"))
    outputs, backprop = features.begin_update(docs)
    directions = [numpy.random.RandomState(0).uniform(-1, 1, out.shape).astype("f") for out in outputs]
    assert backprop(directions) == []

    def objective():
        return sum(float((out.astype("float64") * d).sum()) for out, d in zip(features.predict(docs), directions))

    for name in ("layer_weights", "gamma"):
        params = features.get_param(name)
        for i in range(params.size):
            shifted = []
            for step in (1e-2, -1e-2):
                moved = params.copy()
                moved[i] += step
                features.set_param(name, moved)
                shifted.append(objective())
            features.set_param(name, params)
            assert features.get_grad(name)[i] == pytest.approx((shifted[0] - shifted[1]) / 2e-2, rel=1e-2, abs=1e-3)


@pytest.mark.parametrize("pooling", [["max", "last"], ["attention"]])
@pytest.mark.parametrize("architecture", ["spacy_rnn.TextCatRNN.v2", "spacy_rnn.TextCatRNNEnsemble.v2"])
def test_a_v1_pretrained_encoder_loads_into_the_frozen_mode_through_init_tok2vec(architecture, pooling, tmp_path):
    source, path = encoder_file(tmp_path, pooling)
    component = {"factory": "textcat", "model": textcat_model(architecture, pretrained=PRETRAINED)}
    predictions = {}
    for loaded in (True, False):
        fix_random_seed(0)
        config = init_tok2vec_config(component, path if loaded else None, layer=LAYER)
        nlp = load_model_from_config(config, auto_fill=True)
        optimizer = nlp.initialize(lambda: examples(nlp))
        nlp.update(examples(nlp), sgd=optimizer, drop=0.0)
        predictions[loaded] = [nlp(text).cats for text in HELD_OUT]
        if loaded:
            model = nlp.get_pipe("textcat").model
            ours = shim_weights(model.get_ref("pretrained_encoder").to_bytes())
            theirs = shim_weights(path.read_bytes())
            assert ours.keys() == theirs.keys()
            for key, value in theirs.items():
                numpy.testing.assert_array_equal(ours[key], value)
            docs = [nlp.make_doc(text) for text in HELD_OUT]
            expected = source.get_pipe("textcat").model.get_ref("encoder").predict(docs)
            for states, source_states in zip(model.get_ref("pretrained_encoder").predict(docs), expected):
                numpy.testing.assert_array_equal(states, source_states)
    assert predictions[True] != predictions[False]


def test_the_pretrained_encoder_of_the_frozen_mode_refuses_another_encoder(tmp_path):
    _, path = encoder_file(tmp_path)
    other = {**PRETRAINED, "cell": "gru"}
    component = {"factory": "textcat", "model": textcat_model(pretrained=other)}
    nlp = load_model_from_config(init_tok2vec_config(component, path, layer=LAYER), auto_fill=True)
    with pytest.raises(ValueError, match="cell = 'lstm' in the weights, 'gru' in the config"):
        nlp.initialize(lambda: examples(nlp))


@pytest.mark.parametrize("architecture", ["spacy_rnn.TextCatRNN.v2", "spacy_rnn.TextCatRNNEnsemble.v2"])
def test_the_frozen_mode_round_trips(architecture, tmp_path):
    _, path = encoder_file(tmp_path)
    component = {"factory": "textcat", "model": textcat_model(architecture, pretrained=PRETRAINED, pooled_norm="layer")}
    fix_random_seed(0)
    nlp = load_model_from_config(init_tok2vec_config(component, path, layer=LAYER), auto_fill=True)
    optimizer = nlp.initialize(lambda: examples(nlp))
    for _ in range(3):
        nlp.update(examples(nlp), sgd=optimizer)
    texts = [text for text, _ in TRAIN] + HELD_OUT
    expected = [nlp(text).cats for text in texts]
    assert len({round(cats["POS"], 6) for cats in expected}) > 1

    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert [loaded(text).cats for text in texts] == expected
    restored = textcat_nlp(architecture, pretrained=PRETRAINED, pooled_norm="layer")
    restored.get_pipe("textcat").from_bytes(nlp.get_pipe("textcat").to_bytes())
    assert [restored(text).cats for text in texts] == expected
    texts = [text for text in texts if text]  # nlp("") scores 0 (spaCy's shortcut for a batch of empty Docs)
    for doc, text in zip(loaded.pipe(texts, batch_size=3), texts):
        assert doc.cats == pytest.approx(nlp(text).cats, abs=1e-6)


def test_the_pretrained_encoder_of_the_frozen_mode_can_be_pretrained(tmp_path):
    """[pretraining] layer = "pretrained_encoder": spacy pretrain's objective
    trains it (only a model that reads it frozen leaves it unchanged)."""
    words = tmp_path / "words.txt"
    words.write_text("\n".join(sorted({w for text, _ in TRAIN for w in text.lower().split()})) + "\n")
    nlp = textcat_nlp(pretrained=PRETRAINED)
    encoder = nlp.get_pipe("textcat").model.get_ref("pretrained_encoder")
    encoder.initialize(X=[nlp.make_doc("Give it a doc to infer shapes")])
    bilm = registry.architectures.get("spacy_rnn.BiLM.v1")(str(words))(nlp.vocab, encoder)
    bilm.initialize(X=[nlp.make_doc("Give it a doc to infer shapes")])
    docs = [nlp.make_doc(text) for text, _ in TRAIN]
    optimizer = Adam(0.02)
    losses = [make_update(bilm, docs, optimizer, bilm.attrs["loss"]) for _ in range(10)]
    assert losses[-1] < losses[0]


def test_rnn_tok2vec_reads_frozen_features_for_a_listener(tmp_path):
    _, path = encoder_file(tmp_path)
    tok2vec = {"factory": "tok2vec", "model": {
        "@architectures": "spacy_rnn.RNNTok2Vec.v1", "width": 10, "tok2vec": TASK_EMBED, "pretrained": PRETRAINED}}
    config = init_tok2vec_config(tok2vec, path, component="tok2vec", layer=LAYER)
    config["nlp"]["pipeline"] = ["tok2vec", "textcat"]
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 10, "upstream": "tok2vec"}
    config["components"]["textcat"] = {"factory": "textcat", "model": {
        "@architectures": "spacy_rnn.TextCatRNN.v1", "exclusive_classes": True, "width": 12, "tok2vec": listener}}
    fix_random_seed(0)
    nlp = load_model_from_config(config, auto_fill=True)
    optimizer = nlp.initialize(lambda: examples(nlp))
    model = nlp.get_pipe("tok2vec").model
    for key, value in shim_weights(path.read_bytes()).items():
        numpy.testing.assert_array_equal(shim_weights(model.get_ref("pretrained_encoder").to_bytes())[key], value)
    frozen = frozen_arrays(model)
    own = model.layers[-1].shims[0].module.state_dict()["layers.0.0.rnn.weight_ih_l0"].clone()
    for _ in range(3):
        nlp.update(examples(nlp), sgd=optimizer)
    for key, before in frozen_arrays(model).items():
        numpy.testing.assert_array_equal(before, frozen[key])
    assert not numpy.allclose(model.layers[-1].shims[0].module.state_dict()["layers.0.0.rnn.weight_ih_l0"], own)
    doc = nlp("a great story")
    assert doc.tensor.shape == (3, 10)


def test_rnn_tok2vec_without_pretrained_features_is_tok2vec_v2_with_rnn_encoder():
    ours = registry.resolve({"m": {"@architectures": "spacy_rnn.RNNTok2Vec.v1", "width": 10, "tok2vec": TASK_EMBED}})
    theirs = registry.resolve({"m": {"@architectures": "spacy.Tok2Vec.v2", "embed": TASK_EMBED,
                                     "encode": {"@architectures": "spacy_rnn.RNNEncoder.v1", "width": 10}}})
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(text) for text in HELD_OUT]
    ours["m"].initialize(X=docs)
    theirs["m"].initialize(X=docs)
    theirs["m"].from_bytes(ours["m"].to_bytes())
    for vectors, expected in zip(theirs["m"].predict(docs), ours["m"].predict(docs)):
        numpy.testing.assert_array_equal(vectors, expected)


def test_an_unknown_pooled_norm_is_refused_with_a_message():
    tok2vec = registry.resolve({"t": TASK_EMBED})["t"]
    for name in ("spacy_rnn.TextCatRNN.v2", "spacy_rnn.TextCatRNNEnsemble.v2"):
        linear = {"linear_model": registry.resolve({"l": LINEAR})["l"]} if "Ensemble" in name else {}
        with pytest.raises(ValueError, match="unknown pooled_norm 'batch'. Set 'pooled_norm' to one of none, layer"):
            registry.architectures.get(name)(tok2vec=tok2vec, exclusive_classes=True, pooled_norm="batch", **linear)


@pytest.mark.parametrize("settings,message", [
    ({"pretrained": TASK_EMBED}, "'pretrained' must be built by spacy_rnn.PretrainedRNNFeatures.v1"),
    ({"pretrained": {**PRETRAINED, "width": 12}}, r"token vectors \(width 8\) cannot be mixed .* \(width 12\)"),
])
def test_bad_v2_settings_are_refused_with_a_message(settings, message):
    with pytest.raises(ValueError, match=message):
        textcat_nlp(**settings)


def test_the_frozen_config_loads_the_encoder_of_the_w256_pretraining_config(tmp_path):
    """configs/pretrain_textcat_lstm_w256_frozen.cfg reads, frozen, the encoder
    that pretrain_textcat_lstm_w256.cfg pretrains: one file serves both."""
    pipelines = {}
    for name in ("pretrain_textcat_lstm_w256.cfg", "pretrain_textcat_lstm_w256_frozen.cfg"):
        config = load_config(REPO / "configs" / name)
        nlp = load_model_from_config(config, auto_fill=True)
        nlp.initialize(lambda: examples(nlp))
        pipelines[name] = nlp.get_pipe("textcat").model.get_ref(config["pretraining"]["layer"])
    pretrained = pipelines["pretrain_textcat_lstm_w256.cfg"].to_bytes()
    frozen = pipelines["pretrain_textcat_lstm_w256_frozen.cfg"]
    frozen.from_bytes(pretrained)
    for key, value in shim_weights(pretrained).items():
        numpy.testing.assert_array_equal(shim_weights(frozen.to_bytes())[key], value)
