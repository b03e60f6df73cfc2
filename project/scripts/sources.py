"""Fingerprint of the spacy_rnn code: one `md5  path` line per Python file
under the given folders (and per file given), rewritten only when it changed.

Training commands depend on this file, so `spacy project run` retrains when,
and only when, the package's code changes (a dependency on the folder itself
would also hash the __pycache__ files, which change with every checkout).

    python scripts/sources.py training/spacy_rnn_sources.txt ../spacy_rnn
"""
from pathlib import Path
from typing import List

import typer
from wasabi import msg

from rnnproject.files import fingerprint, write_text


def main(
    output: Path = typer.Argument(..., help="The fingerprint file to write"),
    paths: List[Path] = typer.Argument(..., help="Folders (their *.py files) and files"),
):
    """Write the md5 of each source file, only when one changed."""
    text = fingerprint(paths)
    if not output.exists() or output.read_text(encoding="utf8") != text:
        write_text(output, text)
    msg.good(f"{output}: {text.count(chr(10))} files")


if __name__ == "__main__":
    typer.run(main)
