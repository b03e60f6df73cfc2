"""Turn a dataset's JSONL splits into the training, dev and test data in the
output folder:

- `textcat`: DocBins train.spacy, dev.spacy and test.spacy whose Docs have
  `cats` one-hot over the labels found in all splits;
- `seq2seq`: the checked records as train.jsonl, dev.jsonl and test.jsonl,
  which the config reads with `spacy_rnn.Seq2SeqJSONL.v1` (targets travel with
  their texts: no DocBin needed).

Where the dataset has no dev split (no `--dev`), one is cut from train with a
fixed seed, keeping records with the same `--group-by` value (SARC's pair_id)
together. `--limit-train` / `--limit-eval` draw smaller slices (whole groups,
fixed seed) for quick runs.

    python scripts/convert.py textcat corpus/sarcasm --train assets/sarcasm/sarc_pol_balanced_train.jsonl \\
        --test assets/sarcasm/sarc_pol_balanced_test.jsonl --group-by pair_id
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import spacy
import typer
from sklearn.model_selection import GroupShuffleSplit
from spacy.tokens import DocBin
from tqdm import tqdm
from wasabi import msg

from common import atomic_path, fail, write_jsonl
from spacy_rnn.corpus import DataError, label_names, read_jsonl, textcat_docs

REQUIRED = {"textcat": ("text", "label"), "seq2seq": ("text", "target")}


def group_split(records: Sequence[Dict], size: float, seed: int, group_by: Optional[str]) -> Tuple[List, List]:
    """(rest, drawn): the records split by scikit-learn's GroupShuffleSplit, so
    that records with the same `group_by` value (each record alone without it)
    stay on one side; `size` is the drawn share of the groups, or their number
    when an int. Both sides keep the original order; the draw depends only on
    `seed`."""
    groups = []
    for i, record in enumerate(records):
        if group_by is not None and group_by not in record:
            raise DataError(f"record {i + 1} has no '{group_by}' field to keep its group together.")
        groups.append(record[group_by] if group_by is not None else i)
    splitter = GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed)
    rest, drawn = next(splitter.split(records, groups=groups))
    return [records[i] for i in rest], [records[i] for i in drawn]


def split_dev(records: Sequence[Dict], dev_share: float, seed: int = 0,
              group_by: Optional[str] = None) -> Tuple[List[Dict], List[Dict]]:
    """(train, dev): a share of the training records' groups becomes dev."""
    if not 0 < dev_share < 1:
        raise ValueError(f"dev_share must be between 0 and 1 (exclusive), got {dev_share}.")
    return group_split(records, dev_share, seed, group_by)


def sample(records: Sequence[Dict], limit: int, seed: int = 0, group_by: Optional[str] = None) -> List[Dict]:
    """About `limit` records in whole groups: as many groups as `limit` records
    make at the average group size (at most `limit` when groups are of one
    size, as SARC's pairs are); all records when `limit` is 0."""
    if limit <= 0 or limit >= len(records):
        return list(records)
    n_groups = len({record.get(group_by) for record in records}) if group_by else len(records)
    return group_split(records, max(1, limit * n_groups // len(records)), seed, group_by)[1]


def load_splits(kind: str, train: Path, test: Path, dev: Optional[Path], dev_share: float, group_by: Optional[str],
                seed: int, limit_train: int, limit_eval: int) -> Dict[str, List[Dict]]:
    """Records per split; dev cut from train when not given; slices drawn."""
    required = REQUIRED[kind] + ((group_by,) if group_by else ())
    splits = {"train": list(read_jsonl(train, required)), "test": list(read_jsonl(test, required))}
    if dev:
        splits["dev"] = list(read_jsonl(dev, required))
    else:
        splits["train"], splits["dev"] = split_dev(splits["train"], dev_share, seed, group_by)
    limits = {"train": limit_train, "dev": limit_eval, "test": limit_eval}
    return {split: sample(splits[split], limits[split], seed, group_by) for split in ("train", "dev", "test")}


def convert(kind: str, output_dir: Path, train: Path, test: Path, dev: Optional[Path] = None, dev_share: float = 0.1,
            group_by: Optional[str] = None, seed: int = 0, limit_train: int = 0, limit_eval: int = 0,
            lang: str = "en", batch_size: int = 256, n_process: int = 1) -> None:
    """Write train, dev and test (.spacy for textcat, .jsonl for seq2seq);
    raises a DataError naming the file and line of a bad record before any is
    written."""
    if kind not in REQUIRED:
        fail(f"Unknown kind '{kind}': use textcat or seq2seq.")
    splits = load_splits(kind, train, test, dev, dev_share, group_by, seed, limit_train, limit_eval)
    nlp = spacy.blank(lang)
    labels: Optional[List[str]] = None
    if kind == "textcat":
        labels = label_names(record for records in splits.values() for record in records)
    for split, records in splits.items():
        if kind == "seq2seq":
            write_jsonl(output_dir / f"{split}.jsonl", records)
            continue
        docs = textcat_docs(nlp, records, labels, batch_size, n_process)
        docbin = DocBin(store_user_data=True)
        for doc in tqdm(docs, total=len(records), desc=f"{output_dir.name} {split}", unit=" docs"):
            docbin.add(doc)
        with atomic_path(output_dir / f"{split}.spacy") as tmp:
            docbin.to_disk(tmp)
    sizes = ", ".join(f"{split} {len(records):,}" for split, records in splits.items())
    msg.good(f"{output_dir}: {sizes} docs" + (f"; labels {', '.join(labels)}" if labels else ""))


def main(
    # fmt: off
    kind: str = typer.Argument(..., help="textcat (records with a 'label') or seq2seq (records with a 'target')"),
    output_dir: Path = typer.Argument(..., help="Folder for train, dev and test (.spacy or .jsonl)"),
    train: Path = typer.Option(..., help="Training records (.jsonl or .jsonl.gz)"),
    test: Path = typer.Option(..., help="Test records"),
    dev: Optional[Path] = typer.Option(None, help="Dev records; without them a dev split is cut from train"),
    dev_share: float = typer.Option(0.1, help="Share of train that becomes dev"),
    group_by: Optional[str] = typer.Option(None, help="Field whose records stay on one side of a split (pair_id)"),
    seed: int = typer.Option(0, help="Seed of the dev cut and the slices"),
    limit_train: int = typer.Option(0, help="About this many training records, whole groups (0: all)"),
    limit_eval: int = typer.Option(0, help="About this many dev and test records each (0: all)"),
    lang: str = typer.Option("en", help="Language of the tokenizer"),
    batch_size: int = typer.Option(256, help="nlp.pipe batch size"),
    n_process: int = typer.Option(1, help="nlp.pipe processes"),
    # fmt: on
):
    """Convert a dataset's JSONL splits into training, dev and test data."""
    try:
        convert(kind, output_dir, train, test, dev, dev_share, group_by, seed, limit_train, limit_eval, lang,
                batch_size, n_process)
    except DataError as err:
        fail(f"{err} Fix the record (or download the data again) and rerun.")


if __name__ == "__main__":
    typer.run(main)
