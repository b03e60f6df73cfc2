"""Saved pipelines stay loadable: each folder under tests/fixtures was saved
by a released layout of spacy-rnn (tests/fixtures/save_pipeline.py), and
today's code must load it and predict what that code predicted."""
import sys
from pathlib import Path

import numpy
import pytest
import spacy
import srsly

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from save_pipeline import predictions  # noqa: E402

SAVED = sorted(path for path in FIXTURES.iterdir() if (path / "pipeline").is_dir())


def test_fixtures_present():
    assert SAVED, f"no saved pipeline under {FIXTURES}"


@pytest.mark.parametrize("saved", SAVED, ids=lambda path: path.name)
def test_saved_pipeline_predicts_the_same(saved):
    nlp = spacy.load(saved / "pipeline")
    expected = srsly.read_json(saved / "predictions.json")
    got = predictions(nlp)
    assert got["generated"] == expected["generated"]
    for name in ("textcat", "textcat_multilabel"):
        numpy.testing.assert_allclose(got[name], expected[name], atol=1e-5, err_msg=name)
