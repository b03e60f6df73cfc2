"""Trained pipelines: `spacy train` with a training log and the data checked
first, and the evaluation of a saved pipeline on test data (metrics,
predictions, pictures)."""
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import spacy
from spacy.cli.train import train as spacy_train
from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import load_config

from spacy_rnn.corpus import read_jsonl, seq2seq_records

from .corpora import check_training_docs, read_docs
from .files import read_json, write_json, write_jsonl
from .metrics import (best_checkpoint, doc_groups, read_log, score_name, seq2seq_result, textcat_result,
                      top_label)
from .plots import plot_confusion, plot_learning_curve

TEXTCAT_FACTORIES = {"textcat", "textcat_multilabel"}
TEXTCAT_PIPES = ("textcat", "textcat_multilabel")
SEQ2SEQ_PIPE = "rnn_seq2seq"
CELL_NAMES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def data_kind(config: Dict) -> Optional[str]:
    """"textcat" or "seq2seq" from the pipeline's components (None: neither)."""
    factories = {component.get("factory") for component in config["components"].values()}
    if "rnn_seq2seq" in factories:
        return "seq2seq"
    return "textcat" if factories & TEXTCAT_FACTORIES else None


def check_data(config_path: Path, overrides: Dict) -> None:
    """Raise a DataError naming the file and Doc if the training or dev data
    of this config cannot train its pipeline."""
    config = load_config(config_path, overrides=overrides, interpolate=True)
    kind = data_kind(config)
    paths = [config["paths"].get(split) for split in ("train", "dev")]
    if kind is None or not all(paths):
        return
    nlp = spacy.blank(config["nlp"]["lang"])
    check_training_docs(kind, *[(str(path), read_docs(path, nlp)) for path in paths])


def train(config: Path, output_dir: Path, overrides: Dict, gpu_id: int = -1) -> Dict:
    """Train a pipeline from `config` into output_dir/model-best and
    output_dir/model-last; returns what train.json records. Checks the data
    first (see `check_data`)."""
    check_data(config, overrides)
    log_path = output_dir / "log.jsonl"
    if log_path.exists():
        log_path.unlink()  # spaCy's logger refuses to overwrite a log
    logger = {"@loggers": "spacy.ConsoleLogger.v3", "progress_bar": "eval", "console_output": True,
              "output_file": str(log_path)}
    start = time.perf_counter()
    spacy_train(config, output_dir, use_gpu=gpu_id, overrides={**overrides, "training.logger": logger})
    seconds = time.perf_counter() - start
    log = list(read_jsonl(log_path, required=("step", "epoch", "score")))
    info = {
        "config": str(config),
        "overrides": overrides,
        "gpu_id": gpu_id,
        "seconds": round(seconds, 1),
        "steps": log[-1]["step"] if log else 0,
        "epochs": log[-1]["epoch"] if log else 0,
        "best_score": max((entry["score"] for entry in log), default=None),
    }
    write_json(output_dir / "train.json", info)
    return info


def predict(nlp: Language, test_path: Path) -> Tuple[List[Example], Dict]:
    """Run the pipeline over the texts of the test Docs in `test_path`: see `predict_references`."""
    return predict_references(nlp, read_docs(test_path, nlp))


def predict_references(nlp: Language, references: List[Doc]) -> Tuple[List[Example], Dict]:
    """Run the pipeline over the reference Docs' texts: the annotated Examples
    and spaCy's scores of them, as `spacy evaluate` computes them
    (`Language.evaluate` keeps no predictions, so its steps are done here:
    tokenize and pipe, timed for words/s, then `Scorer.score`)."""
    start = time.perf_counter()
    predicted = list(nlp.pipe(nlp.make_doc(doc.text) for doc in references))
    seconds = time.perf_counter() - start
    examples = [Example(doc, reference) for doc, reference in zip(predicted, references)]
    scores = Scorer(nlp).score(examples)
    scores["speed"] = sum(len(doc) for doc in predicted) / seconds
    return examples, scores


def evaluate_predictions(examples: List[Example], nlp: Language, stars: bool,
                         training_targets: Optional[Sequence[str]] = None) -> Dict:
    """Metrics and rows of examples annotated by `nlp`."""
    if SEQ2SEQ_PIPE in nlp.pipe_names:
        return seq2seq_result(examples, nlp.get_pipe(SEQ2SEQ_PIPE).cfg["output_attr"], training_targets)
    pipe = next((name for name in TEXTCAT_PIPES if name in nlp.pipe_names), None)
    if pipe is None:
        raise ValueError(f"No textcat, textcat_multilabel or {SEQ2SEQ_PIPE} in the pipeline {nlp.pipe_names}.")
    texts = [eg.reference.text for eg in examples]
    gold = [top_label(eg.reference.cats) for eg in examples]
    cats = [eg.predicted.cats for eg in examples]
    return textcat_result(texts, gold, cats, list(nlp.get_pipe(pipe).labels), stars,
                          doc_groups([eg.reference for eg in examples]))


def write_outputs(out_dir: Path, key: str, name: str, result: Dict, extra: Dict,
                  log: Optional[Path] = None, metric: str = "score") -> Dict:
    """Write <key>.json, <key>_predictions.jsonl and the pictures (the
    learning curve from `log`, whose dev score is `metric`)."""
    record = {"system": name, **result["metrics"], **extra}
    write_json(out_dir / f"{key}.json", record)
    write_jsonl(out_dir / f"{key}_predictions.jsonl", result["predictions"])
    if "confusion" in record:
        plot_confusion(record["confusion"], name, out_dir / f"{key}_confusion.png")
    if log is not None:
        plot_learning_curve(read_log(log), name, out_dir / f"{key}_learning_curve.png", metric)
    return record


def describe(nlp: Language) -> str:
    """A system name from a spacy-rnn pipeline's config, e.g. "spacy-rnn BiLSTM w128" or, for the
    ensemble, "spacy-rnn BiLSTM w128 + 2-gram linear"."""
    for name, pipe_config in nlp.config["components"].items():
        model = pipe_config.get("model", {})
        if "cell" in model:
            cell = CELL_NAMES.get(model["cell"], model["cell"])
            kind = f"{'Bi' if model.get('bidirectional') else ''}{cell} w{model['width']}"
            if name == SEQ2SEQ_PIPE:
                return f"spacy-rnn {kind} encoder-decoder ({model['decoder']})"
            if "linear_model" in model:
                return f"spacy-rnn {kind} + {model['linear_model'].get('ngram_size', 1)}-gram linear"
            return f"spacy-rnn {kind}"
    return "spacy-rnn"


def evaluate_pipeline(model: Path, test_path: Path, out_dir: Path, key: str = "rnn", name: Optional[str] = None,
                      stars: bool = False, gpu_id: int = -1, train_targets: Optional[Path] = None,
                      name_suffix: str = "") -> Dict:
    """Evaluate a saved pipeline on test data (a DocBin, or seq2seq JSONL);
    returns the metrics record. The training folder around `model` (its
    train.json and log.jsonl, as train.py writes them), where it has them,
    gives the training time and the learning curve. `train_targets`: the
    seq2seq training JSONL, for the scores on pairs with words no training
    target has; `name_suffix` is appended to the system's name."""
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(model)
    name = (name or describe(nlp)) + name_suffix
    examples, spacy_scores = predict(nlp, test_path)
    write_json(out_dir / f"{key}_spacy.json", spacy_scores)
    extra = {"words_per_second": spacy_scores["speed"], "spacy_scores": spacy_scores}
    train_info, log = Path(model).parent / "train.json", Path(model).parent / "log.jsonl"
    if train_info.exists():
        extra["training"] = read_json(train_info)
        extra["train_seconds"] = extra["training"]["seconds"]
    if not log.exists():
        log = None
    if log is not None:
        extra["best_dev"] = best_checkpoint(read_log(log))
    metric = score_name(nlp.config["training"]["score_weights"], spacy_scores)
    training_targets = None if train_targets is None else [target for _, target in seq2seq_records(train_targets)]
    result = evaluate_predictions(examples, nlp, stars, training_targets)
    return write_outputs(out_dir, key, name, result, extra, log, metric)


def corpus_paths(corpus: Path) -> Dict[str, str]:
    """paths.train and paths.dev of a folder that convert.py wrote (.spacy, or seq2seq .jsonl)."""
    suffix = ".jsonl" if (corpus / "train.jsonl").exists() else ".spacy"
    return {f"paths.{split}": str(corpus / f"{split}{suffix}") for split in ("train", "dev")}
