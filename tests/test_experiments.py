"""The experiments project (experiments/project.yml): every study but the
titles of other products (which needs internet) runs end to end with
smoke-size vars on slices of the real data, in a copy of the project, and its
outputs are checked; a second run skips every step."""
import json
import shutil

import pytest
import spacy
import srsly
from spacy.tokens import DocBin

from conftest import REPO, data_dir
from test_project import QUIET_THREADS, SMOKE_TIMEOUT, assert_png, copy_project, fraction, load_json, run

SCREENED = ["scratch", "pretrained", "scratch-recipe", "pretrained-recipe", "frozen", "pretrained-stlr",
            "pretrained-staged"]
SMOKE_VARS = {"limit_train": 200, "limit_eval": 50, "max_steps": 4, "pretrain_max_words": 3000, "pretrain_epochs": 1,
              "screen_settings": " ".join(SCREENED)}


def run_all(project):
    variables = [f"--vars.{name}={value}" for name, value in {"data_dir": data_dir(), **SMOKE_VARS}.items()]
    return run(["-m", "spacy", "project", "run", "all", str(project), *variables], env=QUIET_THREADS,
               timeout=SMOKE_TIMEOUT)


@pytest.fixture(scope="module")
def experiments(tmp_path_factory):
    """The `all` workflow with smoke-size vars, run once: (project folder, console output)."""
    if not data_dir().is_dir():
        pytest.skip(f"no real data: SPACY_RNN_DATA={data_dir()} is not a directory (point it at shared/data)")
    root = tmp_path_factory.mktemp("experiments")
    shutil.copytree(REPO / "docs", root / "docs")  # the screen step writes a block of docs/pretraining.md
    project = copy_project(root, "experiments")
    result = run_all(project)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return project, result.stdout


def test_the_movies_text_reads_the_unlabelled_imdb_reviews(experiments):
    project, stdout = experiments
    assert "assets/imdb/imdb_unsup.jsonl.gz:text: 49,891" in stdout
    texts = list(srsly.read_jsonl(project / "corpus" / "pretrain" / "movies" / "texts.jsonl"))
    assert texts and sum(len(text["text"].split()) for text in texts) <= 3000
    assert (project / "training" / "pretrain" / "products" / "model-last.bin").is_file()
    info = load_json(project / "training" / "pretrain" / "movies" / "pretrain.json")
    assert info["objective"] == "spacy_rnn.BiLM.v2"
    assert info["overrides"]["pretraining.objective.activation_penalty"] == 2.0


def test_each_study_writes_its_metrics(experiments):
    project, _ = experiments
    metrics = project / "metrics"
    names = {"rnn_pretrained": ", pretrained on movie reviews", "rnn_phrases": ", trained on all phrases",
             "rnn_phrases_pretrained": ", pretrained on movie reviews, trained on all phrases"}
    for key, suffix in names.items():
        record = load_json(metrics / "sst5" / f"{key}.json")
        assert record["system"].endswith(suffix) and record["n"] == 50 and fraction(record["accuracy"])
        assert 0.0 <= record["mae"] <= 4.0
    titles = load_json(metrics / "titles" / "rnn_pretrained.json")
    assert titles["system"].endswith(", pretrained on product reviews") and fraction(titles["rougeL"])
    imdb = load_json(metrics / "imdb" / "rnn.json")
    assert imdb["confusion"]["labels"] == ["neg", "pos"] and "mae" not in imdb
    assert_png(metrics / "imdb" / "rnn_confusion.png")
    assert "IMDB movie reviews" in (project / "reports" / "imdb.md").read_text(encoding="utf8")


def test_screen_trains_every_setting_from_scratch_and_from_the_encoder(experiments):
    project, _ = experiments
    for dataset in ("sst5", "imdb"):
        results = load_json(project / "metrics" / "screen" / f"{dataset}.json")
        assert list(results) == SCREENED
        for result in results.values():
            assert 0.0 <= result["dev_accuracy"] <= 100.0 and 0.0 <= result["dev_macro_f"] <= 100.0
            assert result["steps"] <= 4
        table = (project / "metrics" / "screen" / f"{dataset}.md").read_text(encoding="utf8")
        assert table.count("\n| ") == len(SCREENED) and "| frozen |" in table
        configs = {name: (project / "training" / "screen" / dataset / name / "config.cfg").read_text()
                   for name in results}
        assert all(("init_tok2vec = null" in text) == name.startswith("scratch") for name, text in configs.items())
        for name in ("scratch-recipe", "pretrained-recipe"):
            assert "slanted_triangular.v1" in configs[name] and "spacy.batch_by_sequence.v1" in configs[name]
            assert 'pooled_norm = "layer"' in configs[name]
        assert ("pretrained_encoder_schedule.v3" in configs["pretrained-recipe"]
                and "pretrained_encoder_schedule.v3" not in configs["scratch-recipe"])
        assert "spacy_rnn.PretrainedRNNFeatures.v1" in configs["frozen"]
        # one part alone: the rate over the config's own word batches; v3's unfreezing without the rest
        assert "slanted_triangular.v1" in configs["pretrained-stlr"] and "batch_by_words" in configs["pretrained-stlr"]
        assert "pretrained_encoder_schedule.v3" in configs["pretrained-staged"]
        assert "slanted_triangular" not in configs["pretrained-staged"] and "pooled_norm" not in configs["pretrained-staged"]
    page = (project.parent / "docs" / "pretraining.md").read_text(encoding="utf8")
    block = page.split("<!-- screen:start -->")[1].split("<!-- screen:end -->")[0]
    assert "#### imdb (dev split, max_epochs 1)" in block and "#### sst5 (dev split, max_epochs 8)" in block
    assert "encoder training/pretrain/movies/model-last.bin (" in block and "spacy_rnn.BiLM.v2" in block


def test_each_screen_setting_changes_only_its_parts_of_the_recipe(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(REPO / "experiments" / "scripts"))
    import screen
    from thinc.api import Config

    base = Config().from_disk(screen.CONFIGS / "pretrain_textcat_lstm_w256.cfg", interpolate=False)
    for name, setting in screen.SETTINGS.items():
        if setting.frozen:
            continue
        config = screen.setting_config(setting, base, tmp_path / "encoder.bin", 400, 16)
        model, training = config["components"]["textcat"]["model"], config["training"]
        assert (model.get("pooled_norm") == "layer") == ("norm" in setting.parts), name
        assert (training["batcher"]["@batchers"] == "spacy.batch_by_sequence.v1") == ("docs" in setting.parts), name
        rate = training["optimizer"]["learn_rate"]
        assert isinstance(rate, dict) == ("stlr" in setting.parts), name
        assert training["max_steps"] == (400 if {"docs", "stlr"} & set(setting.parts) else 0), name
        schedule = training["before_update"]["@callbacks"]
        assert schedule.endswith(".v3" if "staged" in setting.parts else ".v1"), name
        assert (config["paths"]["init_tok2vec"] is not None) == setting.encoder == name.startswith("pretrained"), name
    assert base["training"]["max_steps"] == 0 and "pooled_norm" not in base["components"]["textcat"]["model"]
    assert set(screen.SETTINGS["pretrained-recipe"].parts) == set(screen.RECIPE)
    # a batch size that grows with the updates goes on growing in the next epoch, as in spacy train
    nlp = spacy.blank("en")
    train = DocBin(docs=[nlp("a few words " * 4) for _ in range(500)])  # 6,000 words
    growing = base.copy()
    growing["training"]["batcher"]["size"]["compound"] = 1.2
    assert screen.word_batches(base, train, 1) == 12  # about 500 words a batch
    one, three = (screen.word_batches(growing, train, epochs) for epochs in (1, 3))
    assert one < three < 3 * one


def test_decoding_scores_every_setting_and_picks_one_of_them(experiments):
    project, _ = experiments
    decoding = json.loads((project / "metrics" / "titles" / "decoding.json").read_text())
    keys = ("beam_size", "length_penalty", "no_repeat_ngram_size", "prior_penalty")
    assert len(decoding["settings"]) == 24  # greedy: 2 blockings x 4 priors; beam 4: also 2 length penalties
    assert decoding["best"] in [{key: setting[key] for key in keys} for setting in decoding["settings"]]
    assert_png(project / "metrics" / "titles" / "decoding.png")


def test_second_run_skips_every_step(experiments):
    project, _ = experiments
    result = run_all(project)
    assert result.returncode == 0, result.stdout[-3000:]
    for step in srsly.read_yaml(project / "project.yml")["workflows"]["all"]:
        if step != "sources":  # always runs: it fingerprints the code
            assert f"Skipping '{step}': nothing changed" in result.stdout, step
