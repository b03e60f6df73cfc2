"""Turn corpora of the table (rnnproject/datasets.py, CORPORA) into their
training, dev and test data in OUT/<name>, from the project's assets:

- textcat: DocBins train.spacy, dev.spacy and test.spacy whose Docs have
  `cats` one-hot over the labels found in all splits;
- seq2seq: the checked records as train.jsonl, dev.jsonl and test.jsonl,
  which the configs read with `spacy_rnn.Seq2SeqJSONL.v1`.

Where a corpus has no dev split, one is cut from train with a fixed seed,
keeping records of a group (SARC's pair_id) together; each Doc keeps its group
in `doc.user_data["group"]`, for pairwise scores. SST-5 on phrases trains on
every labelled phrase of the training trees. `--limit-train` / `--limit-eval`
draw smaller slices (whole groups, fixed seed) for quick runs.

    python scripts/convert.py sst5 marc
    python scripts/convert.py sarcasm --out corpus/smoke --limit-train 240 --limit-eval 100
"""
from pathlib import Path
from typing import List

import typer

from rnnproject.corpora import convert_corpus
from rnnproject.datasets import CORPORA, check_names
from rnnproject.files import fail
from spacy_rnn.corpus import DataError


def main(
    # fmt: off
    names: List[str] = typer.Argument(..., help=f"Corpora: {', '.join(CORPORA)}"),
    out: Path = typer.Option(Path("corpus"), help="Folder for a folder per corpus"),
    dev_share: float = typer.Option(0.1, help="Share of train that becomes dev, where a corpus has no dev split"),
    seed: int = typer.Option(0, help="Seed of the dev cut and the slices"),
    limit_train: int = typer.Option(0, help="About this many training records, whole groups (0: all)"),
    limit_eval: int = typer.Option(0, help="About this many dev and test records each (0: all)"),
    n_process: int = typer.Option(1, help="nlp.pipe processes"),
    # fmt: on
):
    """Convert corpora of the table into training, dev and test data."""
    check_names(names, CORPORA, "corpus")
    try:
        for name in names:
            convert_corpus(name, out, seed, dev_share, limit_train, limit_eval, n_process)
    except DataError as err:
        fail(f"{err} Fix the record (or download the data again) and rerun.")


if __name__ == "__main__":
    typer.run(main)
