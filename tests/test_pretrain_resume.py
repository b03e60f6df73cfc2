"""Resuming a pretraining where it stopped: the training state
(spacy_rnn.training_state) names each parameter by its path, so that the
weights, Adam's moments, step counts and averages, and the random generators,
restore into a model and optimizer built afresh (with other ids); the
projects' pretraining script saves it after each epoch and resumes from it
exactly."""
import numpy
import pytest
import srsly
from spacy.training.pretrain import make_update
from spacy.util import registry
from thinc.api import fix_random_seed, set_dropout_rate

from spacy_rnn.training_state import load_training_state, parameters, save_training_state, training_state
from test_pretrain import CORPUS, pretrain_config, pretrainable, textcat_nlp
from test_pretrain import words  # noqa: F401 (the fixture)
from test_pretrain_steps import epochs_logged, interrupt_in_epoch, pretrain
from test_pretrain_steps import toy  # noqa: F401 (the fixture)

OPTIMIZERS = [{"@optimizers": "Adam.v1", "learn_rate": 0.01},
              {"@optimizers": "spacy_rnn.LazyAdam.v1", "learn_rate": 0.01, "L2": 0.01}]
REGULARISED = {"activation_penalty": 1.0, "temporal_penalty": 1.0, "embedding_dropout": 0.1, "weight_drop": 0.3}


def objective_and_optimizer(words, optimizer, seed=0, **settings):
    """A fresh BiLM.v2 objective on a fresh text classifier, with dropout 0.2, and a fresh optimizer."""
    fix_random_seed(seed)
    nlp = textcat_nlp(**settings)
    bilm = registry.architectures.get("spacy_rnn.BiLM.v2")(str(words), **REGULARISED)(nlp.vocab, pretrainable(nlp))
    bilm.initialize(X=[nlp.make_doc("Give it a doc to infer shapes")])
    set_dropout_rate(bilm, 0.2)
    return nlp, bilm, registry.resolve({"optimizer": optimizer})["optimizer"]


def assert_same_state(state, other):
    assert set(state["parameters"]) == set(other["parameters"])
    for path, entry in state["parameters"].items():
        assert set(entry) == set(other["parameters"][path]), path
        for name, value in entry.items():
            numpy.testing.assert_array_equal(value, other["parameters"][path][name], err_msg=f"{path} {name}")


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=["Adam", "LazyAdam"])
def test_the_state_restores_into_a_model_built_afresh_and_training_continues_exactly(words, optimizer, tmp_path):
    nlp, bilm, adam = objective_and_optimizer(words, optimizer)
    docs = [nlp.make_doc(text) for text in CORPUS]
    for _ in range(3):
        make_update(bilm, docs, adam, bilm.attrs["loss"])
    save_training_state(tmp_path / "state.bin", bilm, adam)
    saved = training_state(bilm, adam)
    paths = parameters(bilm)
    assert any("/shims/" in path and "weight_hh_l0" in path for path in paths)  # the encoder's torch weights
    assert any("/shims/" in path and "heads." in path for path in paths)  # the language model's output layer
    assert all(saved["parameters"][path]["step"] == 3 for path in paths)

    loss = make_update(bilm, docs, adam, bilm.attrs["loss"])  # the uninterrupted training goes on

    _, resumed, resumed_adam = objective_and_optimizer(words, optimizer, seed=7)  # other weights, other ids
    assert {p.key for p in parameters(resumed).values()}.isdisjoint(p.key for p in paths.values())
    load_training_state(tmp_path / "state.bin", resumed, resumed_adam)
    assert_same_state(training_state(resumed, resumed_adam), saved)
    # The next update, dropout masks included, is the one the uninterrupted training made.
    assert make_update(resumed, docs, resumed_adam, resumed.attrs["loss"]) == loss
    assert_same_state(training_state(resumed, resumed_adam), training_state(bilm, adam))


def test_a_state_of_another_model_is_refused(words, tmp_path):
    nlp, bilm, adam = objective_and_optimizer(words, OPTIMIZERS[0])
    make_update(bilm, [nlp.make_doc(text) for text in CORPUS], adam, bilm.attrs["loss"])
    save_training_state(tmp_path / "state.bin", bilm, adam)
    _, wider, wider_adam = objective_and_optimizer(words, OPTIMIZERS[0], width=32)
    with pytest.raises(ValueError, match="saved from another model: .* has the shape"):
        load_training_state(tmp_path / "state.bin", wider, wider_adam)
    _, lazy, lazy_adam = objective_and_optimizer(words, OPTIMIZERS[1])
    with pytest.raises(ValueError, match="saved with a Optimizer optimizer, the config builds a LazyAdam"):
        load_training_state(tmp_path / "state.bin", lazy, lazy_adam)
    (tmp_path / "cut.bin").write_bytes((tmp_path / "state.bin").read_bytes()[:100])
    with pytest.raises(ValueError, match="Cannot read the training state"):
        load_training_state(tmp_path / "cut.bin", bilm, adam)


def interrupted_in_epoch_1(config, out, overrides, monkeypatch):
    """Pretrain into `out` until Ctrl-C at the first update of epoch 1."""
    with monkeypatch.context() as patch:
        interrupt_in_epoch(patch, out, 1)
        with pytest.raises(KeyboardInterrupt):
            pretrain.pretrain(config, out, overrides)


def test_an_interrupted_pretraining_resumes_as_the_uninterrupted_one_goes_on(toy, tmp_path, monkeypatch):
    _, overrides = toy
    config = pretrain_config("textcat", "encoder")  # with dropout and every regulariser: random draws to continue
    config["pretraining"]["dropout"] = 0.2
    config["pretraining"]["objective"] = {"@architectures": "spacy_rnn.BiLM.v2", "words": "${paths.lm_words}",
                                          **REGULARISED}
    config.to_disk(tmp_path / "regularised.cfg")
    config = tmp_path / "regularised.cfg"
    whole = pretrain.pretrain(config, tmp_path / "whole", overrides)
    assert whole["training_state_restored"] is False
    assert sorted(path.name for path in (tmp_path / "whole").glob("resume*")) == ["resume1.bin"]  # the latest only

    out = tmp_path / "interrupted"
    interrupted_in_epoch_1(config, out, overrides, monkeypatch)
    assert epochs_logged(out) == [0, 2] and (out / "resume0.bin").exists()
    info = pretrain.pretrain(config, out, overrides)
    assert info["resumed_after_epoch"] == 0 and info["training_state_restored"] is True
    for name in ("model0.bin", "model1.bin", "model-last.bin", "resume1.bin"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    logged = list(srsly.read_jsonl(out / "log.jsonl"))
    assert [row["epoch_loss"] for row in logged] == [row["epoch_loss"] for row in
                                                     srsly.read_jsonl(tmp_path / "whole" / "log.jsonl")]


def test_without_a_state_file_a_resume_loads_the_weights_only(toy, tmp_path, monkeypatch, capsys):
    config, overrides = toy
    out = tmp_path / "pretrained"
    interrupted_in_epoch_1(config, out, overrides, monkeypatch)
    (out / "resume0.bin").unlink()
    info = pretrain.pretrain(config, out, overrides)
    assert info["resumed_after_epoch"] == 0 and info["training_state_restored"] is False
    message = "No resume0.bin: the optimizer and the language model's output layer started afresh"
    assert message in capsys.readouterr().out
