"""The user project (project/project.yml and project/scripts, with its helper
package rnnproject), and what the three projects share.

The `smoke` workflow runs end to end on slices of the real data (in a copy of
project/, so the checkout is left alone) and its outputs are checked: metrics
in range and consistent with their confusion matrices, pictures, reports, a
package that installs and loads, and a second run that skips every step.
Without the data, those tests are skipped with the reason. The project files
are checked for size, for prerequisites that a step of the same workflow
produces, and for READMEs that `spacy project document` writes. The download
and convert error paths and the converters of the canonical sources run on
small hand-made inputs.
"""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly
from packaging.requirements import Requirement

from conftest import REPO, data_dir

PROJECT = REPO / "project"
SCRIPTS = PROJECT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))

from rnnproject import canonical, corpora, datasets  # noqa: E402
from rnnproject.files import atomic_path, config_overrides  # noqa: E402
from spacy_rnn import __version__ as spacy_rnn_version  # noqa: E402
from spacy_rnn.corpus import DataError  # noqa: E402

PROJECTS = {name: REPO / name for name in ("project", "experiments", "benchmarks")}

SMOKE_TIMEOUT = 900
# On busy cores, torch's OpenMP threads spin-wait for each other: a few training steps then take 30x longer.
QUIET_THREADS = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(args, cwd=None, env=None, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def copy_project(root: Path, name: str = "project") -> Path:
    """A project folder in a fresh folder, beside links to what its commands
    read in the repository: ../configs, ../spacy_rnn, the user project (whose
    scripts the others run), and what the wheel is built from."""
    project = root / name
    shutil.copytree(PROJECTS[name], project, ignore=shutil.ignore_patterns(
        "assets", "corpus", "training", "metrics", "reports", "packages", "project.lock", "__pycache__"))
    for link in ("configs", "spacy_rnn", "setup.cfg", "pyproject.toml", "README.md", "project"):
        if not (root / link).exists():
            (root / link).symlink_to(REPO / link)
    return project


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke workflow, run once: (project folder, console output)."""
    data = data_dir()
    if not data.is_dir():
        pytest.skip(f"no real data: SPACY_RNN_DATA={data} is not a directory (point it at shared/data)")
    project = copy_project(tmp_path_factory.mktemp("smoke"))
    result = run(["-m", "spacy", "project", "run", "smoke", str(project), "--vars.data_dir", str(data)],
                 env=QUIET_THREADS, timeout=SMOKE_TIMEOUT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return project, result.stdout


def load_json(path: Path):
    return json.loads(path.read_text(encoding="utf8"))


def fraction(value) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def assert_png(path: Path):
    assert path.is_file(), f"{path} is missing"
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000


def assert_classifier_metrics(record, n_test, labels):
    assert record["n"] == n_test
    assert fraction(record["accuracy"]) and fraction(record["macro_f1"])
    assert list(record["per_class"]) == labels
    for scores in record["per_class"].values():
        assert all(fraction(float(scores[key])) for key in ("precision", "recall", "f1"))
    matrix = record["confusion"]["matrix"]
    assert record["confusion"]["labels"] == labels
    assert sum(map(sum, matrix)) == n_test
    assert sum(matrix[i][i] for i in range(len(labels))) / n_test == pytest.approx(record["accuracy"])
    assert [sum(row) for row in matrix] == [record["per_class"][label]["support"] for label in labels]


def test_smoke_sarcasm_metrics_and_pictures(smoke):
    project, _ = smoke
    metrics = project / "metrics" / "smoke" / "sarcasm"
    labels = ["NOT_SARCASM", "SARCASM"]
    rnn = load_json(metrics / "rnn.json")
    assert rnn["system"] == "spacy-rnn BiLSTM w32 + 2-gram linear"
    assert_classifier_metrics(rnn, 100, labels)
    assert "mae" not in rnn
    assert rnn["spacy_scores"]["cats_macro_f"] == pytest.approx(rnn["macro_f1"])
    assert rnn["words_per_second"] > 0 and rnn["train_seconds"] > 0
    for key in ("tfidf", "fasttext", "bow", "ensemble", "bilstm"):
        assert_classifier_metrics(load_json(metrics / f"{key}.json"), 100, labels)
    for key in ("rnn", "tfidf", "fasttext"):  # SARC's pairwise accuracy from the pair ids convert keeps
        record = load_json(metrics / f"{key}.json")
        assert record["n_pairs"] == 50 and fraction(record["pairwise"])
    for picture in ("rnn_confusion.png", "rnn_learning_curve.png", "bilstm_learning_curve.png"):
        assert_png(metrics / picture)
    log = [json.loads(line) for line in (project / "training" / "smoke" / "sarcasm" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [0, 4, 8, 12]


def test_smoke_stars_mae_matches_the_confusion_matrix(smoke):
    project, _ = smoke
    for key in ("rnn", "tfidf", "bow"):
        record = load_json(project / "metrics" / "smoke" / "sst5" / f"{key}.json")
        assert_classifier_metrics(record, 100, ["1", "2", "3", "4", "5"])
        matrix = record["confusion"]["matrix"]
        cells = [(abs(gold - pred), count) for gold, row in enumerate(matrix) for pred, count in enumerate(row)]
        assert record["mae"] == pytest.approx(sum(d * c for d, c in cells) / 100)
        assert record["within_one"] == pytest.approx(sum(c for d, c in cells if d <= 1) / 100)
        assert 0.0 <= record["mae"] <= 4.0


def test_smoke_titles_scores_and_examples(smoke):
    project, _ = smoke
    metrics = project / "metrics" / "smoke" / "titles"
    for key in ("rnn", "most_frequent", "first_words", "tfidf_nearest"):
        record = load_json(metrics / f"{key}.json")
        assert record["n"] == 100
        assert all(fraction(record[name]) for name in ("rouge1", "rouge2", "rougeL", "bleu", "exact"))
    assert load_json(metrics / "first_words.json")["rouge1"] > 0
    for key in ("rnn", "first_words"):
        record = load_json(metrics / f"{key}.json")
        assert fraction(record["distinct"]) and fraction(record["copied"]) and record["novel_n"] > 0
    assert load_json(metrics / "first_words.json")["copied"] == 1.0  # the review's own first words
    rows = [json.loads(line) for line in (metrics / "rnn_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 100 and all(row["gold"] and isinstance(row["pred"], str) for row in rows)
    assert_png(metrics / "rnn_learning_curve.png")


def test_smoke_report_compares_every_system_and_links_pictures(smoke):
    project, _ = smoke
    report = project / "reports" / "smoke.md"
    text = report.read_text(encoding="utf8")
    for system in ("spacy-rnn BiLSTM w32", "TF-IDF (1-2-grams) + LogReg", "spaCy TextCatBOW.v3",
                   "spaCy TextCatEnsemble.v2", "spaCy TorchBiLSTMEncoder + TextCatReduce",
                   "the most frequent training title", "encoder-decoder (copy)"):
        assert system in text
    assert "MAE (stars)" in text and "ROUGE-L" in text and "Example predictions" in text
    pictures = [line.split("](", 1)[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert len(pictures) == 5
    assert all((report.parent / picture).is_file() for picture in pictures)


def test_evaluate_appends_a_suffix_to_the_name_from_the_config(smoke, tmp_path):
    project, _ = smoke
    result = run([str(SCRIPTS / "evaluate.py"), str(project / "training" / "smoke" / "sarcasm" / "model-best"),
                  str(project / "corpus" / "smoke" / "sarcasm" / "test.spacy"), str(tmp_path), "--key", "rnn_pretrained",
                  "--name-suffix", ", pretrained on Reddit text"], cwd=project)
    assert result.returncode == 0, result.stderr
    record = load_json(tmp_path / "rnn_pretrained.json")
    assert record["system"] == "spacy-rnn BiLSTM w32 + 2-gram linear, pretrained on Reddit text"


def test_readme_results_are_written_from_the_metrics(smoke, tmp_path):
    project, _ = smoke
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- project-results:start -->\nold\n<!-- project-results:end -->\noutro\n")
    metrics = project / "metrics" / "smoke"
    sections = [f"SARC={metrics / 'sarcasm'}", f"SST-5={metrics / 'sst5'}", f"Titles={metrics / 'titles'}"]
    result = run([str(SCRIPTS / "report.py"), "readme", str(readme), *sections])
    assert result.returncode == 0, result.stderr
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    rnn = load_json(metrics / "sst5" / "rnn.json")
    assert f"| SST-5 | {100 * rnn['accuracy']:.1f} / {100 * rnn['macro_f1']:.1f} |" in text
    assert "| Titles |" in text
    for block in text.split("\n\n"):  # each table: as many cells in every row as in its header
        rows = [line for line in block.splitlines() if line.startswith("|")]
        assert len({line.count("|") for line in rows}) <= 1, block


def test_smoke_package_installs_beside_the_spacy_rnn_wheel_and_loads(smoke, tmp_path):
    """What docs/project.md says: install spacy-rnn's wheel from packages/spacy_rnn with the pipeline package,
    whose spacy-rnn requirement that wheel meets, then spacy.load it (spacy_rnn coming from that wheel)."""
    project, _ = smoke
    package = project / "packages" / "en_rnn_smoke_sarcasm-0.0.0"
    wheels = list((project / "packages" / "spacy_rnn").glob("spacy_rnn-*.whl"))
    assert len(wheels) == 1 and wheels[0].name.split("-")[1] == spacy_rnn_version
    meta = load_json(package / "meta.json")
    requirement = next(Requirement(req) for req in meta["requirements"] if req.startswith("spacy-rnn"))
    assert requirement.specifier.contains(spacy_rnn_version)
    sdist = package / "dist" / "en_rnn_smoke_sarcasm-0.0.0.tar.gz"
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(wheels[0]), str(sdist)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    code = ("import spacy, spacy_rnn; nlp = spacy.load('en_rnn_smoke_sarcasm'); "
            "print(sorted(nlp('yeah, great idea').cats), spacy_rnn.__file__)")
    env = {**os.environ, "PYTHONPATH": str(site)}
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    cats, module = loaded.stdout.strip().rsplit(" ", 1)
    assert cats == "['NOT_SARCASM', 'SARCASM']" and module.startswith(str(site))


def test_second_smoke_run_skips_every_step(smoke):
    project, _ = smoke
    result = run(["-m", "spacy", "project", "run", "smoke", str(project), "--vars.data_dir", str(data_dir())],
                 env=QUIET_THREADS)
    assert result.returncode == 0, result.stdout[-3000:]
    workflow = srsly.read_yaml(project / "project.yml")["workflows"]["smoke"]
    for step in workflow:
        if step != "sources":  # always runs: it fingerprints the code
            assert f"Skipping '{step}': nothing changed" in result.stdout, step


def test_training_reruns_when_the_package_code_changes(tmp_path):
    """The sources fingerprint that training depends on changes with any
    spacy_rnn/*.py file and not with __pycache__."""
    package = tmp_path / "pkg"
    (package / "__pycache__").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    output = tmp_path / "sources.txt"
    before = run([str(SCRIPTS / "sources.py"), str(output), str(package)])
    assert before.returncode == 0, before.stderr
    first = output.read_text()
    (package / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    run([str(SCRIPTS / "sources.py"), str(output), str(package)])
    assert output.read_text() == first
    (package / "a.py").write_text("x = 2\n")
    run([str(SCRIPTS / "sources.py"), str(output), str(package)])
    assert output.read_text() != first


# --- project.yml ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project_yml():
    return srsly.read_yaml(PROJECT / "project.yml")


def load_project(name: str):
    """A project's project.yml with its vars filled in (as Weasel reads it)."""
    from weasel.util import load_project_config

    return load_project_config(PROJECTS[name], interpolate=True)


def test_the_user_project_is_small(project_yml):
    assert len((PROJECT / "project.yml").read_text(encoding="utf8").splitlines()) <= 500
    assert len(project_yml["commands"]) <= 26
    assert {"all", "sarcasm", "stars", "titles", "smoke"} == set(project_yml["workflows"])


@pytest.mark.parametrize("name", PROJECTS)
def test_every_prerequisite_is_made_by_an_earlier_step_of_the_workflow(name):
    """A dep under a folder that the project's steps write (assets, corpus,
    training, metrics...) is an output of an earlier step of each workflow
    that runs its command, or lies under such an output; the others are files
    of the repository (scripts, configs)."""
    config = load_project(name)
    commands = {command["name"]: command for command in config["commands"]}
    written = set(config.get("directories", [])) - {"configs", "scripts"}
    for workflow, steps in config["workflows"].items():
        made = []
        for step in steps:
            for dep in commands[step].get("deps", []):
                if dep.split("/")[0] in written:
                    assert any(dep == out or dep.startswith(out + "/") for out in made), (workflow, step, dep)
                else:
                    assert (PROJECTS[name] / dep).exists(), (workflow, step, dep)
            made += commands[step].get("outputs", []) + commands[step].get("outputs_no_cache", [])


def test_workflows_cover_their_commands(project_yml):
    workflows = project_yml["workflows"]
    commands = {command["name"]: command for command in project_yml["commands"]}
    for name, steps in workflows.items():
        assert all(step in commands for step in steps), name
    tasks = set(workflows["sarcasm"]) | set(workflows["stars"]) | set(workflows["titles"])
    assert set(workflows["all"]) == tasks | {"readme"} and workflows["all"][-1] == "readme"


def test_commands_declare_their_scripts_and_the_code_they_train_with(project_yml):
    for command in project_yml["commands"]:
        deps = command.get("deps", [])
        for line in command["script"]:
            script = line.split()[1]
            if script.startswith("scripts/"):
                assert script in deps, f"{command['name']}: {script} is not among its deps"
            if script == "scripts/train.py" or script == "scripts/pretrain.py":
                assert "training/spacy_rnn_sources.txt" in deps, command["name"]
                assert any(dep.startswith("../configs/") for dep in deps), command["name"]
        assert command.get("outputs") or command.get("outputs_no_cache"), command["name"]


def test_only_the_readme_step_and_the_benches_write_into_the_docs():
    """Outside benchmarks/, only the user project's readme step and the
    experiments' screen step (the screen block of pretraining.md) name a page
    of the docs or the README, and each bench writes into the page of its markers."""
    writers = {("project", "readme"), ("experiments", "screen")}
    for name in ("project", "experiments"):
        for command in load_project(name)["commands"]:
            text = " ".join(command["script"])
            if (name, command["name"]) not in writers:
                assert "../docs" not in text and "../README" not in text, (name, command["name"])
    screen = next(command for command in load_project("experiments")["commands"] if command["name"] == "screen")
    assert "--docs ../docs/pretraining.md" in " ".join(screen["script"])
    benches = {command["name"]: " ".join(command["script"]) for command in load_project("benchmarks")["commands"]}
    assert "--readme ../docs/performance.md --summary ../README.md" in benches["bench-accuracy"]
    assert "--readme ../docs/pretraining.md" in benches["bench-pretraining"]
    assert "--doc ../docs/performance.md" in benches["bench-speed"]
    assert "--doc ../docs/scaling.md" in benches["bench-scale"]


def test_every_textcat_corpus_of_the_user_project_has_its_baselines(project_yml):
    lines = [line for command in project_yml["commands"] if command["name"].startswith("baselines-")
             for line in command["script"]]
    corpora_run = {line.split()[2] for line in lines if "--corpus" not in line}
    assert corpora_run == {"sarcasm", "sst5", "marc", "titles"}
    for name in corpora_run:  # the evaluate step (its report) waits for them
        evaluate = next(c for c in project_yml["commands"] if c["name"].startswith("evaluate-")
                        and f"corpus/{name}" in c["deps"])
        assert any(dep.startswith(f"metrics/{name}/") for dep in evaluate["deps"]), name


@pytest.mark.parametrize("task,domain,train,dataset", [
    ("sarcasm", "reddit", "train-sarcasm-pretrained", "sarcasm"), ("stars", "products", "train-stars", "marc")])
def test_each_pretraining_comes_before_its_task_report(project_yml, task, domain, train, dataset):
    """The Reddit and the product-review pretraining (minutes) are in their
    task's workflow and in all, after the downloads of their text and before
    the step that evaluates both classifiers and writes the report; the long
    (movies) pretraining studies are the experiments project's."""
    workflows = project_yml["workflows"]
    commands = {command["name"]: command for command in project_yml["commands"]}
    downloaded = {output for step in workflows[task] if step.startswith("download-")
                  for output in commands[step]["outputs"]}
    assert {dep for dep in commands[f"pretrain-{domain}"]["deps"] if dep.startswith("assets/")} <= downloaded
    for name in ("all", task):
        steps = workflows[name]
        assert steps.index(f"pretrain-{domain}") < steps.index(train) < steps.index(
            f"evaluate-{task}"), name
    assert f"metrics/{dataset}/rnn_pretrained.json" in commands[f"evaluate-{task}"]["outputs"]
    studies = load_project("experiments")["workflows"]
    assert {"pretraining", "screening", "phrases", "imdb", "decoding", "titles-other", "all"} == set(studies)
    assert "titles-other" not in studies["all"] and set(studies["titles-other"]) - set(studies["all"])


@pytest.mark.parametrize("project,step,domain", [
    ("project", "train-sarcasm-pretrained", "reddit"), ("project", "train-stars", "products"),
    ("experiments", "train-sst5-pretrained", "movies"),
    ("experiments", "train-titles-pretrained", "products")])
def test_each_task_starts_from_the_encoder_of_its_domain(project, step, domain):
    from spacy.util import load_config

    command = next(c for c in srsly.read_yaml(PROJECTS[project] / "project.yml")["commands"] if c["name"] == step)
    encoder = f"training/pretrain/{domain}/model-last.bin"
    fine_tunings = [" ".join(line.split()) for line in command["script"] if "pretrained_config}" in line]
    assert fine_tunings and all(f"--paths.init_tok2vec {encoder}" in line for line in fine_tunings)
    assert encoder in command["deps"]
    # the title model's config has the tok2vec and encoder of the pretrain config, so the file loads
    variables = load_project("experiments")["vars"]
    textcat = load_config(REPO / "configs" / variables["pretrained_config"])["components"]["textcat"]["model"]
    seq2seq = load_config(REPO / "configs" / variables["titles_pretrained_config"])["components"]["rnn_seq2seq"]["model"]
    settings = ("tok2vec", "cell", "width", "depth", "bidirectional", "activation")
    assert {key: seq2seq[key] for key in settings} == {key: textcat[key] for key in settings}


def test_bench_pretraining_gives_each_dataset_the_encoder_of_its_domain(monkeypatch):
    """bench-pretraining: the products and Reddit datasets, each from its own
    domain's encoder; bench-confirm: the movies datasets from the movies one."""
    import shlex

    monkeypatch.syspath_prepend(str(PROJECTS["benchmarks"] / "scripts"))
    from bench_accuracy import parse_encoders

    config = load_project("benchmarks")
    steps = {command["name"]: command for command in config["commands"]}
    expected = {"bench-pretraining": ("pretrain_datasets", {"marc": "products", "sarcasm": "reddit"}),
                "bench-confirm": ("confirm_datasets", {"sst5": "movies", "sst5_phrases": "movies", "imdb": "movies"})}
    for name, (datasets_var, domains) in expected.items():
        step = steps[name]
        words = shlex.split(" ".join(step["script"][0].split()))
        encoders = parse_encoders(words[words.index("--encoders") + 1], check_files=False)
        assert set(encoders) == set(config["vars"][datasets_var].split()), name
        assert {dataset: str(path) for dataset, path in encoders.items()} == {
            dataset: f"training/pretrain/{domain}/model-last.bin" for dataset, domain in domains.items()}
        assert {str(path) for path in encoders.values()} <= set(step["deps"]), name


def test_both_phrase_trainings_train_on_the_phrases_for_phrases_max_epochs():
    """The scratch and the pretrained SST-5 phrase models are one config, trained
    as the accuracy bench trains the phrases: phrases_max_epochs epochs,
    evaluated every 1,000 steps."""
    config = srsly.read_yaml(PROJECTS["experiments"] / "project.yml")
    commands = {command["name"]: command for command in config["commands"]}
    lines = [commands["train-phrases"]["script"][0], commands["train-sst5-pretrained"]["script"][1]]
    for line in (" ".join(line.split()) for line in lines):
        assert "python ../project/scripts/train.py ../configs/${vars.pretrained_config} " in line
        assert "--corpus corpus/sst5_phrases" in line
        assert "--training.max_epochs ${vars.phrases_max_epochs} --training.eval_frequency 1000" in line
    assert config["vars"]["phrases_max_epochs"] == 2


@pytest.mark.parametrize("name", ["experiments", "benchmarks"])
def test_the_movies_text_includes_the_unlabelled_imdb_reviews(name):
    assets = {asset["dest"]: asset for asset in srsly.read_yaml(PROJECTS[name] / "project.yml")["assets"]}
    unsup = assets["assets/imdb/imdb_unsup.jsonl.gz"]
    assert unsup["url"] == "${vars.data_dir}/stars/imdb/imdb_unsup.jsonl.gz"
    assert unsup["checksum"] == "c71d0d7828c138f96d50c75e65132d95"
    assert "imdb-unsup:train" in datasets.DOMAINS["movies"]
    assert datasets.split_path("imdb-unsup:train") == (Path("assets/imdb/imdb_unsup.jsonl.gz"), ["text"])


def test_a_download_of_the_unlabelled_imdb_reviews_drops_those_that_repeat_a_test_review():
    files = [("aclImdb/train/unsup/10_0.txt", "Ten."), ("aclImdb/train/unsup/2_0.txt", "Seen in test "),
             ("aclImdb/test/pos/3_9.txt", "Seen in test"), ("aclImdb/train/unsup/9_0.txt", "Nine."),
             ("aclImdb/train/pos/4_8.txt", "Nine.")]
    assert canonical.imdb_unsup_records(files) == [{"id": "unsup_9_0", "text": "Nine."},
                                                   {"id": "unsup_10_0", "text": "Ten."}]
    assert datasets.DATASETS["imdb-unsup"].counts == {"train": 49891}


@pytest.mark.parametrize("config", sorted(p.name for p in (PROJECT / "configs").glob("*.cfg")))
def test_baseline_configs_resolve(config):
    nlp = spacy.util.load_model_from_config(spacy.util.load_config(PROJECT / "configs" / config), auto_fill=True)
    assert nlp.pipe_names == ["textcat"]


# --- download ----------------------------------------------------------------------------------------

NO_NETWORK = """
import runpy, socket, sys
def refuse(*args, **kwargs):
    raise OSError("network disabled by the test")
socket.socket.connect = refuse
socket.create_connection = refuse
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("name,source", [("sarcasm", canonical.SARC_URL), ("marc", canonical.MARC_ID)])
def test_download_without_network_or_local_copy_says_both_ways(tmp_path, name, source):
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", NO_NETWORK, str(SCRIPTS / "download.py"), name],
                            capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"Could not download the '{name}' data" in result.stderr
    assert "1. with internet access, leave data_dir empty" in result.stderr and source in result.stderr
    assert "2. without it, point data_dir at a local copy" in result.stderr
    assert "--vars.data_dir ../../shared/data" in result.stderr
    assert not list((tmp_path / "assets").rglob("*.jsonl"))


def test_download_with_a_missing_local_copy_says_both_ways(tmp_path):
    project = copy_project(tmp_path)
    result = run([str(SCRIPTS / "download.py"), "sst5", "--data-dir", str(tmp_path)], cwd=project)
    assert result.returncode == 1
    assert f"{tmp_path / 'stars' / 'sst5' / 'sst5_train.jsonl'} not found" in result.stderr
    assert "leave data_dir empty" in result.stderr and "point data_dir at a local copy" in result.stderr


def test_download_refuses_a_local_copy_with_another_md5(tmp_path):
    project = copy_project(tmp_path)
    folder = tmp_path / "sarcasm"
    folder.mkdir()
    rows = [json.dumps({"text": f"reply {i}", "label": "SARCASM", "pair_id": i // 2}) for i in range(10)]
    for split in ("train", "test"):
        (folder / f"sarc_pol_balanced_{split}.jsonl").write_text("\n".join(rows) + "\n")
    result = run([str(SCRIPTS / "download.py"), "sarcasm", "--data-dir", str(tmp_path)], cwd=project)
    assert result.returncode == 1
    assert f"{folder / 'sarc_pol_balanced_train.jsonl'} has the md5" in result.stderr
    assert "a truncated or different copy" in result.stderr and "Traceback" not in result.stderr
    assert not list((project / "assets").rglob("*.jsonl"))


def test_download_names_an_asset_that_the_project_lacks(shared_data, tmp_path):
    project = copy_project(tmp_path)
    result = run([str(SCRIPTS / "download.py"), "imdb-unsup", "--data-dir", str(shared_data)], cwd=project)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "has no asset assets/imdb/imdb_unsup.jsonl.gz: add it (url, checksum) to its assets" in result.stderr


def test_download_copies_the_local_assets_and_replaces_a_stale_file(shared_data, tmp_path):
    project = copy_project(tmp_path)
    assets = project / "assets" / "sst5"
    assets.mkdir(parents=True)
    (assets / "sst5_dev.jsonl").write_text("stale\n")
    result = run([str(SCRIPTS / "download.py"), "sst5", "--data-dir", str(shared_data)], cwd=project)
    assert result.returncode == 0, result.stderr
    for name in ("sst5_train.jsonl", "sst5_dev.jsonl", "sst5_test.jsonl"):
        assert (assets / name).read_bytes() == (shared_data / "stars" / "sst5" / name).read_bytes()
    assert "md5 checked" in result.stdout


def test_a_marc_sample_has_the_local_copy_sizes_and_the_whole_test_split():
    records = {"train": [{"text": str(i), "label": i % 5 + 1} for i in range(100)],
               "dev": [{"text": "validation"}], "test": [{"text": f"t{i}"} for i in range(7)]}
    drawn = datasets.draw_sample(records, {"train": 30, "dev": 10})
    assert [len(drawn[split]) for split in ("train", "dev", "test")] == [30, 10, 7]
    assert not {r["text"] for r in drawn["train"]} & {r["text"] for r in drawn["dev"]}
    assert all(r in records["train"] for r in drawn["train"] + drawn["dev"]) and drawn["test"] == records["test"]
    assert drawn == datasets.draw_sample(records, {"train": 30, "dev": 10})
    assert datasets.DATASETS["marc"].sample == {"train": 11220, "dev": 1238}


def test_project_assets_are_copied_from_data_dir_with_their_checksums(shared_data, tmp_path):
    project = copy_project(tmp_path)
    command = ["-m", "spacy", "project", "assets", str(project), "--vars.data_dir", str(shared_data)]
    first = run(command)
    assets = srsly.read_yaml(project / "project.yml")["assets"]
    assert first.returncode == 0 and len(assets) == 12, first.stdout[-3000:]
    assert "Checksum doesn't match" not in first.stdout and "fail" not in first.stdout.lower()
    for asset in assets:
        assert (project / asset["dest"]).is_file(), asset["dest"]
    second = run(command)
    assert second.stdout.count("Skipping download with matching checksum") == 12, second.stdout[-3000:]


@pytest.mark.parametrize("name", PROJECTS)
def test_project_readme_is_what_spacy_project_document_writes(name):
    result = run(["-m", "spacy", "project", "document", str(PROJECTS[name])])
    assert result.returncode == 0, result.stderr
    start, end = "<!-- WEASEL: AUTO-GENERATED DOCS START (do not remove) -->", "<!-- WEASEL: AUTO-GENERATED DOCS END"
    readme = (PROJECTS[name] / "README.md").read_text(encoding="utf8")
    generated = readme[readme.index(start):readme.index(end)]
    assert result.stdout[result.stdout.index(start):result.stdout.index(end)] == generated


def test_sarc_lines_become_pairs_of_lowercased_replies():
    comments = {"a1": {"text": "Ancestor"}, "r1": {"text": "Sure, GREAT plan"}, "r2": {"text": "I disagree"},
                "r3": {"text": "Yes"}, "r4": {"text": "Oh really"}}
    records = canonical.sarc_records(["a1|r1 r2|1 0\n", "a1|r3 r4|0 1\n"], comments)
    assert records == [
        {"text": "sure, great plan", "label": "SARCASM", "pair_id": 0},
        {"text": "i disagree", "label": "NOT_SARCASM", "pair_id": 0},
        {"text": "yes", "label": "NOT_SARCASM", "pair_id": 1},
        {"text": "oh really", "label": "SARCASM", "pair_id": 1},
    ]


def test_title_rows_follow_the_fixed_split_and_need_text_and_title():
    header = ["", "Clothing ID", "Age", "Title", "Review Text", "Rating"]
    rows = [["0", "1", "30", "", "No title here", "4"], ["1", "2", "40", "Some major flaws", "Too small", "3"],
            ["2", "3", "50", "No text", "", "5"]]
    text = io.StringIO()
    csv.writer(text).writerows([header, *rows])
    text.seek(0)
    records = canonical.title_records(csv.DictReader(text))
    flat = [record for split in records.values() for record in split]
    assert flat == [{"text": "Too small", "target": "Some major flaws", "rating": 3, "row_id": 1}]
    assert records[canonical.wecr_split(1)] == flat


def test_sst_trees_give_the_offline_copy(shared_data):
    """The converter of the Stanford tree files (the canonical download)
    reproduces shared/data's SST-5 JSONL from the PTB files kept there. The
    offline copy lost 3 training tokens that contain a no-break space (e.g.
    "8 1/2"); the converter keeps them."""
    sst = shared_data / "stars" / "sst5"
    for split in ("train", "dev", "test"):
        trees = [line for line in (sst / "ptb" / f"{split}.txt").read_text(encoding="utf8").splitlines() if line]
        ours = [canonical.sst_record(tree) for tree in trees]
        theirs = [json.loads(line) for line in (sst / f"sst5_{split}.jsonl").read_text(encoding="utf8").splitlines()]
        assert len(ours) == len(theirs) == datasets.DATASETS["sst5"].counts[split]
        differ = [(a, b) for a, b in zip(ours, theirs) if a != b]
        assert len(differ) == (3 if split == "train" else 0)
        assert all("\xa0" in a["text"] and a["label"] == b["label"] for a, b in differ)


def test_wecr_split_matches_the_offline_copy(shared_data):
    folder = shared_data / "seq2seq"
    for split in ("train", "dev", "test"):
        with (folder / f"womens_clothing_title_{split}.jsonl").open(encoding="utf8") as file_:
            assert {canonical.wecr_split(json.loads(line)["row_id"]) for line in file_} == {split}


def test_atomic_writes_leave_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole" and list(tmp_path.iterdir()) == [target]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- convert --------------------------------------------------------------------------------------------


def test_convert_names_the_file_and_line_of_a_malformed_record(tmp_path):
    good = json.dumps({"text": "fine", "label": "A", "pair_id": 0})
    folder = tmp_path / "assets" / "sarcasm"
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        (folder / f"sarc_pol_balanced_{split}.jsonl").write_text(f"{good}\n{good}\n{{'text': 'single quotes'}}\n")
    result = run([str(SCRIPTS / "convert.py"), "sarcasm"], cwd=tmp_path)
    assert result.returncode == 1
    assert f"{Path('assets/sarcasm/sarc_pol_balanced_train.jsonl')}:3: not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "corpus" / "sarcasm" / "train.spacy").exists()
    unknown = run([str(SCRIPTS / "convert.py"), "sarcasm", "films"], cwd=tmp_path)
    assert unknown.returncode == 1 and "Unknown corpus films: choose from sarcasm, sst5" in unknown.stderr


def test_convert_cuts_dev_from_train_with_pairs_together(tmp_path):
    records = [{"text": f"reply {pair} {side}", "label": "SARCASM" if side == "a" else "NOT_SARCASM",
                "pair_id": pair} for pair in range(40) for side in "ab"]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    corpora.convert("textcat", tmp_path / "corpus", [path], path, dev_share=0.25, group_by="pair_id", seed=3)
    vocab = spacy.blank("en").vocab
    docs = {split: list(spacy.tokens.DocBin().from_disk(tmp_path / "corpus" / f"{split}.spacy").get_docs(vocab))
            for split in ("train", "dev", "test")}
    assert [len(docs[split]) for split in ("train", "dev", "test")] == [60, 20, 80]
    pairs = {split: {doc.text.split()[1] for doc in docs[split]} for split in ("train", "dev")}
    assert len(pairs["dev"]) == 10 and not pairs["train"] & pairs["dev"]
    assert all(sum(doc.cats.values()) == 1.0 for doc in docs["dev"])


def paired_records(n_pairs):
    return [{"text": f"{pair}-{side}", "pair_id": pair} for pair in range(n_pairs) for side in "ab"]


def test_dev_cut_keeps_pairs_together_and_depends_only_on_the_seed():
    records = paired_records(50)
    train, dev = corpora.split_dev(records, 0.2, seed=7, group_by="pair_id")
    assert len(dev) == 20 and len(train) == 80
    train_pairs, dev_pairs = {r["pair_id"] for r in train}, {r["pair_id"] for r in dev}
    assert not train_pairs & dev_pairs and len(train_pairs | dev_pairs) == 50
    assert all(sum(r["pair_id"] == pair for r in dev) == 2 for pair in dev_pairs)
    assert (train, dev) == corpora.split_dev(records, 0.2, seed=7, group_by="pair_id")
    assert dev != corpora.split_dev(records, 0.2, seed=8, group_by="pair_id")[1]
    assert train == sorted(train, key=records.index), "records keep their original order"


def test_dev_cut_without_groups_and_bad_shares():
    train, dev = corpora.split_dev([{"text": str(i)} for i in range(10)], 0.3)
    assert len(dev) == 3 and len(train) == 7
    with pytest.raises(ValueError, match="dev_share"):
        corpora.split_dev([{"text": "a"}], 1.0)
    with pytest.raises(DataError, match="no 'pair_id' field"):
        corpora.split_dev([{"text": "a"}, {"text": "b"}], 0.5, group_by="pair_id")


def test_sample_draws_whole_groups_up_to_the_limit():
    records = paired_records(30)
    chosen = corpora.sample(records, 11, seed=0, group_by="pair_id")
    assert len(chosen) == 10
    assert all(sum(r["pair_id"] == c["pair_id"] for r in chosen) == 2 for c in chosen)
    assert chosen == corpora.sample(records, 11, seed=0, group_by="pair_id")
    assert chosen == sorted(chosen, key=records.index)
    assert corpora.sample(records, 0) == records and corpora.sample(records, 1000) == records


def test_config_overrides_are_read_as_spacy_train_reads_them():
    args = ["--paths.train", "corpus/train.spacy", "--training.max_epochs", "8", "--training.dropout=0.2",
            "--components.textcat.model.bidirectional", "--system.gpu-allocator", "null"]
    assert config_overrides(args) == {"paths.train": "corpus/train.spacy", "training.max_epochs": 8,
                                      "training.dropout": 0.2, "components.textcat.model.bidirectional": True,
                                      "system.gpu_allocator": None}


SCRIPT_FILES = [path for folder in PROJECTS.values() for path in sorted((folder / "scripts").glob("*.py"))
                if path.name != "project_path.py"]


@pytest.mark.parametrize("script", SCRIPT_FILES, ids=lambda path: f"{path.parent.parent.name}/{path.name}")
def test_every_script_has_a_help(script):
    result = run([str(script), "--help"], cwd=script.parent.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage:" in result.stdout


def test_no_script_imports_another_script():
    """Scripts import the helper package rnnproject (and project_path, which
    puts it on sys.path), never each other."""
    import ast

    names = {path.stem for path in SCRIPT_FILES}
    for script in SCRIPT_FILES:
        tree = ast.parse(script.read_text(encoding="utf8"))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        assert not imported & names, f"{script} imports {imported & names}"
