"""Evaluate a trained pipeline on the test split and draw its pictures.

One pass over the test data (a DocBin, or seq2seq JSONL) gives spaCy's
scores (the ones `spacy evaluate` reports, in `<key>_spacy.json`) and the
predictions; from them come, in OUT_DIR:

- `<key>.json`: the metrics. Text classification: accuracy, macro-F1,
  per-class precision/recall/F1 and the confusion matrix, with `--stars` the
  mean absolute error in stars and the share within one star, and where the
  test Docs carry pair ids (SARC's) the pairwise accuracy. Seq2seq: ROUGE-1/2/L,
  BLEU, exact match, the shares of distinct outputs and of output words found
  in the source, and with `--train-targets` the scores on the pairs whose
  target has a word no training target has. Both with spaCy's own scores,
  its words/s, and the training time from the train.json beside the model;
- `<key>_predictions.jsonl`: text, gold and prediction for every test Doc;
- `<key>_confusion.png` (classification): the confusion matrix as shares of
  each gold class with the counts;
- `<key>_learning_curve.png`, given the log.jsonl beside the model (train.py
  writes it): the dev score with model-best's step marked, and the loss.

    python scripts/evaluate.py training/sarcasm/model-best corpus/sarcasm/test.spacy metrics/sarcasm
"""
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from rnnproject.files import fail
from rnnproject.metrics import summary
from rnnproject.pipelines import evaluate_pipeline
from spacy_rnn.corpus import DataError


def main(
    # fmt: off
    model: Path = typer.Argument(..., help="A trained pipeline (e.g. training/sarcasm/model-best)", exists=True),
    test: Path = typer.Argument(..., help="The test DocBin (.spacy), or seq2seq records (.jsonl)"),
    out_dir: Path = typer.Argument(..., help="Folder for the metrics, predictions and pictures"),
    key: str = typer.Option("rnn", help="File name stem of the outputs"),
    name: Optional[str] = typer.Option(None, help="The system's name in tables and pictures (default: from config)"),
    name_suffix: str = typer.Option("", help="Appended to the name, e.g. ', pretrained on Reddit text'"),
    stars: bool = typer.Option(False, "--stars", help="Labels are star ratings: add MAE and within-one"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU to run on; -1: CPU"),
    train_targets: Optional[Path] = typer.Option(
        None, help="seq2seq: the training JSONL, to score the pairs whose target has a word no training target has"
    ),
    # fmt: on
):
    """Evaluate a trained pipeline on the test split and draw its pictures."""
    try:
        result = evaluate_pipeline(model, test, out_dir, key, name, stars, gpu_id, train_targets, name_suffix)
    except DataError as err:
        fail(f"{err} Run the step that writes it again.")
    msg.good(f"{result['system']}: {summary(result)}", str(out_dir / f"{key}.json"))


if __name__ == "__main__":
    typer.run(main)
