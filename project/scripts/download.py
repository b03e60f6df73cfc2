"""Put one dataset into the project's assets as JSON Lines, in the schema of
shared/data (see its PROVENANCE.md).

Two ways, the same files:
- `--data-dir DIR`: copy from a local copy of the data (a folder with
  sarcasm/, stars/ and seq2seq/, such as ../../shared/data seen from project/);
- no `--data-dir`: download the canonical copies (Hugging Face ids with the
  `datasets` library, original URLs into `<output_dir>/raw/`, both cached)
  and convert them.

Every split's row count is checked against the published size, so a
truncated download or copy stops here instead of training on part of it.

    python scripts/download.py sarcasm assets/sarcasm --data-dir ../../shared/data
"""
import bz2
import csv
import hashlib
import io
import json
import re
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Tuple

import typer
from tqdm import tqdm
from wasabi import msg

from common import atomic_path, fail, write_jsonl
from spacy_rnn.corpus import DataError, read_jsonl

Records = Dict[str, List[Dict]]  # split -> records

SARC_URL = "https://nlp.cs.princeton.edu/SARC/2.0/pol/"
SST_URL = "https://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip"
MARC_ID = "mteb/amazon_reviews_multi"
# The Kaggle original needs a login; this public copy of the same CSV is where shared/data took it from.
WECR_URL = (
    "https://github.com/MichalSzopinski00/The-Best-Classifier/raw/"
    "31a3d4bdcaf1499e4a8bfc74d4b935280a616d91/womens-ecommerce-clothing-reviews.zip"
)
WECR_KAGGLE = "https://www.kaggle.com/datasets/nicapotato/womens-ecommerce-clothing-reviews"
SST_LABELS = ["very negative", "negative", "neutral", "positive", "very positive"]


@dataclass
class Dataset:
    """A dataset as the project uses it."""

    local_dir: str  # folder inside data_dir
    files: Dict[str, str]  # split -> file name (the same in data_dir and in assets)
    required: Tuple[str, ...]  # fields every record has
    counts: Dict[str, int]  # rows per split of the local copy
    download_counts: Dict[str, int]  # rows per split of the canonical copy
    sources: str  # what is downloaded, in words
    fetch: Callable[[Path], Any]  # network: get the raw data (cached in the folder given)
    convert: Callable[[Any], Records]  # raw data -> records per split


def fetch_url(url: str, raw_dir: Path) -> Path:
    """Download `url` into `raw_dir` (kept as a cache: a file already there is
    not fetched again), with a progress bar."""
    path = raw_dir / url.rsplit("/", 1)[-1]
    if path.exists():
        return path
    with urllib.request.urlopen(url, timeout=60) as response, atomic_path(path) as tmp:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tmp.open("wb") as file_, tqdm(total=total, unit="B", unit_scale=True, desc=path.name) as bar:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                file_.write(chunk)
                bar.update(len(chunk))
    return path


# --- SARC 2.0 pol, balanced ------------------------------------------------------------------------


def fetch_sarc(raw_dir: Path) -> Dict[str, Path]:
    names = {"comments": "comments.json.bz2", "train": "train-balanced.csv.bz2", "test": "test-balanced.csv.bz2"}
    return {key: fetch_url(SARC_URL + name, raw_dir) for key, name in names.items()}


def sarc_records(lines: Iterable[str], comments: Dict[str, Dict]) -> List[Dict]:
    """Responses of SARC's `ancestors|responses|labels` lines: one pair of
    replies per line (pair_id = line number from 0), lowercased as in the
    offline copy."""
    records = []
    for pair_id, line in enumerate(line for line in lines if line.strip()):
        _, responses, labels = line.strip().split("|")
        for comment_id, label in zip(responses.split(), labels.split()):
            text = comments[comment_id]["text"].lower()
            records.append({"text": text, "label": "SARCASM" if label == "1" else "NOT_SARCASM", "pair_id": pair_id})
    return records


def convert_sarc(paths: Dict[str, Path]) -> Records:
    with bz2.open(paths["comments"], "rt", encoding="utf8") as file_:
        comments = json.load(file_)
    records = {}
    for split in ("train", "test"):
        with bz2.open(paths[split], "rt", encoding="utf8") as file_:
            records[split] = sarc_records(tqdm(file_, desc=f"SARC pol {split}", unit=" pairs"), comments)
    return records


# --- SST-5 -----------------------------------------------------------------------------------------

SST_LEAF = re.compile(r"\((\d) ([^()]+)\)")
PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")"}


def sst_record(tree: str) -> Dict:
    """A sentence of the PTB tree files: its leaves joined by spaces, brackets
    and slashes unescaped; label = root class + 1 (1-5 stars)."""
    root = int(tree.strip()[1])
    tokens = [PTB_ESCAPES.get(token, token).replace("\\/", "/").replace("\\*", "*")
              for _, token in SST_LEAF.findall(tree)]
    return {"text": " ".join(tokens), "label": root + 1, "label_text": SST_LABELS[root]}


def fetch_sst(raw_dir: Path) -> Path:
    return fetch_url(SST_URL, raw_dir)


def convert_sst(zip_path: Path) -> Records:
    records = {}
    with zipfile.ZipFile(zip_path) as archive:
        for split in ("train", "dev", "test"):
            lines = [line for line in archive.read(f"trees/{split}.txt").decode("utf8").splitlines() if line.strip()]
            records[split] = [sst_record(line) for line in tqdm(lines, desc=f"SST-5 {split}", unit=" sentences")]
    return records


# --- MARC-en -----------------------------------------------------------------------------------------


def fetch_marc(raw_dir: Path):
    import datasets  # cached by `datasets` itself

    return datasets.load_dataset(MARC_ID, "en")


def convert_marc(dataset) -> Records:
    records = {}
    for split, hub_split in (("train", "train"), ("dev", "validation"), ("test", "test")):
        rows = []
        for row in tqdm(dataset[hub_split], desc=f"MARC-en {split}", unit=" reviews"):
            if row["label"] not in range(5):
                raise DataError(f"{MARC_ID} ({hub_split}): expected labels 0-4, got {row['label']!r}.")
            rows.append({"text": row["text"], "label": int(row["label"]) + 1})
        records[split] = rows
    return records


# --- Women's E-Commerce Clothing Reviews: review -> title ----------------------------------------------


def wecr_split(row_id: int) -> str:
    """shared/data's fixed split: md5("wecr:" + row index) mod 100, <10 test, <20 dev."""
    bucket = int(hashlib.md5(f"wecr:{row_id}".encode("utf8")).hexdigest(), 16) % 100
    return "test" if bucket < 10 else "dev" if bucket < 20 else "train"


def title_records(rows: Iterable[Dict[str, str]]) -> Records:
    """Rows of the Kaggle CSV with both a review text and a title."""
    records: Records = {"train": [], "dev": [], "test": []}
    for row in rows:
        text, title = row["Review Text"], row["Title"]
        if text.strip() and title.strip():
            row_id = int(row[""])
            records[wecr_split(row_id)].append(
                {"text": text, "target": title, "rating": int(row["Rating"]), "row_id": row_id}
            )
    return records


def fetch_titles(raw_dir: Path) -> Path:
    return fetch_url(WECR_URL, raw_dir)


def convert_titles(zip_path: Path) -> Records:
    with zipfile.ZipFile(zip_path) as archive:
        name = next(name for name in archive.namelist() if name.endswith(".csv"))
        with io.TextIOWrapper(archive.open(name), encoding="utf8", newline="") as file_:
            return title_records(tqdm(csv.DictReader(file_), desc="Women's clothing reviews", unit=" rows"))


DATASETS = {
    "sarcasm": Dataset(
        local_dir="sarcasm",
        files={"train": "sarc_pol_balanced_train.jsonl", "test": "sarc_pol_balanced_test.jsonl"},
        required=("text", "label", "pair_id"),
        counts={"train": 13668, "test": 3406},
        download_counts={"train": 13668, "test": 3406},
        sources=f"SARC 2.0 pol (balanced) from {SARC_URL}",
        fetch=fetch_sarc,
        convert=convert_sarc,
    ),
    "sst5": Dataset(
        local_dir="stars/sst5",
        files={"train": "sst5_train.jsonl", "dev": "sst5_dev.jsonl", "test": "sst5_test.jsonl"},
        required=("text", "label"),
        counts={"train": 8544, "dev": 1101, "test": 2210},
        download_counts={"train": 8544, "dev": 1101, "test": 2210},
        sources=f"the Stanford Sentiment Treebank from {SST_URL}",
        fetch=fetch_sst,
        convert=convert_sst,
    ),
    "marc": Dataset(
        local_dir="stars/marc_en",
        files={"train": "marc_en_train.jsonl", "dev": "marc_en_dev.jsonl", "test": "marc_en_test.jsonl"},
        required=("text", "label"),
        counts={"train": 11220, "dev": 1238, "test": 5000},
        download_counts={"train": 200000, "dev": 5000, "test": 5000},
        sources=f"MARC-en from the Hugging Face Hub with the `datasets` library ({MARC_ID}, config 'en')",
        fetch=fetch_marc,
        convert=convert_marc,
    ),
    "titles": Dataset(
        local_dir="seq2seq",
        files={
            "train": "womens_clothing_title_train.jsonl",
            "dev": "womens_clothing_title_dev.jsonl",
            "test": "womens_clothing_title_test.jsonl",
        },
        required=("text", "target"),
        counts={"train": 15650, "dev": 2008, "test": 2017},
        download_counts={"train": 15650, "dev": 2008, "test": 2017},
        sources=f"Women's E-Commerce Clothing Reviews from {WECR_URL} (the CSV of {WECR_KAGGLE})",
        fetch=fetch_titles,
        convert=convert_titles,
    ),
}


def two_ways(name: str, dataset: Dataset) -> str:
    return (
        f"Get the '{name}' data one of two ways:\n"
        f"  1. with internet access, leave data_dir empty to download {dataset.sources};\n"
        "  2. without it, point data_dir at a local copy of the data (a folder with sarcasm/, stars/ and "
        "seq2seq/, such as shared/data), e.g. from the repository root:\n"
        "     python -m spacy project run all project --vars.data_dir ../../shared/data"
    )


def check_counts(name: str, where: str, found: Dict[str, int], expected: Dict[str, int], advice: str) -> None:
    for split, n in expected.items():
        if found[split] != n:
            fail(f"{name} {split} ({where}) has {found[split]:,} rows, expected {n:,}: a truncated or different "
                 f"copy. {advice}")


def copy_local(name: str, dataset: Dataset, data_dir: Path, output_dir: Path) -> None:
    """Validate each file of a local copy (JSON on every line, row count) and
    copy it into the assets."""
    folder = data_dir / dataset.local_dir
    found = {}
    for split, file_name in dataset.files.items():
        source = folder / file_name
        if not source.is_file():
            fail(f"{source} not found (data_dir={data_dir}).\n{two_ways(name, dataset)}")
        try:
            found[split] = sum(1 for _ in tqdm(read_jsonl(source, dataset.required), desc=file_name, unit=" rows"))
        except DataError as err:
            fail(f"{err} Fix or replace that file in the local copy.")
    check_counts(name, str(folder), found, dataset.counts, "Replace the local copy with a complete one.")
    for split, file_name in dataset.files.items():
        with atomic_path(output_dir / file_name) as tmp:
            shutil.copyfile(folder / file_name, tmp)
    msg.good(f"{name}: copied {', '.join(f'{split} {n:,}' for split, n in found.items())} rows to {output_dir}")


def download(name: str, dataset: Dataset, output_dir: Path) -> None:
    """Fetch the canonical copy (raw files cached in output_dir/raw), convert
    it to the assets' JSONL schema."""
    try:
        raw = dataset.fetch(output_dir / "raw")
    except ImportError:
        raise
    except Exception as err:  # no network, offline mode, server or Hub errors: all end the same way
        fail(f"Could not download the '{name}' data ({type(err).__name__}: {err}).\n{two_ways(name, dataset)}")
    records = dataset.convert(raw)
    found = {split: len(rows) for split, rows in records.items()}
    check_counts(name, dataset.sources, found, dataset.download_counts,
                 f"Delete {output_dir / 'raw'} (and, for Hub datasets, the `datasets` cache in "
                 "~/.cache/huggingface) and download again.")
    for split, file_name in dataset.files.items():
        write_jsonl(output_dir / file_name, records[split])
    msg.good(f"{name}: wrote {', '.join(f'{split} {n:,}' for split, n in found.items())} rows to {output_dir}")


def main(
    name: str = typer.Argument(..., help=f"The dataset: {', '.join(DATASETS)}"),
    output_dir: Path = typer.Argument(..., help="Folder to write the JSONL files to"),
    data_dir: str = typer.Option("", help="A local copy of the data; empty: download"),
):
    """Put one dataset into the project's assets as JSON Lines."""
    if name not in DATASETS:
        fail(f"Unknown dataset '{name}': choose from {', '.join(DATASETS)}.")
    if data_dir:
        copy_local(name, DATASETS[name], Path(data_dir), output_dir)
    else:
        download(name, DATASETS[name], output_dir)


if __name__ == "__main__":
    typer.run(main)
