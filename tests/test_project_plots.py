"""The project's pictures say what they show: the confusion matrix as shares
of each gold class on a fixed 0-1 scale with the counts written in, and the
learning curve with its metric named and model-best's checkpoint marked."""
import sys

import numpy
import pytest

from conftest import REPO

SCRIPTS = REPO / "project" / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))

from rnnproject import metrics, plots  # noqa: E402

LOG = [{"step": step, "epoch": step // 200, "score": score, "losses": {"textcat": 10.0}}
       for step, score in ((0, 0.2), (200, 0.39), (400, 0.35), (600, 0.39), (800, 0.37))]


@pytest.fixture
def figures(monkeypatch):
    """The figures the plots would save, kept open for inspection."""
    kept = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: kept.append(fig))
    yield kept
    for fig in kept:
        plots.plt.close(fig)


def test_confusion_matrix_shows_recall_per_gold_class_and_counts(figures, tmp_path):
    confusion = {"labels": ["1", "2", "3"], "matrix": [[8, 2, 0], [30, 60, 10], [0, 0, 0]]}
    plots.plot_confusion(confusion, "system", tmp_path / "confusion.png")
    ax = figures[0].axes[0]
    image = ax.images[0]
    numpy.testing.assert_allclose(image.get_array(), [[0.8, 0.2, 0.0], [0.3, 0.6, 0.1], [0.0, 0.0, 0.0]])
    assert image.get_clim() == (0.0, 1.0) and image.colorbar is not None
    texts = [text.get_text() for text in ax.texts]
    assert texts[:3] == ["80%\n(8)", "20%\n(2)", "0%\n(0)"] and texts[4] == "60%\n(60)"
    assert "recall per gold class" in ax.get_title()


def test_learning_curve_names_the_metric_and_marks_model_best(figures, tmp_path):
    plots.plot_learning_curve(LOG, "system", tmp_path / "curve.png", "cats_score (macro F)")
    top = figures[0].axes[0]
    assert "cats_score (macro F)" in top.get_title() and "cats_score" in top.get_ylabel()
    assert "model-best: 39.0 at step 600" in [text.get_text() for text in top.get_legend().get_texts()]


def test_model_best_is_the_latest_of_equal_scores_as_spacy_saves_it():
    assert metrics.best_checkpoint(LOG) == {"score": 0.39, "step": 600, "epoch": 3}


@pytest.mark.parametrize("weights,scores,name", [
    ({"cats_score": 1.0, "cats_score_desc": None, "cats_micro_f": None}, {"cats_score_desc": "macro F"},
     "cats_score (macro F)"),
    ({"s2s_rougeL": 1.0, "s2s_bleu": 0.0}, {}, "s2s_rougeL"),
    ({"tag_acc": 0.5, "dep_las": 0.5}, {}, "0.5 × tag_acc + 0.5 × dep_las"),
])
def test_the_dev_score_is_named_from_the_score_weights(weights, scores, name):
    assert metrics.score_name(weights, scores) == name
