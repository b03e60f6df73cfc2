"""Training data: JSONL records into DocBins (textcat) or checked JSONL splits
(seq2seq), dev splits cut from train with groups kept together, slices for
quick runs, and the checks that run before training."""
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import spacy
from sklearn.model_selection import GroupShuffleSplit
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab
from tqdm import tqdm
from wasabi import msg

from spacy_rnn import get_target, set_target
from spacy_rnn.corpus import DataError, create_seq2seq_reader, read_jsonl

from .canonical import sst_phrases
from .datasets import CORPORA, split_path
from .files import atomic_path, fail, write_jsonl


def cats_for(label: Union[str, int], labels: Sequence[str]) -> Dict[str, float]:
    """One-hot `doc.cats` for an exclusive label."""
    name = str(label)
    if name not in labels:
        raise DataError(f"label {label!r} is not one of the expected labels {list(labels)}.")
    return {other: float(other == name) for other in labels}


def label_names(records: Iterable[Dict]) -> List[str]:
    """Sorted label names (numerically for integer labels such as stars)."""
    values = {record["label"] for record in records}
    return [str(v) for v in sorted(values, key=lambda v: (not isinstance(v, int), v))]


def textcat_docs(
    nlp: Language, records: Sequence[Dict], labels: Sequence[str], batch_size: int = 256, n_process: int = 1
) -> Iterator[Doc]:
    """Docs whose `cats` are one-hot over `labels`, one per record, in order."""
    texts = (record["text"] for record in records)
    for record, doc in zip(records, nlp.pipe(texts, batch_size=batch_size, n_process=n_process)):
        doc.cats = cats_for(record["label"], labels)
        yield doc


def seq2seq_docs(nlp: Language, records: Sequence[Dict], batch_size: int = 256, n_process: int = 1) -> Iterator[Doc]:
    """Reference Docs of the source texts carrying their `target` (see
    `spacy_rnn.set_target`), one per record, in order. Save them with
    `DocBin(store_user_data=True)`."""
    texts = (record["text"] for record in records)
    for record, doc in zip(records, nlp.pipe(texts, batch_size=batch_size, n_process=n_process)):
        yield set_target(doc, record["target"])


def textcat_docbin(
    nlp: Language, records: Iterable[Dict], labels: Sequence[str], batch_size: int = 256, n_process: int = 1
) -> DocBin:
    """A DocBin of Docs whose `cats` are one-hot over `labels`."""
    return DocBin(docs=textcat_docs(nlp, list(records), labels, batch_size, n_process), store_user_data=True)


def read_docbin(path: Union[str, Path], vocab: Vocab) -> List[Doc]:
    """The Docs of a .spacy file (user data included)."""
    try:
        return list(DocBin().from_disk(path).get_docs(vocab))
    except Exception as err:  # missing, unreadable, truncated or not a DocBin
        raise DataError(f"{path}: cannot be read as a DocBin ({type(err).__name__}: {err}).") from None


def read_docs(path: Union[str, Path], nlp: Language) -> List[Doc]:
    """The reference Docs of a DocBin, or of the seq2seq records of a .jsonl
    or .jsonl.gz file (read as `spacy_rnn.Seq2SeqJSONL.v1` reads them: each
    Doc carries its target)."""
    if Path(path).name.endswith((".jsonl", ".jsonl.gz")):
        return [example.reference for example in create_seq2seq_reader(Path(path))(nlp)]
    return read_docbin(path, nlp.vocab)


def check_training_docs(kind: str, train: Tuple[str, Sequence[Doc]], dev: Tuple[str, Sequence[Doc]]) -> None:
    """Check the (name, Docs) of the training and dev splits before training,
    raising a DataError that names the split and the Doc: no Docs; for
    `textcat`, a Doc without cats, a score that is not a number in [0, 1], a
    dev label that no training Doc has; for `seq2seq`, a reference Doc
    without a target (see `set_target`)."""
    for split, docs in (train, dev):
        if not docs:
            raise DataError(f"{split}: no Docs. Convert the data again (an empty split cannot train or evaluate).")
        for i, doc in enumerate(docs, start=1):
            where = f"{split}: Doc {i} ({doc.text[:40]!r})"
            if kind == "seq2seq" and get_target(doc) is None:
                raise DataError(f"{where} has no seq2seq target: attach it with set_target(doc, text).")
            if kind == "textcat":
                if not doc.cats:
                    raise DataError(f"{where} has no cats: give every Doc a score for each label.")
                bad = {label: v for label, v in doc.cats.items() if not isinstance(v, (int, float)) or not 0 <= v <= 1}
                if bad:
                    raise DataError(f"{where} has scores that are not numbers in [0, 1]: {bad}.")
    if kind == "textcat":
        train_labels = {label for doc in train[1] for label in doc.cats}
        for i, doc in enumerate(dev[1], start=1):
            unknown = sorted(set(doc.cats) - train_labels)
            if unknown:
                raise DataError(
                    f"{dev[0]}: Doc {i} ({doc.text[:40]!r}) has the label(s) {unknown}, which no training Doc has: "
                    "the classifier could never predict them. Convert train and dev with the same labels."
                )
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
    kept (see `canonical.sst_phrases`)."""
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
    if kind not in ("textcat", "seq2seq"):
        fail(f"Unknown kind '{kind}': use textcat or seq2seq.")
    if phrases and (kind != "textcat" or not dev or group_by or len(train) > 1):
        fail("phrases: SST's training trees train a textcat; give the dev sentences as dev (a dev split cut from "
             "the phrases would share sentences with train), one training file and no group_by.")
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



def convert_corpus(name: str, out_root: Path = Path("corpus"), seed: int = 0, dev_share: float = 0.1,
                   limit_train: int = 0, limit_eval: int = 0, n_process: int = 1) -> None:
    """Write corpus `name` of the table (see `datasets.CORPORA`) into out_root/name."""
    corpus = CORPORA[name]
    train, dev = [split_path(spec)[0] for spec in corpus.train], [split_path(spec)[0] for spec in corpus.dev]
    convert(corpus.kind, out_root / name, train, split_path(corpus.test)[0], dev, dev_share, corpus.group_by, seed,
            limit_train, limit_eval, n_process=n_process, label_field=corpus.label_field, phrases=corpus.phrases)
