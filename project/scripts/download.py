"""Put datasets of the table (rnnproject/datasets.py) into the project's
assets/ as JSON Lines, in the schema of shared/data (see its PROVENANCE.md).
Two ways, the same files:

- `--data-dir DIR`: the dataset's assets of the project's project.yml (the
  working folder's), copied by Weasel from a local copy of the data (a folder
  with sarcasm/, stars/ and seq2seq/, such as ../../shared/data seen from
  project/) and checked against their md5;
- no `--data-dir`: download the canonical copies (original URLs into
  `assets/<folder>/raw/`, Hugging Face datasets with the `datasets` library;
  both cached) and convert them. Every split's row count is checked;
  MARC-en's train and dev are drawn from its official train split at the
  local copy's sizes (the official test split stays whole).

    python scripts/download.py sarcasm reddit --data-dir ../../shared/data
"""
from typing import List

import typer

from rnnproject.datasets import DATASETS, check_names, copy_local, download


def main(
    names: List[str] = typer.Argument(..., help=f"Datasets: {', '.join(DATASETS)}"),
    data_dir: str = typer.Option("", help="A local copy of the data (seen from the project); empty: download"),
):
    """Put datasets into the project's assets as JSON Lines (SST's trees as text)."""
    check_names(names, DATASETS, "dataset")
    for name in names:
        if data_dir:
            copy_local(name, data_dir)
        else:
            download(name)


if __name__ == "__main__":
    typer.run(main)
