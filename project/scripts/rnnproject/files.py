"""Files: atomic writes, JSON reading with clear errors, tables between markers
of a page, config overrides from the command line, and clean failures."""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, NoReturn, Union

import srsly
import typer

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
    with atomic_path(path) as tmp:
        srsly.write_json(tmp, data)


def write_jsonl(path: PathLike, records: Iterable[Dict]) -> None:
    with atomic_path(path) as tmp:
        srsly.write_jsonl(tmp, records)


def read_json(path: PathLike) -> Any:
    """The JSON in `path`; stops the script with a message naming the file
    (and line) when it cannot be read or parsed."""
    try:
        with Path(path).open(encoding="utf8") as file_:
            return json.load(file_)  # not srsly: its errors do not say where
    except OSError as err:
        fail(f"{path}: cannot be read ({err.strerror}).")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        line = f":{err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
        fail(f"{path}{line}: not valid JSON ({err}). Run the step that writes it again.")


def write_between_markers(path: PathLike, name: str, text: str) -> None:
    """Replace what lies between the lines `<!-- name:start -->` and
    `<!-- name:end -->` of `path` (a page of docs/) with `text`, atomically;
    stops the script if the markers are missing."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    content = Path(path).read_text(encoding="utf8")
    if start not in content or end not in content:
        fail(f"{path} has no '{start}' ... '{end}' lines to write between.")
    before, rest = content.split(start, 1)
    after = rest.split(end, 1)[1]
    write_text(path, f"{before}{start}\n{text.rstrip(chr(10))}\n{end}{after}")


def git_commit() -> str:
    """The short hash of the checkout's HEAD ("unknown" outside git), for benchmark headers."""
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent)
    return result.stdout.strip() or "unknown"


def run_with_overrides(command: Callable) -> None:
    """Run a typer command that also takes `--section.key value` config
    overrides (in its `ctx.args`; see `config_overrides`), as `spacy train` does."""
    app = typer.Typer(add_completion=False)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
    app()


def config_overrides(args: List[str]) -> Dict[str, Any]:
    """Config overrides given as `spacy train` takes them: `--section.key value`
    or `--section.key=value`, values read as JSON where they are JSON (else
    strings), a bare `--section.key` as true."""
    overrides: Dict[str, Any] = {}
    args = list(args)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--") or "." not in arg:
            fail(f"Unexpected argument '{arg}': config overrides look like --section.key value.")
        name, has_value, value = arg[2:].partition("=")
        if not has_value:
            value = args.pop(0) if args and not args[0].startswith("--") else "true"
        try:
            overrides[name.replace("-", "_")] = srsly.json_loads(value)
        except ValueError:
            overrides[name.replace("-", "_")] = value
    return overrides


def fail(message: str) -> NoReturn:
    """Stop the script with a message on stderr and exit status 1 (no
    traceback); unlike wasabi's msg.fail, which prints to stdout and wraps
    lines, it keeps paths and commands in one piece."""
    print(f"✘ {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def fingerprint(paths: List[Path]) -> str:
    """One `md5  path` line per Python file under the folders given (no
    __pycache__), and per file given."""
    files = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts))
        elif path.is_file():
            files.append(path)
        else:
            fail(f"{path} not found: give the spacy_rnn package folder of the repository.")
    return "".join(f"{hashlib.md5(f.read_bytes()).hexdigest()}  {f.as_posix()}\n" for f in files)
