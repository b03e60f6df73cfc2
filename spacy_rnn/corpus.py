"""Reading JSONL records with errors that name the file and line, and the
corpus reader `spacy_rnn.Seq2SeqJSONL.v1`, which gives rnn_seq2seq its
training examples straight from JSONL.

Records look like `{"text": str, "label": str | int, ...}` (classification)
or `{"text": str, "target": str, ...}` (sequence to sequence). Every problem
found is a `DataError` that names the file and the line (or Doc).
"""
import gzip
import json
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.training import Example
from spacy.util import registry

from .targets import set_target

STRING_FIELDS = ("text", "target")


class DataError(ValueError):
    """A record that cannot be used, with the file and line it came from."""


def json_objects(path: Path) -> Iterator[Tuple[int, Dict]]:
    """(line number, record) for each non-blank line of a .jsonl or .jsonl.gz
    file, checking that the line is a JSON object."""
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
                yield line_no, record
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise DataError(f"{path}: cannot be read ({err}).") from None


def read_jsonl(
    path: Union[str, Path], required: Sequence[str] = ("text",), label_field: str = "label"
) -> Iterator[Dict]:
    """Yield the records of a .jsonl or .jsonl.gz file, checking that each is a
    JSON object with the required fields, that `text` and `target` are strings
    and that the class (`label_field`, e.g. IMDB's `sentiment`) is a string or
    an integer."""
    path = Path(path)
    for line_no, record in json_objects(path):
        missing = [field for field in required if field not in record]
        if missing:
            raise DataError(f"{path}:{line_no}: missing field(s) {', '.join(missing)}.")
        check_strings(path, line_no, record, STRING_FIELDS)
        label = record.get(label_field, "")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise DataError(f"{path}:{line_no}: '{label_field}' must be a string or an integer, got {label!r}.")
        yield record


def check_strings(path: Path, line_no: int, record: Dict, fields: Sequence[str]) -> None:
    for field in fields:
        if field in record and not isinstance(record[field], str):
            raise DataError(f"{path}:{line_no}: '{field}' must be a string, got {record[field]!r}.")


@registry.readers("spacy_rnn.Seq2SeqJSONL.v1")
def create_seq2seq_reader(
    path: Optional[Path], text_field: str = "text", target_field: str = "target", limit: int = 0
) -> Callable[[Language], Iterator[Example]]:
    """Training examples for rnn_seq2seq read from JSONL records (.jsonl or
    .jsonl.gz) such as {"text": "a review", "target": "its title"}: the
    reference Doc of each carries its target (see `set_target`). A Doc is
    never cut (spacy.Corpus.v1 with max_length cuts long Docs into sentences,
    apart from their target).

    path (Path): The JSONL file.
    text_field (str): The field with the source text.
    target_field (str): The field with the target text.
    limit (int): Read at most this many records; 0: all.
    """
    name = "spacy_rnn.Seq2SeqJSONL.v1"
    if path is None:
        raise ValueError(
            f"{name}: 'path' is not set. Set it in the config or on the command line, e.g. --paths.train train.jsonl."
        )
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file. Check the 'path' of the {name} reader (e.g. --paths.train).")
    if not isinstance(limit, int) or limit < 0:
        raise ValueError(f"{name}: 'limit' must be a number of records (0: all), got {limit!r}.")

    def read(nlp: Language) -> Iterator[Example]:
        for text, target in islice(seq2seq_records(path, text_field, target_field), limit or None):
            yield Example(nlp.make_doc(text), set_target(nlp.make_doc(text), target))

    return read


def seq2seq_records(path: Path, text_field: str = "text", target_field: str = "target") -> Iterator[Tuple[str, str]]:
    """(text, target) of each record of a JSONL file, checking that both
    fields are there and are strings."""
    for line_no, record in json_objects(path):
        missing = [field for field in (text_field, target_field) if field not in record]
        if missing:
            raise DataError(
                f"{path}:{line_no}: missing field(s) {', '.join(missing)}. Each record needs a source text "
                f"('{text_field}') and a target ('{target_field}'); the reader's text_field and target_field "
                "name other fields."
            )
        check_strings(path, line_no, record, (text_field, target_field))
        yield record[text_field], record[target_field]
