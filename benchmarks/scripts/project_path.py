"""Puts the user project's scripts folder on sys.path, so that the scripts
here import its helper package `rnnproject` (they run by path, from this
project's folder)."""
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "project" / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
