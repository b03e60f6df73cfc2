"""configs/seq2seq_titles.cfg, seq2seq_titles_copy.cfg and
seq2seq_titles_pretrained.cfg: `spacy debug config` passes, and `spacy train` (no --code: entry points only) learns a copy task from JSONL records
{"text", "target"}, read by spacy_rnn.Seq2SeqJSONL.v1. (`spacy evaluate`
reads DocBins only: Docs that carry their targets, see set_target.)"""
import json
import random
import subprocess
import sys

import pytest
import spacy
from spacy.tokens import DocBin

from conftest import REPO
from spacy_rnn.corpus import read_jsonl

sys.path.append(str(REPO / "project" / "scripts"))
from rnnproject.corpora import seq2seq_docs  # noqa: E402

CONFIG = REPO / "configs" / "seq2seq_titles.cfg"
COPY_CONFIG = REPO / "configs" / "seq2seq_titles_copy.cfg"
PRETRAINED_CONFIG = REPO / "configs" / "seq2seq_titles_pretrained.cfg"
WIDE_PRETRAIN_CONFIG = REPO / "configs" / "pretrain_textcat_lstm_w256.cfg"
SMALL_MODEL = {
    "components.rnn_seq2seq.min_freq": "1",
    "components.rnn_seq2seq.beam_size": "2",
    "components.rnn_seq2seq.model.width": "32",
    "components.rnn_seq2seq.model.target_width": "16",
    "components.rnn_seq2seq.model.dropout": "0.0",
    "components.rnn_seq2seq.model.tok2vec.width": "16",
    "components.rnn_seq2seq.model.tok2vec.attrs": '["ORTH"]',
    "components.rnn_seq2seq.model.tok2vec.rows": "[300]",
    "training.dropout": "0.0",
    "training.optimizer.learn_rate": "0.01",
    "training.batcher.size": "8",
    "training.logger.progress_bar": "false",
}


def spacy_cli(*args):
    result = subprocess.run([sys.executable, "-m", "spacy", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def overrides(settings):
    return [arg for name, value in settings.items() for arg in (f"--{name}", value)]


@pytest.fixture(scope="module")
def copy_jsonl(tmp_path_factory):
    """40 sequences of colour words whose target is the sequence itself."""
    rng = random.Random(0)
    words = "red green blue black white pink grey gold".split()
    path = tmp_path_factory.mktemp("copy") / "copy.jsonl"
    with path.open("w", encoding="utf8") as file_:
        for _ in range(40):
            text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 5)))
            file_.write(json.dumps({"text": text, "target": text}) + "\n")
    return path


@pytest.mark.parametrize("config", [CONFIG, COPY_CONFIG, PRETRAINED_CONFIG], ids=lambda path: path.name)
def test_debug_config_passes(copy_jsonl, config):
    out = spacy_cli("debug", "config", str(config), "--paths.train", str(copy_jsonl), "--paths.dev", str(copy_jsonl))
    assert "Config is valid" in out


@pytest.mark.parametrize("config", [CONFIG, COPY_CONFIG], ids=lambda path: path.name)
def test_spacy_train_learns_to_copy(copy_jsonl, tmp_path, config):
    settings = dict(SMALL_MODEL, **{"training.max_epochs": "40", "training.eval_frequency": "50"})
    spacy_cli(
        "train", str(config), "--paths.train", str(copy_jsonl), "--paths.dev", str(copy_jsonl),
        "--output", str(tmp_path / "out"), *overrides(settings),
    )
    meta = json.loads((tmp_path / "out" / "model-best" / "meta.json").read_text())
    assert meta["performance"]["s2s_rougeL"] > 0.9
    nlp = spacy.load(tmp_path / "out" / "model-best")
    assert nlp("red blue gold")._.generated.split()[0] in {"red", "blue", "gold"}
    metrics, records = tmp_path / "metrics.json", list(read_jsonl(copy_jsonl, required=("text", "target")))
    DocBin(docs=seq2seq_docs(spacy.blank("en"), records), store_user_data=True).to_disk(tmp_path / "copy.spacy")
    spacy_cli("evaluate", str(tmp_path / "out" / "model-best"), str(tmp_path / "copy.spacy"), "--output", str(metrics))
    scores = json.loads(metrics.read_text())
    assert scores["s2s_rougeL"] == pytest.approx(meta["performance"]["s2s_rougeL"])
    assert set(scores) >= {"s2s_rouge1", "s2s_rouge2", "s2s_rougeL", "s2s_bleu", "s2s_exact"}
    if config == COPY_CONFIG:  # scorer v3
        assert scores["s2s_copied"] > 0.9 and 0 < scores["s2s_distinct"] <= 1


def test_pretrained_config_is_the_copy_config_with_the_wide_pretrained_encoder():
    """seq2seq_titles_pretrained.cfg is seq2seq_titles_copy.cfg with the tok2vec
    and encoder settings of pretrain_textcat_lstm_w256.cfg, and a [pretraining]
    block that names its encoder, so that init_tok2vec loads that config's
    pretrained encoder, and the fine-tuning schedule (at the full rate)."""
    from spacy.util import load_config

    pretrained = load_config(PRETRAINED_CONFIG)
    copy = load_config(COPY_CONFIG)
    wide = load_config(WIDE_PRETRAIN_CONFIG)
    model, textcat = pretrained["components"]["rnn_seq2seq"]["model"], wide["components"]["textcat"]["model"]
    assert model["tok2vec"] == textcat["tok2vec"]
    assert {key: model[key] for key in ("cell", "width", "depth", "bidirectional", "activation")} == {
        key: textcat[key] for key in ("cell", "width", "depth", "bidirectional", "activation")}
    assert (pretrained["pretraining"]["component"], pretrained["pretraining"]["layer"]) == ("rnn_seq2seq", "encoder")
    assert pretrained["initialize"]["init_tok2vec"] == "${paths.init_tok2vec}"
    assert pretrained["training"]["before_update"] == {
        "@callbacks": "spacy_rnn.pretrained_encoder_schedule.v2", "learn_rate_scale": 1.0, "frozen_steps": 0}
    pretrained["training"]["before_update"] = None
    model["tok2vec"], model["width"] = copy["components"]["rnn_seq2seq"]["model"]["tok2vec"], 128
    for section, key in [("paths", "raw_text"), ("paths", "lm_words"), ("corpora", "pretrain")]:
        del pretrained[section][key]
    pretrained["pretraining"] = {}
    assert pretrained == copy


def test_spacy_train_starts_the_title_model_from_an_encoder_saved_by_the_wide_pretrain_config(copy_jsonl, tmp_path):
    """The encoder file of pretrain_textcat_lstm_w256.cfg (what spacy pretrain
    saves: its textcat's encoder ref) loads into seq2seq_titles_pretrained.cfg."""
    from spacy.util import load_config, load_model_from_config

    textcat = load_model_from_config(load_config(WIDE_PRETRAIN_CONFIG), auto_fill=True)
    encoder = textcat.get_pipe("textcat").model.get_ref("encoder")
    encoder.initialize(X=[textcat.make_doc("Give it a doc to infer shapes")])
    (tmp_path / "encoder.bin").write_bytes(encoder.to_bytes())
    settings = {"training.max_steps": "2", "training.eval_frequency": "2", "training.logger.progress_bar": "false"}
    out = spacy_cli(
        "train", str(PRETRAINED_CONFIG), "--paths.train", str(copy_jsonl), "--paths.dev", str(copy_jsonl),
        "--paths.init_tok2vec", str(tmp_path / "encoder.bin"), "--output", str(tmp_path / "out"), "--verbose",
        *overrides(settings),
    )
    assert f"Loaded pretrained weights from {tmp_path / 'encoder.bin'}" in out
    assert (tmp_path / "out" / "model-last").is_dir()
