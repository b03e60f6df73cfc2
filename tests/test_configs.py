"""The shipped configs: `spacy debug config` passes on each, and
`spacy train` (no --code: entry points only) learns SST-5 from a slice."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy

from conftest import REPO
from spacy_rnn.corpus import read_jsonl

sys.path.append(str(REPO / "project" / "scripts"))
from rnnproject.corpora import label_names, textcat_docbin  # noqa: E402

TEXTCAT_CONFIGS = sorted(p.name for p in (REPO / "configs").glob("textcat_*.cfg"))
PRETRAIN_CONFIGS = sorted(p.name for p in (REPO / "configs").glob("pretrain_*.cfg"))


def spacy_cli(*args, cwd=None):
    result = subprocess.run([sys.executable, "-m", "spacy", *args], capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def sst5_docbin(data_dir: Path, split: str, limit: int, path: Path) -> Path:
    records = list(read_jsonl(data_dir / "stars" / "sst5" / f"sst5_{split}.jsonl", required=("text", "label")))
    labels = label_names(records)
    textcat_docbin(spacy.blank("en"), records[:limit], labels).to_disk(path)
    return path


@pytest.fixture(scope="module")
def sst5_slice(tmp_path_factory):
    from conftest import data_dir

    root = data_dir()
    if not root.is_dir():
        pytest.skip(f"no real data: SPACY_RNN_DATA={root} is not a directory (point it at shared/data)")
    out = tmp_path_factory.mktemp("sst5")
    return {
        "train": sst5_docbin(root, "train", 3000, out / "train.spacy"),
        "dev": sst5_docbin(root, "dev", 300, out / "dev.spacy"),
        "test": sst5_docbin(root, "test", 1000, out / "test.spacy"),
    }


def test_every_textcat_architecture_config_is_shipped():
    shipped = {"textcat_lstm.cfg", "textcat_gru.cfg", "textcat_rnn.cfg", "textcat_multilabel_lstm.cfg",
               "textcat_ensemble_lstm.cfg", "textcat_ensemble_lstm_w64.cfg"}
    assert shipped <= set(TEXTCAT_CONFIGS)
    assert any("RNNEncoder" in (REPO / "configs" / name).read_text() for name in TEXTCAT_CONFIGS)


@pytest.mark.parametrize("config", TEXTCAT_CONFIGS + PRETRAIN_CONFIGS)
def test_debug_config_passes(config, sst5_slice):
    out = spacy_cli(
        "debug", "config", str(REPO / "configs" / config),
        "--paths.train", str(sst5_slice["train"]), "--paths.dev", str(sst5_slice["dev"]),
    )
    assert "Config is valid" in out


@pytest.mark.parametrize("config", ["textcat_lstm.cfg", "textcat_ensemble_lstm.cfg"])
def test_spacy_train_learns_sst5(config, sst5_slice, tmp_path):
    spacy_cli(
        "train", str(REPO / "configs" / config),
        "--paths.train", str(sst5_slice["train"]), "--paths.dev", str(sst5_slice["dev"]),
        "--output", str(tmp_path / "out"), "--training.max_epochs", "2",
        "--training.logger.progress_bar", "false",
    )
    metrics = tmp_path / "metrics.json"
    spacy_cli("evaluate", str(tmp_path / "out" / "model-best"), str(sst5_slice["test"]), "--output", str(metrics))
    accuracy = json.loads(metrics.read_text())["cats_micro_f"]
    # 5 classes: chance is 0.20 and always answering the most frequent class gives 0.29.
    assert accuracy > 0.33


@pytest.mark.parametrize("config", TEXTCAT_CONFIGS + PRETRAIN_CONFIGS)
def test_shipped_config_scores_a_batch_with_empty_docs(config):
    """An empty Doc inside a batch gets scores like any other Doc (spaCy's
    TextCatReduce with reduce_max/reduce_last, and TextCatBOW.v3 with
    bigrams, fail on one)."""
    from spacy.training import Example
    from spacy.util import load_config

    config = load_config(REPO / "configs" / config, interpolate=True)
    nlp = spacy.blank("en")
    for name, component in config["components"].items():
        nlp.add_pipe(component["factory"], name=name, config={k: v for k, v in component.items() if k != "factory"})
    examples = [Example.from_dict(nlp.make_doc(text), {"cats": {"POS": float(i == 0), "NEG": float(i != 0)}})
                for i, text in enumerate(["a good film", "a bad film"])]
    nlp.initialize(lambda: examples)
    exclusive = any(component["factory"] == "textcat" for component in config["components"].values())
    for doc in nlp.pipe(["", "a fine day", "", "ok"]):
        assert set(doc.cats) == {"POS", "NEG"} and all(0 <= score <= 1 for score in doc.cats.values())
        if exclusive:
            assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5)


def test_pretrain_config_is_the_default_textcat_config_plus_pretraining():
    """configs/pretrain_textcat_ensemble_lstm_w64.cfg trains exactly what the
    default config trains; it adds the pretraining, the init_tok2vec path and
    the fine-tuning schedule of the pretrained encoder (at the full rate)."""
    from spacy.util import load_config

    pretrain = load_config(REPO / "configs" / "pretrain_textcat_ensemble_lstm_w64.cfg")
    default = load_config(REPO / "configs" / "textcat_ensemble_lstm_w64.cfg")
    assert PRETRAIN_CONFIGS == ["pretrain_textcat_ensemble_lstm_w256.cfg", "pretrain_textcat_ensemble_lstm_w64.cfg",
                                "pretrain_textcat_lstm_w256.cfg", "pretrain_textcat_lstm_w256_frozen.cfg",
                                "pretrain_textcat_lstm_w64.cfg"]
    assert pretrain["pretraining"]["component"] == "textcat" and pretrain["pretraining"]["layer"] == "encoder"
    assert pretrain["pretraining"]["objective"]["@architectures"] == "spacy_rnn.BiLM.v1"
    assert pretrain["corpora"]["pretrain"]["@readers"] == "spacy.JsonlCorpus.v1"
    assert pretrain["initialize"]["init_tok2vec"] == "${paths.init_tok2vec}"
    for section, key in [("paths", "raw_text"), ("paths", "lm_words"), ("corpora", "pretrain")]:
        del pretrain[section][key]
    assert pretrain["training"]["before_update"] == {
        "@callbacks": "spacy_rnn.pretrained_encoder_schedule.v1", "learn_rate_scale": 1.0, "frozen_steps": 0}
    pretrain["training"]["before_update"] = None
    pretrain["pretraining"] = {}
    assert pretrain == default


def test_pretrain_config_of_the_rnn_alone_has_the_same_encoder_without_the_linear_part():
    """pretrain_textcat_lstm_w64.cfg is the ensemble's pretrain config with
    TextCatRNN.v1 and no linear model: the same encoder, so the same
    pretrained weights load into both."""
    from spacy.util import load_config

    ensemble = load_config(REPO / "configs" / "pretrain_textcat_ensemble_lstm_w64.cfg")
    alone = load_config(REPO / "configs" / "pretrain_textcat_lstm_w64.cfg")
    model = ensemble["components"]["textcat"]["model"]
    del model["linear_model"]
    model["@architectures"] = "spacy_rnn.TextCatRNN.v1"
    assert alone == ensemble


@pytest.mark.parametrize("system", ["lstm", "ensemble_lstm"])
def test_wide_pretrain_config_differs_only_in_widths(system):
    """pretrain_textcat_{lstm,ensemble_lstm}_w256.cfg are their w64 configs
    with a BiLSTM of width 256 over embeddings of width 128 (so one
    pretrained encoder loads into both); the RNN alone pretrains with the
    language model's penalties that the bench measured (BiLM.v2, AR 2, TAR 1)."""
    from spacy.util import load_config

    narrow = load_config(REPO / "configs" / f"pretrain_textcat_{system}_w64.cfg")
    wide = load_config(REPO / "configs" / f"pretrain_textcat_{system}_w256.cfg")
    model = wide["components"]["textcat"]["model"]
    assert (model["width"], model["tok2vec"]["width"]) == (256, 128)
    model["width"], model["tok2vec"]["width"] = 64, 64
    if system == "lstm":
        regularised = {"@architectures": "spacy_rnn.BiLM.v2", "activation_penalty": 2.0, "temporal_penalty": 1.0,
                       "embedding_dropout": 0.0, "weight_drop": 0.0}
        assert wide["pretraining"]["objective"] == {**narrow["pretraining"]["objective"], **regularised}
        wide["pretraining"]["objective"] = narrow["pretraining"]["objective"]
    assert wide == narrow


def test_pretrain_config_pretraining_block_resolves(tmp_path):
    """`spacy debug config` does not check [pretraining]; spacy pretrain and
    spacy train (for init_tok2vec) resolve it, with or without a word list."""
    from spacy.schemas import ConfigSchemaPretrain
    from spacy.util import load_config, registry

    words = tmp_path / "words.txt"
    words.write_text("the\na\n", encoding="utf8")
    for lm_words in (None, str(words)):
        config = load_config(REPO / "configs" / "pretrain_textcat_ensemble_lstm_w64.cfg",
                             overrides={"paths.lm_words": lm_words}, interpolate=True)
        resolved = registry.resolve(config["pretraining"], schema=ConfigSchemaPretrain)
        assert callable(resolved["objective"])
