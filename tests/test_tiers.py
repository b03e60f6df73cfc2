"""The package's floors, checked by import-linter (the contracts in setup.cfg
[importlinter]): plain torch (nn) -> thinc layers -> registered
architectures -> scoring, readers and callbacks -> the component -> the
commands; nothing imports upward, the modules of a package import each
other without cycles, and the plain-torch floor imports neither spaCy nor
thinc."""
import configparser
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def floors():
    """The module names of each floor of the layers contract, top first."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    lines = parser["importlinter:contract:floors"]["layers"].strip().splitlines()
    return [{name.strip().strip("()") for name in line.split("|")} for line in lines]


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_every_module_has_a_floor():
    """A new module or package of spacy_rnn must be placed on a floor, or the contract would not check it."""
    placed = set().union(*floors())
    package = REPO / "spacy_rnn"
    modules = {f"spacy_rnn.{path.stem}" for path in package.glob("*.py") if path.stem != "__init__"}
    modules |= {f"spacy_rnn.{path.parent.name}" for path in package.glob("*/__init__.py")}
    assert modules - placed == set(), "add these modules to a floor of [importlinter:contract:floors] in setup.cfg"
