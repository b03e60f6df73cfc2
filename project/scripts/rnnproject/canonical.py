"""The canonical copies of the datasets: where they are downloaded from and
how each is turned into the JSONL records of shared/data (see its
PROVENANCE.md). Each `fetch_*` gets the raw data into a cache folder (network);
each `convert_*` turns it into records per split."""
import bz2
import csv
import hashlib
import io
import json
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Set, Tuple

import srsly
from tqdm import tqdm
from wasabi import msg
from weasel.util import download_file

from spacy_rnn.corpus import DataError

from .files import atomic_path, fail

Records = Dict[str, List[Any]]  # split -> records (for a .txt file: its lines)
SARC_TEST = "assets/sarcasm/sarc_pol_balanced_test.jsonl"  # the replies the Reddit text leaves out
SARC_URL = "https://nlp.cs.princeton.edu/SARC/2.0/pol/"
SST_URL = "https://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip"
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
MARC_ID = "mteb/amazon_reviews_multi"
REDDIT_URL = ("https://raw.githubusercontent.com/lindenmg/Sarcasm-Detection/"
              "265e63262b16cd819b8a6149a963f81f3a02edd9/data/test.csv")
# The Kaggle original needs a login; this public copy of the same CSV is where shared/data took it from.
WECR_URL = (
    "https://github.com/MichalSzopinski00/The-Best-Classifier/raw/"
    "31a3d4bdcaf1499e4a8bfc74d4b935280a616d91/womens-ecommerce-clothing-reviews.zip"
)
WECR_KAGGLE = "https://www.kaggle.com/datasets/nicapotato/womens-ecommerce-clothing-reviews"
# MARC-en with titles and categories (Amazon withdrew the corpus; in this public copy the test review bodies
# and stars match shared/data's marc_en_test.jsonl line for line): the test and dev files, and the copy's
# per-category files (`prodAnalysis/train_<category>.json`), which also hold dev and test reviews.
MARC_COPY_URL = ("https://raw.githubusercontent.com/krithravi/review-prediction/"
                 "6e7fb14a24233c79c6e9c1a8875e22640fabdc5b/dataset/")
MARC_TITLES_URL = MARC_COPY_URL + "dataset_en_test.json"
MARC_TITLES_DEV_URL = MARC_COPY_URL + "dataset_en_dev.json"
# The categories that are not worn, less home, other and wireless: the copy's three largest files, which could
# not be checked here (their test reviews stay in the test set: kinds of products the title model never saw).
MARC_TRAIN_CATEGORIES = (
    "automotive", "baby_product", "beauty", "book", "camera", "digital_ebook_purchase", "digital_video_download",
    "drugstore", "electronics", "furniture", "grocery", "home_improvement", "industrial_supplies", "kitchen",
    "lawn_and_garden", "luggage", "musical_instruments", "office_product", "pc", "personal_care_appliances",
    "pet_products", "sports", "toy", "video_games",
)
# Worn products (the title model is trained on women's clothing), and Amazon's default titles, which no review says.
WORN_CATEGORIES = {"apparel", "shoes", "jewelry", "watch"}
DEFAULT_TITLES = {"one star", "two stars", "three stars", "four stars", "five stars"}
SST_LABELS = ["very negative", "negative", "neutral", "positive", "very positive"]


def fetch_url(url: str, raw_dir: Path) -> Path:
    """Download `url` into `raw_dir` (kept as a cache: a file already there is
    not fetched again)."""
    path = raw_dir / url.rsplit("/", 1)[-1]
    if not path.exists():
        msg.info(f"Downloading {url}")
        with atomic_path(path) as tmp:
            download_file(url, tmp, force=True)
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

PTB_TOKEN = re.compile(r"[()]|[^ ()]+")  # words are split on spaces only: a few hold a no-break space
PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")"}
SST_CLASSES = {str(c) for c in range(len(SST_LABELS))}


def ptb_word(token: str) -> str:
    """A leaf of the tree files as text: brackets and slashes unescaped."""
    return PTB_ESCAPES.get(token, token).replace("\\/", "/").replace("\\*", "*")


def sst_phrases(tree: str) -> List[Tuple[int, str]]:
    """(class 0-4, text) of every node of an SST tree such as
    `(3 (2 It) (4 (4 works) (2 .)))`, the root first, then each node before
    its children: a node's text is its leaves joined by spaces (`ptb_word`).
    Raises a DataError saying what is wrong with a malformed tree."""
    labels: List[int] = []
    words: List[List[str]] = []
    open_nodes: List[int] = []
    tokens = iter(PTB_TOKEN.findall(tree))
    for token in tokens:
        if token == "(":
            label = next(tokens, "")
            if label not in SST_CLASSES:
                raise DataError(f"expected a class 0-4 after '(', got {label!r}.")
            if labels and not open_nodes:
                raise DataError("a second tree starts after the first one closed; write one tree per line.")
            open_nodes.append(len(labels))
            labels.append(int(label))
            words.append([])
        elif token == ")":
            if not open_nodes:
                raise DataError("a ')' closes no node: the brackets do not balance.")
            node = open_nodes.pop()
            if not words[node]:
                raise DataError(f"a node of class {labels[node]} has no words.")
            if open_nodes:
                words[open_nodes[-1]].extend(words[node])
        elif open_nodes:
            words[open_nodes[-1]].append(ptb_word(token))
        else:
            raise DataError(f"{token!r} lies outside the tree's brackets.")
    if open_nodes or not labels:
        raise DataError("the brackets do not balance." if labels else "no tree on the line.")
    return [(label, " ".join(leaves)) for label, leaves in zip(labels, words)]


def sst_record(tree: str) -> Dict:
    """A sentence of the PTB tree files: the text of the root (see
    `sst_phrases`); label = root class + 1 (1-5 stars)."""
    root, text = sst_phrases(tree)[0]
    return {"text": text, "label": root + 1, "label_text": SST_LABELS[root]}


def fetch_sst(raw_dir: Path) -> Path:
    return fetch_url(SST_URL, raw_dir)


def sst_trees(archive: zipfile.ZipFile, split: str) -> List[str]:
    """The trees of a split of the Stanford zip, one a line."""
    return [line for line in archive.read(f"trees/{split}.txt").decode("utf8").splitlines() if line.strip()]


def convert_sst(zip_path: Path) -> Records:
    records = {}
    with zipfile.ZipFile(zip_path) as archive:
        for split in ("train", "dev", "test"):
            trees = sst_trees(archive, split)
            records[split] = [sst_record(tree) for tree in tqdm(trees, desc=f"SST-5 {split}", unit=" sentences")]
    return records


def convert_sst_trees(zip_path: Path) -> Records:
    with zipfile.ZipFile(zip_path) as archive:
        return {"train": sst_trees(archive, "train")}


# --- IMDB (aclImdb v1) ---------------------------------------------------------------------------------

IMDB_FILE = re.compile(r"aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt")


def imdb_records(files: Iterable[Tuple[str, str]]) -> Records:
    """aclImdb's labelled reviews from (name in the archive, text) pairs, as in
    the offline copy: the whole file as text, label = the rating of the file
    name `<number>_<rating>.txt` (1-10), sentiment = its folder (pos, neg),
    id = `<split>_<sentiment>_<number>`, sorted by sentiment and number. Other
    files (the unlabelled `unsup` reviews, word lists) are left out."""
    found: Dict[str, List] = {"train": [], "test": []}
    for name, text in files:
        match = IMDB_FILE.fullmatch(name)
        if match:
            split, sentiment, number, rating = match.groups()
            record = {"text": text, "label": int(rating), "sentiment": sentiment, "id": f"{split}_{sentiment}_{number}"}
            found[split].append(((sentiment, int(number)), record))
    return {split: [record for _, record in sorted(rows, key=lambda row: row[0])] for split, rows in found.items()}


def fetch_imdb(raw_dir: Path) -> Path:
    return fetch_url(IMDB_URL, raw_dir)


def convert_imdb(tar_path: Path) -> Records:
    with tarfile.open(tar_path, "r:gz") as archive:
        members = (member for member in archive if member.isfile() and IMDB_FILE.fullmatch(member.name))
        files = ((member.name, archive.extractfile(member).read().decode("utf8")) for member in members)
        return imdb_records(tqdm(files, desc="IMDB", unit=" reviews"))


UNSUP_FILE = re.compile(r"aclImdb/train/unsup/(\d+)_0\.txt")


def imdb_unsup_records(files: Iterable[Tuple[str, str]]) -> List[Dict]:
    """aclImdb's unlabelled reviews from (name in the archive, text) pairs, as
    in the offline copy: id = `unsup_<number>_0`, in the order of the numbers,
    without the reviews whose stripped text is also a labelled test review
    (pretraining never reads test text)."""
    unsup, test_texts = [], set()
    for name, text in files:
        match = UNSUP_FILE.fullmatch(name)
        if match:
            unsup.append((int(match.group(1)), text))
        elif name.startswith("aclImdb/test/") and IMDB_FILE.fullmatch(name):
            test_texts.add(text.strip())
    return [{"id": f"unsup_{number}_0", "text": text} for number, text in sorted(unsup)
            if text.strip() not in test_texts]


def convert_imdb_unsup(tar_path: Path) -> Records:
    with tarfile.open(tar_path, "r:gz") as archive:
        members = (member for member in archive if member.isfile()
                   and (UNSUP_FILE.fullmatch(member.name) or IMDB_FILE.fullmatch(member.name)))
        files = ((member.name, archive.extractfile(member).read().decode("utf8")) for member in members)
        return {"train": imdb_unsup_records(tqdm(files, desc="IMDB unlabelled", unit=" reviews"))}


# --- Reddit replies with their post titles (unlabelled text for pretraining) ---------------------------


def fetch_reddit(raw_dir: Path) -> Path:
    return fetch_url(REDDIT_URL, raw_dir)


def reddit_records(rows: Iterable[Dict[str, str]], held_out: Set[str]) -> List[Dict]:
    """Replies of the course file's rows (post_id, post, reply, sarcasm),
    the post title as `context`, without the pairs (replies to one post) of
    which a reply's lowercased text is in `held_out` (SARC-pol test)."""
    pairs: Dict[str, List[Dict]] = {}
    for row in rows:
        record = {"text": row["reply"], "label": "SARCASM" if row["sarcasm"].strip() == "1" else "NOT_SARCASM",
                  "context": [row["post"]], "post_id": row["post_id"]}
        pairs.setdefault(row["post_id"], []).append(record)
    return [record for replies in pairs.values() if not any(r["text"].lower() in held_out for r in replies)
            for record in replies]


def convert_reddit(csv_path: Path) -> Records:
    test_path = Path(SARC_TEST)
    if not test_path.exists():
        fail(f"{test_path} not found: the Reddit replies leave out SARC-pol's test replies, so run "
             "download-sarcasm first.")
    held_out = {record["text"].lower() for record in srsly.read_jsonl(test_path)}
    with csv_path.open(encoding="utf8", newline="") as file_:
        rows = csv.DictReader(file_, delimiter="\t")
        return {"train": reddit_records(tqdm(rows, desc="Reddit replies", unit=" rows"), held_out)}


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


# --- MARC-en test reviews of other products, with their titles ------------------------------------------


def fetch_marc_titles(raw_dir: Path) -> Dict[str, Any]:
    train_urls = [f"{MARC_COPY_URL}prodAnalysis/train_{category}.json" for category in MARC_TRAIN_CATEGORIES]
    return {"test": fetch_url(MARC_TITLES_URL, raw_dir), "dev": fetch_url(MARC_TITLES_DEV_URL, raw_dir),
            "train": [fetch_url(url, raw_dir) for url in train_urls]}


def other_product_title_records(rows: Iterable[Dict]) -> List[Dict]:
    """MARC rows (review_body, review_title, product_category, stars,
    review_id) of products that are not worn, with a title of the reviewer's own."""
    return [
        {"text": row["review_body"], "target": row["review_title"], "category": row["product_category"],
         "stars": row["stars"], "source_id": row["review_id"]}
        for row in rows
        if row["product_category"] not in WORN_CATEGORIES and row["review_title"].strip().lower() not in DEFAULT_TITLES
        and row["review_body"].strip() and row["review_title"].strip()
    ]


def marc_train_rows(paths: Iterable[Path], held_out: Iterable[Dict]) -> List[Dict]:
    """The rows of the per-category files that are neither in MARC-en's dev
    or test files (by review_id or review body) nor repeated."""
    held_out = list(held_out)
    seen_ids = {row["review_id"] for row in held_out}
    seen_bodies = {row["review_body"].strip() for row in held_out}
    rows = []
    for path in paths:
        for row in srsly.read_jsonl(path):
            body = row["review_body"].strip()
            if row["review_id"] not in seen_ids and body not in seen_bodies:
                seen_ids.add(row["review_id"])
                seen_bodies.add(body)
                rows.append(row)
    return rows


def convert_marc_titles(paths: Dict[str, Any]) -> Records:
    test, dev = list(srsly.read_jsonl(paths["test"])), list(srsly.read_jsonl(paths["dev"]))
    return {"train": other_product_title_records(marc_train_rows(paths["train"], test + dev)),
            "dev": other_product_title_records(dev), "test": other_product_title_records(test)}

