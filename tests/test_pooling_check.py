"""Loading a pretrained encoder into a text classifier checks the weights,
not the pooling: an encoder saved with one weightless pooling (max, mean,
last) loads into a classifier with another, while attention pooling, which
has weights, must be in both or neither. A whole classifier still loads
only with its own pooling."""
import copy

import numpy
import pytest
import spacy
import srsly
from spacy.language import DEFAULT_CONFIG_PRETRAIN_PATH
from spacy.training import Example
from spacy.util import load_model_from_config
from thinc.api import Adam, Config, fix_random_seed

EMBED = {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 12, "attrs": ["NORM", "SUFFIX"], "rows": [500, 100]}
LINEAR = {"@architectures": "spacy_rnn.NgramLinear.v1", "exclusive_classes": True, "length": 1024}
TRAIN = [("the cat sat on the mat", "CAT"), ("the dog sat on the rug", "DOG"), ("a cat lay", "CAT"),
         ("a dog lay", "DOG"), ("my cat saw", "CAT"), ("my dog saw", "DOG")]
HELD_OUT = ["the cat lay on the rug", "a dog saw the cat", ""]


def model_config(architecture="spacy_rnn.TextCatRNN.v1", **settings):
    model = {"@architectures": architecture, "exclusive_classes": True, "width": 16, "tok2vec": EMBED, **settings}
    if "Ensemble" in architecture:
        model["linear_model"] = LINEAR
    return model


def textcat_nlp(architecture="spacy_rnn.TextCatRNN.v1", **settings):
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat", config={"model": model_config(architecture, **settings)})
    return nlp


def spacy_pretraining_defaults():
    """spaCy's default [pretraining] block, which nlp.initialize resolves whole."""
    return dict(Config().from_disk(DEFAULT_CONFIG_PRETRAIN_PATH, interpolate=False)["pretraining"])


def examples(nlp):
    return [Example.from_dict(nlp.make_doc(text), {"cats": {"CAT": float(label == "CAT"),
                                                            "DOG": float(label == "DOG")}})
            for text, label in TRAIN]


def trained_encoder_file(tmp_path, model, make_examples):
    """What `spacy pretrain` saves: the bytes of the "encoder" ref of a text
    classifier with the config `model`, here after a few updates on
    `make_examples(nlp)` so that its weights are not those of a fresh model;
    and the classifier's pipeline."""
    fix_random_seed(1)
    source = spacy.blank("en")
    source.add_pipe("textcat", config={"model": model})
    optimizer = source.initialize(lambda: make_examples(source), sgd=Adam(0.01))
    for _ in range(3):
        source.update(make_examples(source), sgd=optimizer)
    path = tmp_path / "model-last.bin"
    path.write_bytes(source.get_pipe("textcat").model.get_ref("encoder").to_bytes())
    return source, path


def init_tok2vec_config(component_config, path, component="textcat", layer="encoder"):
    """The config of a pipeline of one component whose nlp.initialize loads
    `path` (unless None) into the component's `layer` ([pretraining] and
    [initialize] init_tok2vec)."""
    config = spacy.blank("en").config
    config["nlp"]["pipeline"] = [component]
    config["components"] = {component: component_config}
    config["pretraining"] = {**spacy_pretraining_defaults(), "component": component, "layer": layer}
    config["initialize"]["init_tok2vec"] = str(path) if path else None
    return config


def init_tok2vec_nlp(path, architecture="spacy_rnn.TextCatRNN.v1", **settings):
    component = {"factory": "textcat", "model": model_config(architecture, **settings)}
    return load_model_from_config(init_tok2vec_config(component, path), auto_fill=True)


def shim_weights(data):
    """The torch weights of every shim of a saved thinc model, by name."""
    msg = srsly.msgpack_loads(data)
    return {key: value for shims in msg["shims"] for shim in shims
            for key, value in srsly.msgpack_loads(shim)["state"].items()}


def states(nlp, texts):
    encoder = nlp.get_pipe("textcat").model.get_ref("encoder")
    return encoder.predict([nlp.make_doc(text) for text in texts])


@pytest.mark.parametrize("saved,configured", [
    (["max", "last"], ["max", "last", "mean"]),
    (["mean"], ["last", "max"]),
    (["max", "last", "attention"], ["attention", "mean"]),
])
@pytest.mark.parametrize("architecture", ["spacy_rnn.TextCatRNN.v1", "spacy_rnn.TextCatRNNEnsemble.v1"])
def test_an_encoder_loads_into_a_classifier_with_another_pooling_of_the_same_weights(
    saved, configured, architecture, tmp_path
):
    source, path = trained_encoder_file(tmp_path, model_config(architecture, pooling=saved), examples)
    fix_random_seed(0)
    nlp = init_tok2vec_nlp(path, architecture, pooling=configured)
    nlp.initialize(lambda: examples(nlp))

    model = nlp.get_pipe("textcat").model
    loaded = shim_weights(model.get_ref("encoder").to_bytes())
    for key, value in shim_weights(path.read_bytes()).items():
        numpy.testing.assert_array_equal(loaded[key], value)
    for ours, theirs in zip(states(nlp, HELD_OUT), states(source, HELD_OUT)):
        numpy.testing.assert_array_equal(ours, theirs)
    # The classifier pools as its own config says, with the loaded encoder.
    module = model.get_ref("rnn").shims[0].module
    assert module.pooling.methods == tuple(configured)
    assert model.get_ref("rnn").shims[0].cfg["pooling"] == configured
    assert model.get_ref("rnn").get_dim("nO") == 16 * len(configured)

    # It trains, and the saved pipeline loads with its own pooling.
    optimizer = nlp.create_optimizer()
    for _ in range(2):
        nlp.update(examples(nlp), sgd=optimizer)
    expected = [nlp(text).cats for text in HELD_OUT]
    assert len({round(cats["CAT"], 6) for cats in expected}) > 1
    reloaded = textcat_nlp(architecture, pooling=configured).from_bytes(nlp.to_bytes())
    assert [reloaded(text).cats for text in HELD_OUT] == expected


@pytest.mark.parametrize("saved,configured,missing_or_extra", [
    (["max", "last"], ["max", "attention"],
     "pooling.attention.bias, pooling.attention.weight missing from the weights"),
    (["attention"], ["max"], "pooling.attention.bias, pooling.attention.weight in the weights but not in the model"),
])
def test_attention_pooling_must_be_in_both_or_neither(saved, configured, missing_or_extra, tmp_path):
    _, path = trained_encoder_file(tmp_path, model_config(pooling=saved), examples)
    fix_random_seed(0)
    nlp = textcat_nlp(pooling=configured)
    nlp.initialize(lambda: examples(nlp))
    before = nlp.get_pipe("textcat").model.to_bytes()
    with pytest.raises(ValueError) as error:
        nlp.get_pipe("textcat").model.get_ref("encoder").from_bytes(path.read_bytes())
    message = str(error.value)
    assert missing_or_extra in message
    assert f"pooling = {saved!r} in the weights, {configured!r} in the config" in message
    assert "attention pooling has weights" in message
    assert nlp.get_pipe("textcat").model.to_bytes() == before
    with pytest.raises(ValueError, match="pooling.attention"):
        init_tok2vec_nlp(path, pooling=configured).initialize(lambda: examples(nlp))


def test_other_encoder_settings_are_still_refused(tmp_path):
    _, path = trained_encoder_file(tmp_path, model_config(), examples)
    nlp = textcat_nlp(pooling=["mean"], cell="gru")
    nlp.initialize(lambda: examples(nlp))
    with pytest.raises(ValueError, match="cell = 'lstm' in the weights, 'gru' in the config"):
        nlp.get_pipe("textcat").model.get_ref("encoder").from_bytes(path.read_bytes())


def test_a_whole_classifier_loads_only_with_its_own_pooling():
    """The output layer of a saved classifier was trained on its own pooled
    features: the pipeline's weights keep the strict check, even where the
    other pooling has as many features and no weights."""
    fix_random_seed(0)
    saved = textcat_nlp(pooling=["max", "last"])
    saved.initialize(lambda: examples(saved))
    other = textcat_nlp(pooling=["mean", "last"])
    other.initialize(lambda: examples(other))
    message = r"pooling = \['max', 'last'\] in the weights, \['mean', 'last'\] in the config"
    with pytest.raises(ValueError, match=message):
        other.get_pipe("textcat").from_bytes(saved.get_pipe("textcat").to_bytes())


def test_the_encoder_ref_runs_the_classifiers_module_under_its_id():
    """The encoder ref runs the classifier's own torch module, keyed alike in
    the optimizer (thinc keys weights by shim id), in a deep copy too."""
    nlp = textcat_nlp()
    nlp.initialize(lambda: examples(nlp))
    model = nlp.get_pipe("textcat").model
    for classifier in (model, copy.deepcopy(model)):
        pooled_shim = classifier.get_ref("rnn").shims[0]
        view_shim = classifier.get_ref("encoder").layers[-1].shims[0]
        assert view_shim.id == pooled_shim.id and view_shim.module is pooled_shim.module
    assert classifier.get_ref("rnn").shims[0].id != model.get_ref("rnn").shims[0].id
