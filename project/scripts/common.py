"""Helpers shared by the project scripts: atomic writes and clean failures."""
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, NoReturn, Union

PathLike = Union[str, Path]


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; once the block succeeds it is
    renamed to `path`, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf8")


def write_json(path: PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: PathLike, records: Iterable[Dict]) -> int:
    """Write records as JSON Lines (UTF-8, not escaped); returns how many."""
    n = 0
    with atomic_path(path) as tmp:
        with tmp.open("w", encoding="utf8") as file_:
            for record in records:
                file_.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
    return n


def read_json(path: PathLike) -> Any:
    """The JSON in `path`; stops the script with a message naming the file
    (and line) when it cannot be read or parsed."""
    try:
        with Path(path).open(encoding="utf8") as file_:
            return json.load(file_)
    except OSError as err:
        fail(f"{path}: cannot be read ({err.strerror}).")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        line = f":{err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
        fail(f"{path}{line}: not valid JSON ({err}). Run the step that writes it again.")


def write_between_markers(path: PathLike, name: str, text: str) -> None:
    """Replace what lies between the lines `<!-- name:start -->` and
    `<!-- name:end -->` of `path` (e.g. the README) with `text`, atomically;
    stops the script if the markers are missing."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    content = Path(path).read_text(encoding="utf8")
    if start not in content or end not in content:
        fail(f"{path} has no '{start}' ... '{end}' lines to write between.")
    before, rest = content.split(start, 1)
    after = rest.split(end, 1)[1]
    write_text(path, f"{before}{start}\n{text.rstrip(chr(10))}\n{end}{after}")


def fail(message: str) -> NoReturn:
    """Stop the script with a message and exit status 1 (no traceback)."""
    print(f"✘ {message}", file=sys.stderr, flush=True)
    sys.exit(1)
