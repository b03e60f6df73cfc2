"""Reading the JSONL datasets and turning them into spaCy DocBins.

Records look like `{"text": str, "label": str | int, ...}` (classification)
or `{"text": str, "target": str, ...}` (sequence to sequence).
"""
import gzip
import json
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Sequence, Union

from spacy.language import Language
from spacy.tokens import DocBin


class DataError(ValueError):
    """A record that cannot be used, with the file and line it came from."""


def read_jsonl(path: Union[str, Path], required: Sequence[str] = ("text",)) -> Iterator[Dict]:
    """Yield the records of a .jsonl or .jsonl.gz file, checking that each is a
    JSON object with the required fields."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf8") as file_:
            for line_no, line in enumerate(file_, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}:{line_no}: not valid JSON ({err.msg}).") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}.")
                missing = [field for field in required if field not in record]
                if missing:
                    raise DataError(f"{path}:{line_no}: missing field(s) {', '.join(missing)}.")
                if not isinstance(record["text"], str):
                    raise DataError(f"{path}:{line_no}: 'text' must be a string, got {record['text']!r}.")
                yield record
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise DataError(f"{path}: cannot be read ({err}).") from None


def cats_for(label: Union[str, int], labels: Sequence[str]) -> Dict[str, float]:
    """One-hot `doc.cats` for an exclusive label."""
    name = str(label)
    if name not in labels:
        raise DataError(f"label {label!r} is not one of the expected labels {list(labels)}.")
    return {other: float(other == name) for other in labels}


def textcat_docbin(
    nlp: Language, records: Iterable[Dict], labels: Sequence[str], batch_size: int = 256, n_process: int = 1
) -> DocBin:
    """A DocBin of Docs whose `cats` are one-hot over `labels`."""
    records = list(records)
    docbin = DocBin(store_user_data=True)
    texts = (record["text"] for record in records)
    for record, doc in zip(records, nlp.pipe(texts, batch_size=batch_size, n_process=n_process)):
        doc.cats = cats_for(record["label"], labels)
        docbin.add(doc)
    return docbin


def label_names(records: Iterable[Dict]) -> List[str]:
    """Sorted label names (numerically for integer labels such as stars)."""
    values = {record["label"] for record in records}
    return [str(v) for v in sorted(values, key=lambda v: (not isinstance(v, int), v))]
