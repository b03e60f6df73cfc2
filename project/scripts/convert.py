"""Turn a dataset's JSONL splits into the training, dev and test data in the
output folder:

- `textcat`: DocBins train.spacy, dev.spacy and test.spacy whose Docs have
  `cats` one-hot over the labels found in all splits;
- `seq2seq`: the checked records as train.jsonl, dev.jsonl and test.jsonl,
  which the config reads with `spacy_rnn.Seq2SeqJSONL.v1` (targets travel with
  their texts: no DocBin needed).

Where the dataset has no dev split (no `--dev`), one is cut from train with a
fixed seed, keeping records with the same `--group-by` value (SARC's pair_id)
together; each Doc keeps that value in `doc.user_data["group"]`, for pairwise
scores. `--label-field` names the field with the class (IMDB: `sentiment`).
With `--phrases`, `--train` is an SST tree file (PTB brackets, one sentence a
line) and every labelled phrase of every tree becomes a training Doc (label =
class + 1, repeats kept); dev and test stay whole sentences. `--limit-train` /
`--limit-eval` draw smaller slices (whole groups, fixed seed) for quick runs.

    python scripts/convert.py textcat corpus/sarcasm --train assets/sarcasm/sarc_pol_balanced_train.jsonl \\
        --test assets/sarcasm/sarc_pol_balanced_test.jsonl --group-by pair_id
    python scripts/convert.py textcat corpus/sst5_phrases --train assets/sst5/sst5_train_trees.txt --phrases \\
        --dev assets/sst5/sst5_dev.jsonl --test assets/sst5/sst5_test.jsonl
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
from download import sst_phrases
from spacy_rnn.corpus import DataError, label_names, read_jsonl, textcat_docs

KINDS = ("textcat", "seq2seq")


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


def read_records(path: Path, kind: str, group_by: Optional[str] = None, label_field: str = "label") -> List[Dict]:
    """The checked records of a JSONL split; for textcat each one's class,
    read from `label_field`, is its `label`."""
    fields = ("text", label_field) if kind == "textcat" else ("text", "target")
    records = read_jsonl(path, fields + ((group_by,) if group_by else ()), label_field)
    if label_field == "label":
        return list(records)
    return [{**record, "label": record[label_field]} for record in records]


def read_phrases(path: Path) -> List[Dict]:
    """A training record for every node of every tree of an SST tree file:
    the text of its leaves, label = class + 1 (1-5 stars), repeated phrases
    kept (see `download.sst_phrases`)."""
    records = []
    try:
        with path.open(encoding="utf8") as file_:
            for line_no, line in enumerate(file_, start=1):
                if not line.strip():
                    continue
                try:
                    phrases = sst_phrases(line.rstrip("\n"))
                except DataError as err:
                    raise DataError(f"{path}:{line_no}: {err}") from None
                records.extend({"text": text, "label": label + 1} for label, text in phrases)
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot be read ({err}).") from None
    return records


def read_files(paths: Sequence[Path], kind: str, group_by: Optional[str], label_field: str) -> List[Dict]:
    """The records of several JSONL files, one after the other."""
    return [record for path in paths for record in read_records(path, kind, group_by, label_field)]


def load_splits(kind: str, train: Sequence[Path], test: Path, dev: Sequence[Path], dev_share: float,
                group_by: Optional[str], seed: int, limit_train: int, limit_eval: int, label_field: str = "label",
                phrases: bool = False) -> Dict[str, List[Dict]]:
    """Records per split (train and dev from one or more files); dev cut from
    train when not given; slices drawn."""
    splits = {"train": read_phrases(train[0]) if phrases else read_files(train, kind, group_by, label_field),
              "test": read_records(test, kind, group_by, label_field)}
    if dev:
        splits["dev"] = read_files(dev, kind, group_by, label_field)
    else:
        splits["train"], splits["dev"] = split_dev(splits["train"], dev_share, seed, group_by)
    limits = {"train": limit_train, "dev": limit_eval, "test": limit_eval}
    return {split: sample(splits[split], limits[split], seed, group_by) for split in ("train", "dev", "test")}


def convert(kind: str, output_dir: Path, train: Sequence[Path], test: Path, dev: Sequence[Path] = (),
            dev_share: float = 0.1, group_by: Optional[str] = None, seed: int = 0, limit_train: int = 0,
            limit_eval: int = 0, lang: str = "en", batch_size: int = 256, n_process: int = 1,
            label_field: str = "label", phrases: bool = False) -> None:
    """Write train, dev and test (.spacy for textcat, .jsonl for seq2seq);
    raises a DataError naming the file and line of a bad record before any is
    written."""
    if kind not in KINDS:
        fail(f"Unknown kind '{kind}': use textcat or seq2seq.")
    if phrases and (kind != "textcat" or not dev or group_by or len(train) > 1):
        fail("--phrases reads SST's training trees for textcat: give the dev sentences with --dev (a dev split cut "
             "from the phrases would share sentences with train), one --train and no --group-by.")
    splits = load_splits(kind, train, test, dev, dev_share, group_by, seed, limit_train, limit_eval, label_field,
                         phrases)
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
        progress = tqdm(docs, total=len(records), desc=f"{output_dir.name} {split}", unit=" docs")
        for record, doc in zip(records, progress):
            if group_by:
                doc.user_data["group"] = record[group_by]
            docbin.add(doc)
        with atomic_path(output_dir / f"{split}.spacy") as tmp:
            docbin.to_disk(tmp)
    sizes = ", ".join(f"{split} {len(records):,}" for split, records in splits.items())
    msg.good(f"{output_dir}: {sizes} docs" + (f"; labels {', '.join(labels)}" if labels else ""))


def main(
    # fmt: off
    kind: str = typer.Argument(..., help="textcat (records with a 'label') or seq2seq (records with a 'target')"),
    output_dir: Path = typer.Argument(..., help="Folder for train, dev and test (.spacy or .jsonl)"),
    train: List[Path] = typer.Option(..., help="Training records (.jsonl or .jsonl.gz; repeat the option to join "
                                                "files), or with --phrases SST's trees"),
    test: Path = typer.Option(..., help="Test records"),
    dev: List[Path] = typer.Option([], help="Dev records (repeat to join files); without them a dev split is cut "
                                            "from train"),
    dev_share: float = typer.Option(0.1, help="Share of train that becomes dev"),
    group_by: Optional[str] = typer.Option(None, help="Field whose records stay on one side of a split (pair_id); "
                                                   "each Doc keeps it in user_data['group']"),
    label_field: str = typer.Option("label", help="textcat: the field with each record's class (IMDB: sentiment)"),
    phrases: bool = typer.Option(False, "--phrases", help="--train is an SST tree file: every labelled phrase trains"),
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
                batch_size, n_process, label_field, phrases)
    except DataError as err:
        fail(f"{err} Fix the record (or download the data again) and rerun.")


if __name__ == "__main__":
    typer.run(main)
