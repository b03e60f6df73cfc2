"""Fingerprint of the spacy_rnn code: one `md5  path` line per Python file
under the given folders (and per file given), rewritten only when it changed.

Training commands depend on this file, so `spacy project run` retrains when,
and only when, the package's code changes (a dependency on the folder itself
would also hash the __pycache__ files, which change with every checkout).

    python scripts/sources.py training/spacy_rnn_sources.txt ../spacy_rnn
"""
import hashlib
from pathlib import Path
from typing import List

import typer
from wasabi import msg

from common import fail, write_text


def fingerprint(paths: List[Path]) -> str:
    files = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts))
        elif path.is_file():
            files.append(path)
        else:
            fail(f"{path} not found: give the spacy_rnn package folder of the repository.")
    return "".join(f"{hashlib.md5(f.read_bytes()).hexdigest()}  {f.as_posix()}\n" for f in files)


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
