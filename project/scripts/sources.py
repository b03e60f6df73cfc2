"""Fingerprint of the spacy_rnn code: one `md5  path` line per Python file
under the given folders (and per file given), rewritten only when it changed.

Training commands depend on this file, so `spacy project run` retrains when,
and only when, the package's code changes (a dependency on the folder itself
would also hash the __pycache__ files, which change with every checkout).

    python scripts/sources.py training/spacy_rnn_sources.txt ../spacy_rnn
"""
import argparse
import hashlib
from pathlib import Path
from typing import List

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="the fingerprint file to write")
    parser.add_argument("paths", type=Path, nargs="+", help="folders (their *.py files) and files")
    args = parser.parse_args()
    text = fingerprint(args.paths)
    if not args.output.exists() or args.output.read_text(encoding="utf8") != text:
        write_text(args.output, text)
    print(f"✔ {args.output}: {text.count(chr(10))} files")
