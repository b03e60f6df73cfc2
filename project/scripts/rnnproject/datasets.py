"""The table of datasets: what each project downloads into assets/, what
convert.py makes of it in corpus/, and the unlabelled text of each domain
that the encoders are pretrained on.

A dataset comes two ways, as the same files: copied by Weasel from a local
copy of the data (the project's assets, md5-checked), or downloaded from its
canonical source and converted (see `canonical`)."""
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import srsly
from wasabi import msg
from weasel.cli.assets import fetch_asset
from weasel.util import get_checksum, load_project_config

from . import canonical as c
from .files import atomic_path, fail

ASSETS = Path("assets")  # each project's folders, seen from the project (the working folder of its commands)


@dataclass
class Dataset:
    """A dataset as downloaded: its files in assets/<folder> and its canonical source."""

    folder: str
    files: Dict[str, str]  # split -> file name (of its asset in project.yml)
    counts: Dict[str, int]  # rows per split of the canonical copy
    sources: str  # what is downloaded, in words
    fetch: Callable[[Path], Any]  # network: get the raw data (cached in the folder given)
    convert: Callable[[Any], c.Records]  # raw data -> records per split
    sample: Optional[Dict[str, int]] = None  # train and dev sizes drawn from the canonical train split

    def path(self, split: str) -> Path:
        return ASSETS / self.folder / self.files[split]


DATASETS = {
    "sarcasm": Dataset(
        "sarcasm", {"train": "sarc_pol_balanced_train.jsonl", "test": "sarc_pol_balanced_test.jsonl"},
        {"train": 13668, "test": 3406}, f"SARC 2.0 pol (balanced) from {c.SARC_URL}", c.fetch_sarc, c.convert_sarc,
    ),
    "reddit": Dataset(
        "reddit", {"train": "sarc_extra_reddit.jsonl"}, {"train": 21656},
        f"SARC reply pairs with their post titles from {c.REDDIT_URL}", c.fetch_reddit, c.convert_reddit,
    ),
    "sst5": Dataset(
        "sst5", {"train": "sst5_train.jsonl", "dev": "sst5_dev.jsonl", "test": "sst5_test.jsonl"},
        {"train": 8544, "dev": 1101, "test": 2210}, f"the Stanford Sentiment Treebank from {c.SST_URL}", c.fetch_sst,
        c.convert_sst,
    ),
    "sst5-trees": Dataset(
        "sst5", {"train": "sst5_train_trees.txt"}, {"train": 8544},
        f"the Stanford Sentiment Treebank's training trees from {c.SST_URL}", c.fetch_sst, c.convert_sst_trees,
    ),
    "marc": Dataset(
        "marc_en", {"train": "marc_en_train.jsonl", "dev": "marc_en_dev.jsonl", "test": "marc_en_test.jsonl"},
        {"train": 200000, "dev": 5000, "test": 5000},
        f"MARC-en from the Hugging Face Hub with the `datasets` library ({c.MARC_ID}, config 'en'; train and dev "
        "drawn from its train split at the local copy's sizes)", c.fetch_marc, c.convert_marc,
        sample={"train": 11220, "dev": 1238},
    ),
    "imdb": Dataset(
        "imdb", {"train": "imdb_train.jsonl.gz", "test": "imdb_test.jsonl.gz"}, {"train": 25000, "test": 25000},
        f"the IMDB Large Movie Review Dataset (aclImdb v1) from {c.IMDB_URL}", c.fetch_imdb, c.convert_imdb,
    ),
    "imdb-unsup": Dataset(
        "imdb", {"train": "imdb_unsup.jsonl.gz"}, {"train": 49891},
        f"the unlabelled reviews of aclImdb v1 from {c.IMDB_URL}, less those that repeat a test review",
        c.fetch_imdb, c.convert_imdb_unsup,
    ),
    "titles": Dataset(
        "titles", {"train": "womens_clothing_title_train.jsonl", "dev": "womens_clothing_title_dev.jsonl",
                   "test": "womens_clothing_title_test.jsonl"},
        {"train": 15650, "dev": 2008, "test": 2017},
        f"Women's E-Commerce Clothing Reviews from {c.WECR_URL} (the CSV of {c.WECR_KAGGLE})", c.fetch_titles,
        c.convert_titles,
    ),
    "titles-other": Dataset(
        "titles_other", {"train": "amazon_other_products_title_train.jsonl",
                         "dev": "amazon_other_products_title_dev.jsonl",
                         "test": "amazon_other_products_title_test.jsonl"},
        {"train": 87554, "dev": 4032, "test": 3967},
        f"MARC-en's reviews with their titles from {c.MARC_COPY_URL} (test, dev and the per-category files of 24 "
        "categories), without worn products and Amazon's default titles (no local copy: internet or the cached "
        "raw files)", c.fetch_marc_titles, c.convert_marc_titles,
    ),
}


@dataclass
class Corpus:
    """What convert.py makes in corpus/<name>: train, dev and test (DocBins for
    textcat, checked JSONL for seq2seq) from splits written `dataset:split`."""

    title: str  # in reports and tables
    kind: str  # "textcat" or "seq2seq"
    train: List[str]
    test: str
    dev: List[str] = field(default_factory=list)  # empty: cut from train
    group_by: Optional[str] = None  # records with the same value stay on one side of a split (SARC's pairs)
    label_field: str = "label"  # textcat: the field with the class
    phrases: bool = False  # train is SST's tree file: every labelled phrase trains
    stars: bool = False  # labels are star ratings: the metrics add the mean absolute error


CORPORA = {
    "sarcasm": Corpus("SARC 2.0 pol, balanced", "textcat", ["sarcasm:train"], "sarcasm:test", group_by="pair_id"),
    "sst5": Corpus("SST-5", "textcat", ["sst5:train"], "sst5:test", ["sst5:dev"], stars=True),
    "sst5_phrases": Corpus("SST-5, trained on all labelled phrases", "textcat", ["sst5-trees:train"], "sst5:test",
                           ["sst5:dev"], phrases=True, stars=True),
    "marc": Corpus("MARC-en", "textcat", ["marc:train"], "marc:test", ["marc:dev"], stars=True),
    "imdb": Corpus("IMDB (aclImdb v1)", "textcat", ["imdb:train"], "imdb:test", label_field="sentiment"),
    "titles": Corpus("Women's clothing reviews: text -> title", "seq2seq", ["titles:train"], "titles:test",
                     ["titles:dev"]),
    "titles_products": Corpus("Clothing and other products: text -> title", "seq2seq",
                              ["titles:train", "titles-other:train"], "titles-other:test",
                              ["titles:dev", "titles-other:dev"]),
}

# Unlabelled text of each domain for pretraining: training splits only, `dataset:split` or `dataset:split:FIELD,FIELD`
DOMAINS = {
    "movies": ["imdb:train", "imdb-unsup:train", "sst5:train"],
    "products": ["marc:train", "titles:train"],
    "reddit": ["sarcasm:train", "reddit:train:text,context"],
}


def split_path(spec: str) -> Tuple[Path, List[str]]:
    """The asset file of `dataset:split`, and the fields of `dataset:split:FIELD,FIELD` (default: text)."""
    name, split, *fields = spec.split(":")
    return DATASETS[name].path(split), (fields[0].split(",") if fields else ["text"])


def check_names(names: List[str], table: Dict, kind: str) -> None:
    unknown = [name for name in names if name not in table]
    if unknown:
        fail(f"Unknown {kind} {', '.join(unknown)}: choose from {', '.join(table)}.")


def two_ways(name: str, dataset: Dataset) -> str:
    return (
        f"Get the '{name}' data one of two ways:\n"
        f"  1. with internet access, leave data_dir empty to download {dataset.sources};\n"
        "  2. without it, point data_dir at a local copy of the data (a folder with sarcasm/, stars/ and "
        "seq2seq/, such as shared/data), e.g. from the repository root:\n"
        "     python -m spacy project run all project --vars.data_dir ../../shared/data"
    )


def copy_local(name: str, data_dir: str, project: Path = Path(".")) -> None:
    """Copy the dataset's assets (the project.yml of `project`, url under
    data_dir) with Weasel, and check each file's md5 against project.yml's."""
    dataset = DATASETS[name]
    config = load_project_config(project, overrides={"vars.data_dir": data_dir})
    assets = {Path(asset["dest"]): asset for asset in config["assets"]}
    for split in dataset.files:
        dest = dataset.path(split)
        if dest not in assets:
            fail(f"{project.resolve() / 'project.yml'} has no asset {dest}: add it (url, checksum) to its assets.")
        asset = assets[dest]
        source = project / asset["url"]  # an absolute url stays itself
        if not source.is_file():
            fail(f"{source} not found (data_dir={data_dir}).\n{two_ways(name, dataset)}")
        if dest.exists() and get_checksum(dest) != asset["checksum"]:
            dest.unlink()  # Weasel would keep a stale file
        fetch_asset(project, asset["url"], (project / dest).resolve(), asset["checksum"])
        found = get_checksum(dest)
        if found != asset["checksum"]:
            dest.unlink()
            fail(f"{source} has the md5 {found}, and project.yml expects {asset['checksum']}: a truncated or "
                 f"different copy. Replace it with a complete one, or leave data_dir empty to download the data.")
    msg.good(f"{name}: {len(dataset.files)} file(s) copied, md5 checked", str(ASSETS / dataset.folder))


def draw_sample(records: c.Records, sizes: Dict[str, int], seed: int = 0) -> c.Records:
    """Train and dev of the given sizes, drawn at random (fixed seed) from the
    canonical train split; the test split stays whole."""
    pool = list(records["train"])
    random.Random(seed).shuffle(pool)
    n_train = sizes["train"]
    return {"train": pool[:n_train], "dev": pool[n_train:n_train + sizes["dev"]], "test": records["test"]}


def write_split(path: Path, rows: List[Any]) -> None:
    """Records as JSONL (gzip-compressed for .gz), or lines of text (.txt)."""
    with atomic_path(path) as tmp:
        if path.suffix == ".txt":
            tmp.write_text("".join(f"{row}\n" for row in rows), encoding="utf8")
        elif path.suffix == ".gz":
            srsly.write_gzip_jsonl(tmp, rows)
        else:
            srsly.write_jsonl(tmp, rows)


def download(name: str) -> None:
    """Fetch the canonical copy (raw files cached in assets/<folder>/raw),
    convert it to the assets' JSONL schema, check every split's row count and
    write the dataset's files (MARC-en's train and dev drawn at the local copy's sizes)."""
    dataset = DATASETS[name]
    raw_dir = ASSETS / dataset.folder / "raw"
    try:
        raw = dataset.fetch(raw_dir)
    except ImportError:
        raise
    except Exception as err:  # no network, offline mode, server or Hub errors: all end the same way
        fail(f"Could not download the '{name}' data ({type(err).__name__}: {err}).\n{two_ways(name, dataset)}")
    records = dataset.convert(raw)
    found = {split: len(rows) for split, rows in records.items()}
    if found != dataset.counts:
        fail(f"{name} ({dataset.sources}) has {found} rows, expected {dataset.counts}: a truncated or different copy. "
             f"Delete {raw_dir} (and, for Hub datasets, the `datasets` cache in ~/.cache/huggingface) "
             "and download again.")
    if dataset.sample:
        records = draw_sample(records, dataset.sample)
    for split in dataset.files:
        write_split(dataset.path(split), records[split])
    msg.good(f"{name}: wrote {', '.join(f'{split} {len(records[split]):,}' for split in dataset.files)} rows",
             str(ASSETS / dataset.folder))
