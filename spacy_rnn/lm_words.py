"""Write the word list of the language model `spacy_rnn.BiLM.v1`: the NORMs
of a corpus, most frequent first, one a line.

    python -m spacy_rnn.lm_words ../shared/data/stars/marc_en/marc_en_train.jsonl lm_words.txt --max-words 20000

Inputs are JSONL files (.jsonl, .jsonl.gz) with a "text" field, or text files
(.txt) with one text a line. Texts are split by spacy.blank(lang), the
tokenizer of spaCy's pipelines for that language. NORMs that contain
whitespace (spaCy's tokens for runs of spaces and line breaks) are left out:
they could not be written one a line, and the model predicts them as unknown.
"""
import gzip
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, List

import spacy
import typer

from .corpus import read_jsonl

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
app = typer.Typer(add_completion=False)


class WordListError(ValueError):
    """An input or word list that cannot be used, and how to fix it."""


def check_input(path: Path) -> None:
    if not path.name.endswith(JSONL_SUFFIXES + (".txt",)):
        raise WordListError(
            f"{path}: unknown kind of input. Give .jsonl or .jsonl.gz files with a \"text\" field, or .txt files "
            "with one text a line."
        )


def read_texts(path: Path) -> Iterator[str]:
    """The texts of a .jsonl(.gz) file ("text" fields) or a .txt file (lines)."""
    if path.name.endswith(JSONL_SUFFIXES):
        yield from (record["text"] for record in read_jsonl(path, required=("text",)))
        return
    try:
        with path.open(encoding="utf8") as file_:
            yield from (line.rstrip("\n") for line in file_ if line.strip())
    except (OSError, UnicodeDecodeError) as err:
        raise WordListError(f"{path}: cannot be read as UTF-8 text ({err}).") from None


def count_texts(path: Path) -> int:
    """Non-blank lines of an input, for the progress bar."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf8", errors="replace") as file_:
            return sum(1 for line in file_ if line.strip())
    except OSError as err:
        raise WordListError(f"{path}: cannot be read ({err}).") from None


def count_norms(nlp: spacy.Language, texts: Iterable[str], batch_size: int = 1000) -> Counter:
    """How often each NORM occurs in the tokenized texts (whitespace tokens left out)."""
    counts: Counter = Counter()
    for doc in nlp.pipe(texts, batch_size=batch_size):
        counts.update(token.norm_ for token in doc if not any(char.isspace() for char in token.norm_))
    return counts


@app.command()
def main(
    inputs: List[Path] = typer.Argument(..., exists=True, dir_okay=False, help=".jsonl, .jsonl.gz or .txt files"),
    output: Path = typer.Argument(..., dir_okay=False, help="the word list to write, one NORM a line"),
    max_words: int = typer.Option(20000, min=1, help="length of the word list"),
    lang: str = typer.Option("en", help="language of the tokenizer (spacy.blank)"),
) -> None:
    """Count the NORMs of the INPUTS and write the most frequent to OUTPUT."""
    try:
        nlp = spacy.blank(lang)
    except ImportError:
        raise typer.BadParameter(
            f"unknown language {lang!r}; use a spaCy language code such as en, de or fr.", param_hint="--lang"
        ) from None
    try:
        for path in inputs:
            check_input(path)
        total = sum(count_texts(path) for path in inputs)
        texts = (text for path in inputs for text in read_texts(path))
        with typer.progressbar(texts, length=total, label="Counting NORMs") as bar:
            counts = count_norms(nlp, bar)
    except ValueError as err:  # WordListError, and the DataError of a bad JSONL record
        typer.echo(f"✘ {err}", err=True)
        raise typer.Exit(1) from None
    if not counts:
        typer.echo(f"✘ No tokens in {', '.join(map(str, inputs))}: the inputs hold no text.", err=True)
        raise typer.Exit(1)
    words = [word for word, _count in counts.most_common(max_words)]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(f"{word}\n" for word in words), encoding="utf8")
    covered = sum(counts[word] for word in words) / sum(counts.values())
    typer.echo(f"✔ Wrote {len(words)} NORMs to {output}: {covered:.1%} of the {sum(counts.values())} tokens read.")


if __name__ == "__main__":
    app()
