"""Gather the unlabelled texts of a domain for `spacy pretrain`: the texts of
several JSONL files (.jsonl, .jsonl.gz) and fields, without duplicates, in a
fixed-seed shuffled order, cut to at most `--max-words` tokens, into
OUTPUT_DIR/texts.jsonl (one {"text": ...} a line, which spacy.JsonlCorpus.v1
reads), and their word list OUTPUT_DIR/lm_words.txt (`spacy_rnn.lm_words`).

An input is a path, whose records' "text" is read, or PATH:FIELD,FIELD... A
field holds a string or a list of strings (SARC's "context"). Test and dev
splits (a file name with the word "test" or "dev") are refused: pretraining
on them would leak the evaluation texts into the model.

    python scripts/pretrain_text.py assets/sarcasm/sarc_pol_balanced_train.jsonl \\
        assets/reddit/sarc_extra_reddit.jsonl:text,context corpus/pretrain/reddit --max-words 500000
"""
import random
import re
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import spacy
import typer
from tqdm import tqdm

from common import fail, write_jsonl
from spacy_rnn import lm_words
from spacy_rnn.corpus import DataError, json_objects

HELD_OUT_SPLIT = re.compile(r"(?:^|[^a-z])(test|dev)(?:[^a-z]|$)")


def parse_input(spec: str) -> Tuple[Path, List[str]]:
    """(path, fields) of PATH or PATH:FIELD,FIELD...; refuses what is not a
    JSONL file and what looks like a test or dev split."""
    path, fields = Path(spec), ["text"]
    if not spec.endswith(lm_words.JSONL_SUFFIXES) and ":" in spec:
        head, _, tail = spec.rpartition(":")
        path, fields = Path(head), [field for field in tail.split(",") if field]
    if not path.name.endswith(lm_words.JSONL_SUFFIXES) or not fields:
        raise DataError(f"{spec}: expected a .jsonl or .jsonl.gz file, optionally followed by :FIELD,FIELD... "
                        "(e.g. sarc_extra_reddit.jsonl:text,context).")
    split = HELD_OUT_SPLIT.search(path.name.lower())
    if split:
        raise DataError(f"{path}: looks like a {split.group(1)} split. Pretrain on training or unlabelled texts only, "
                        "never on the texts a model is evaluated on.")
    if not path.is_file():
        raise DataError(f"{path}: no such file. Run the download step that writes it first.")
    return path, fields


def read_fields(path: Path, fields: List[str]) -> Iterator[str]:
    """The non-blank strings in `fields` of each record (a field may hold a list of strings)."""
    for line_no, record in json_objects(path):
        for field in fields:
            if field not in record:
                raise DataError(f"{path}:{line_no}: missing field '{field}'.")
            value = record[field]
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(item, str) for item in values):
                raise DataError(f"{path}:{line_no}: '{field}' must be a string or a list of strings, got {value!r}.")
            yield from (item.strip() for item in values if item.strip())


def gather(specs: List[str]) -> Tuple[List[str], Dict[str, int]]:
    """The distinct texts of the inputs, in reading order, and how many texts each input holds."""
    texts: Dict[str, None] = {}  # an insertion-ordered set
    counts = {}
    for spec in specs:
        path, fields = parse_input(spec)
        read = list(read_fields(path, fields))
        texts.update(dict.fromkeys(read))
        counts[spec] = len(read)
    return list(texts), counts


def cap(nlp: spacy.Language, texts: List[str], max_words: int) -> Tuple[List[str], int]:
    """The first texts whose tokens add up to at most `max_words` (0: all), and their tokens."""
    kept, n_words = [], 0
    docs = nlp.pipe(texts, batch_size=1000)
    for text, doc in tqdm(zip(texts, docs), total=len(texts), desc="Counting tokens", unit=" texts"):
        if max_words and n_words + len(doc) > max_words:
            break
        kept.append(text)
        n_words += len(doc)
    return kept, n_words


def main(
    # fmt: off
    inputs: List[str] = typer.Argument(..., help="PATH or PATH:FIELD,FIELD... of .jsonl(.gz) training files"),
    output_dir: Path = typer.Argument(..., help="Folder for texts.jsonl and lm_words.txt"),
    max_words: int = typer.Option(0, min=0, help="At most this many tokens (spaCy's) of text (0: all)"),
    vocab: int = typer.Option(20000, min=1, help="Length of the word list"),
    seed: int = typer.Option(0, help="Seed of the shuffle"),
    lang: str = typer.Option("en", help="Language of the tokenizer"),
    # fmt: on
):
    """Gather a domain's texts for pretraining, and their word list."""
    try:
        texts, counts = gather(inputs)
    except DataError as err:
        fail(str(err))
    if not texts:
        fail(f"No text in {', '.join(inputs)}.")
    random.Random(seed).shuffle(texts)
    kept, n_words = cap(spacy.blank(lang), texts, max_words)
    if not kept:
        fail(f"The first text has more than --max-words {max_words} tokens: raise --max-words.")
    write_jsonl(output_dir / "texts.jsonl", ({"text": text} for text in kept))
    read = ", ".join(f"{spec}: {n:,}" for spec, n in counts.items())
    typer.echo(f"✔ Wrote {len(kept):,} texts, {n_words:,} tokens, to {output_dir / 'texts.jsonl'}. "
               f"Texts read: {read}; {sum(counts.values()) - len(texts):,} duplicates and "
               f"{len(texts) - len(kept):,} texts over --max-words left out.")
    lm_words.main([output_dir / "texts.jsonl"], output_dir / "lm_words.txt", max_words=vocab, lang=lang)


if __name__ == "__main__":
    typer.run(main)
