"""Markdown reports from the metrics that evaluate.py and baselines.py wrote.

A section is a corpus of the table (its title, METRICS/<name>) or
TITLE=METRICS_DIR. `workflow`: one report with, per section, the comparison
table of spacy-rnn and the baselines, spacy-rnn's per-class scores, its
confusion matrix and learning curve, and example predictions. `readme`: the
results tables of all sections, written into a page between the lines
`<!-- project-results:start -->` and `<!-- project-results:end -->`.

    python scripts/report.py workflow reports/stars.md --title "Review stars (1-5)" sst5 marc
    python scripts/report.py readme ../docs/project.md sarcasm sst5 marc titles
"""
from pathlib import Path
from typing import List

import typer

from rnnproject.files import fail
from rnnproject.reports import parse_sections, write_readme, write_report
from spacy_rnn.corpus import DataError

app = typer.Typer(add_completion=False, help="Markdown reports from the metrics of evaluate.py and baselines.py.")
SECTIONS = typer.Argument(..., help="Corpora of the table, or TITLE=METRICS_DIR")
METRICS = typer.Option(Path("metrics"), help="Folder of the corpora's metrics folders")


@app.command("workflow")
def workflow_cli(
    output: Path = typer.Argument(..., help="The report to write"),
    sections: List[str] = SECTIONS,
    title: str = typer.Option("spacy-rnn results", help="The report's title"),
    metrics: Path = METRICS,
):
    """One report: per section, the comparison table, pictures and example predictions."""
    try:
        write_report(output, title, parse_sections(sections, metrics))
    except DataError as err:
        fail(f"{err} Run the evaluate step again.")


@app.command("readme")
def readme_cli(
    page: Path = typer.Argument(..., help="The page to update (docs/project.md)", exists=True, dir_okay=False),
    sections: List[str] = SECTIONS,
    metrics: Path = METRICS,
):
    """The results tables of all sections, written into a page between its project-results markers."""
    write_readme(page, parse_sections(sections, metrics))


if __name__ == "__main__":
    app()
