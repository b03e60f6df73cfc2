"""ULMFiT's fine-tuning schedule (spacy_rnn.pretrained_encoder_schedule.v3):
each part of a model learns at layer_decay times the rate of the part above
it and is unfrozen unfreeze_steps after it, under the optimizer's rate, e.g.
thinc's slanted triangular one."""
import numpy
import pytest
from spacy.util import registry
from thinc.api import SGD, fix_random_seed

from spacy_rnn.layers.checked import LEARN_RATE_SCALE, SUBMODULE_LEARN_RATE_SCALES
from spacy_rnn.training import part_scales
from test_pretrain import (ENSEMBLE, TEXTCAT_RNN, examples, moved, pretrain_config, seq2seq_nlp, spacy_cli,
                           textcat_nlp, title_examples)
from spacy.tokens import DocBin

SCHEDULE = "spacy_rnn.pretrained_encoder_schedule.v3"


def test_each_part_gets_its_share_once_unfrozen():
    assert [part_scales(step, 0.5, 3) for step in (0, 2, 3, 5, 6, 1000)] == [
        {"top": 1.0, "recurrent": 0.0, "embedding": 0.0},
        {"top": 1.0, "recurrent": 0.0, "embedding": 0.0},
        {"top": 1.0, "recurrent": 0.5, "embedding": 0.0},
        {"top": 1.0, "recurrent": 0.5, "embedding": 0.0},
        {"top": 1.0, "recurrent": 0.5, "embedding": 0.25},
        {"top": 1.0, "recurrent": 0.5, "embedding": 0.25},
    ]
    assert part_scales(0, 0.38, 0) == {"top": 1.0, "recurrent": 0.38, "embedding": 0.38**2}


def test_the_rate_curve_is_the_slanted_triangle_times_each_parts_share():
    """Each part's rate at update t (from 0) under thinc's slanted_triangular.v1,
    Howard & Ruder's eq. 3: cut = T * cut_frac, p = t'/cut before the cut and
    1 - (t' - cut) / (cut * (1/cut_frac - 1)) after it, where t' = t + 1,
    rate = max_rate * (1 + p * (ratio - 1)) / ratio."""
    optimizer = registry.resolve({"optimizer": {
        "@optimizers": "Adam.v1",
        "learn_rate": {"@schedules": "slanted_triangular.v1", "max_rate": 0.01, "num_steps": 100, "cut_frac": 0.1,
                       "ratio": 32}}})["optimizer"]
    rates = {}
    for step in range(100):
        rates[step] = {part: optimizer.learn_rate * scale for part, scale in part_scales(step, 0.5, 5).items()}
        optimizer.step_schedules()
    expected = {  # step: (the top's rate, the recurrent network's, the embedding's)
        0: (0.01 * (1 + 0.1 * 31) / 32, 0.0, 0.0),
        4: (0.01 * (1 + 0.5 * 31) / 32, 0.0, 0.0),
        5: (0.01 * (1 + 0.6 * 31) / 32, 0.5 * 0.01 * (1 + 0.6 * 31) / 32, 0.0),
        9: (0.01, 0.005, 0.0),  # the peak, at t' = cut
        10: (0.01 * (1 + (1 - 1 / 90) * 31) / 32, 0.005 * (1 + (1 - 1 / 90) * 31) / 32,
             0.0025 * (1 + (1 - 1 / 90) * 31) / 32),  # the embedding learns from step 2 * 5
        54: (0.01 * (1 + 0.5 * 31) / 32, 0.005 * (1 + 0.5 * 31) / 32, 0.0025 * (1 + 0.5 * 31) / 32),
        99: (0.01 / 32, 0.005 / 32, 0.0025 / 32),  # at T: max_rate / ratio
    }
    for step, (top, recurrent, embedding) in expected.items():
        assert rates[step]["top"] == pytest.approx(top, rel=1e-9)
        assert rates[step]["recurrent"] == pytest.approx(recurrent, rel=1e-9)
        assert rates[step]["embedding"] == pytest.approx(embedding, rel=1e-9)


def part_weights(model):
    """Copies of the weights of each part: embedding (tok2vec params), recurrent (the RNN's torch weights but the
    pooling's), top (every other param, and the pooling's torch weights)."""
    embedding_nodes = {node.id for node in model.get_ref("tok2vec").walk()}
    module = model.get_ref("rnn").shims[0].module
    weights = {"embedding": [], "recurrent": [], "top": []}
    for node in model.walk():
        for name in node.param_names:
            if node.has_param(name):
                weights["embedding" if node.id in embedding_nodes else "top"].append(node.get_param(name).copy())
    for name, value in module.named_parameters():
        weights["recurrent" if name.startswith("encoder.") else "top"].append(value.detach().clone().numpy())
    return weights


def update(nlp, optimizer, schedule, step):
    """One update at `step` with dropout 0 and seed 1; how far each part's weights moved (one sum per array)."""
    model = nlp.get_pipe("textcat").model
    schedule(nlp, {"step": step, "epoch": 0})
    before = part_weights(model)
    fix_random_seed(1)
    nlp.update(examples(nlp), sgd=optimizer, drop=0.0)
    after = part_weights(model)
    return {part: moved(before[part], after[part]) for part in before}


@pytest.mark.parametrize("architecture", [TEXTCAT_RNN, ENSEMBLE])
def test_frozen_parts_do_not_move_and_unfrozen_ones_move_at_their_share(architecture):
    fix_random_seed(0)
    nlp = textcat_nlp(architecture, pooling=["attention", "max"])
    nlp.initialize(lambda: examples(nlp))
    model = nlp.get_pipe("textcat").model
    schedule = registry.callbacks.get(SCHEDULE)(layer_decay=0.5, unfreeze_steps=2)
    optimizer = SGD(0.1)
    for step, learning in ((0, {"top"}), (1, {"top"}), (2, {"top", "recurrent"})):
        moves = update(nlp, optimizer, schedule, step)
        assert all(max(values) > 0 for part, values in moves.items() if part in learning), step
        assert all(max(values) == 0 for part, values in moves.items() if part not in learning), step
    # From step 4 every part learns: the recurrent network at half the rate, the embedding at a quarter, as far as
    # they move from the same weights and gradients at the full rate (plain SGD: the step is rate * gradient).
    start = model.to_bytes()
    scaled = update(nlp, optimizer, schedule, 4)
    model.from_bytes(start)
    full = update(nlp, optimizer, registry.callbacks.get(SCHEDULE)(), 4)
    for part, share in (("top", 1.0), ("recurrent", 0.5), ("embedding", 0.25)):
        assert sum(scaled[part]) > 0
        numpy.testing.assert_allclose(scaled[part], [share * value for value in full[part]], rtol=1e-3, atol=1e-7)


def test_the_seq2seq_encoder_and_tok2vec_get_their_shares():
    nlp = seq2seq_nlp()
    nlp.initialize(lambda: title_examples(nlp))
    model = nlp.get_pipe("rnn_seq2seq").model
    registry.callbacks.get(SCHEDULE)(layer_decay=0.5, unfreeze_steps=2)(nlp, {"step": 2, "epoch": 0})
    assert {node.attrs[LEARN_RATE_SCALE] for node in model.get_ref("tok2vec").walk()} == {0.0}
    assert model.get_ref("encoder_decoder").attrs[SUBMODULE_LEARN_RATE_SCALES] == {"encoder": 0.5}  # decoder: 1


def test_the_schedule_refuses_negative_settings():
    with pytest.raises(ValueError, match="layer_decay and unfreeze_steps must be 0 or more"):
        registry.callbacks.get(SCHEDULE)(layer_decay=-0.5)


def test_spacy_train_runs_with_the_schedule_and_a_slanted_triangular_rate(tmp_path):
    nlp = textcat_nlp()
    DocBin(docs=[eg.reference for eg in examples(nlp)]).to_disk(tmp_path / "train.spacy")
    config = pretrain_config("textcat", "encoder", train=tmp_path / "train.spacy", dev=tmp_path / "train.spacy")
    config["training"]["before_update"] = {"@callbacks": SCHEDULE, "layer_decay": 0.38, "unfreeze_steps": 1}
    config["training"]["optimizer"]["learn_rate"] = {
        "@schedules": "slanted_triangular.v1", "max_rate": 0.01, "num_steps": 4, "cut_frac": 0.25}
    config.to_disk(tmp_path / "train.cfg")
    spacy_cli("spacy", "train", str(tmp_path / "train.cfg"), "--output", str(tmp_path / "trained"))
    assert (tmp_path / "trained" / "model-last").is_dir()
