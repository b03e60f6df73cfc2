"""Markdown reports from the metrics that evaluate.py and baselines.py write:
per dataset (a metrics folder), the comparison table of spacy-rnn and the
baselines, spacy-rnn's per-class scores, its pictures and example
predictions; and compact results tables for a page of docs/."""
import os
import random
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from wasabi import msg

from spacy_rnn.corpus import read_jsonl

from .datasets import CORPORA
from .files import fail, read_json, write_between_markers, write_text

TEXTCAT_SYSTEMS = ("rnn", "rnn_pretrained", "rnn_phrases", "rnn_phrases_pretrained",
                   "tfidf", "fasttext", "bow", "ensemble", "bilstm")
SEQ2SEQ_SYSTEMS = ("rnn", "rnn_pretrained", "most_frequent", "first_words", "tfidf_nearest")
README_COLUMNS = {  # the column of each system in the readme tables
    "rnn": "spacy-rnn", "rnn_pretrained": "spacy-rnn pretrained", "rnn_phrases": "spacy-rnn on phrases",
    "rnn_phrases_pretrained": "spacy-rnn pretrained, on phrases",
    "tfidf": "TF-IDF + LogReg", "fasttext": "fastText", "bow": "spaCy BOW", "ensemble": "spaCy Ensemble",
    "bilstm": "spaCy BiLSTM", "most_frequent": "most frequent title", "first_words": "first 4 words",
    "tfidf_nearest": "TF-IDF nearest title",
}
N_EXAMPLES = 8


def load_section(metrics_dir: Path) -> Dict[str, Dict]:
    """The metrics records of a folder, spacy-rnn first, by system key."""
    if not (metrics_dir / "rnn.json").exists():
        fail(f"{metrics_dir / 'rnn.json'} not found: run the evaluate step of this workflow first.")
    keys = SEQ2SEQ_SYSTEMS if "rougeL" in read_json(metrics_dir / "rnn.json") else TEXTCAT_SYSTEMS
    return {key: read_json(metrics_dir / f"{key}.json") for key in keys if (metrics_dir / f"{key}.json").exists()}


def is_seq2seq(records: Dict[str, Dict]) -> bool:
    return "rougeL" in records["rnn"]


def pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def seconds(value: Optional[float]) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def comparison_table(records: Dict[str, Dict]) -> str:
    """All systems of a section, one row each."""
    if is_seq2seq(records):
        header = ["System", "ROUGE-1", "ROUGE-2", "ROUGE-L", "BLEU", "exact match", "distinct", "copied",
                  "novel-words ROUGE-L (pairs)", "training"]
        rows = [[r["system"], pct(r["rouge1"]), pct(r["rouge2"]), pct(r["rougeL"]), pct(r["bleu"]), pct(r["exact"]),
                 pct(r.get("distinct")), pct(r.get("copied")),
                 f"{pct(r.get('novel_rougeL'))} ({r['novel_n']:,})" if r.get("novel_n") else "–",
                 seconds(r.get("train_seconds"))] for r in records.values()]
        return table(header, rows) + (
            "\n\nROUGE F1 and BLEU ×100, case-insensitive (`spacy_rnn.seq2seq_scorer.v1`); distinct: distinct "
            "titles / reviews; copied: share of title words found in the review; novel words: the pairs whose "
            "reference title has a word that no training title has."
        )
    stars = "mae" in records["rnn"]
    pairwise = "pairwise" in records["rnn"]
    header = ["System", "accuracy", "macro-F1"] + (["pairwise"] if pairwise else [])
    header += (["MAE (stars)", "within ±1 star"] if stars else []) + ["training", "words/s (test)"]
    rows = []
    for r in records.values():
        row = [r["system"], pct(r["accuracy"]), pct(r["macro_f1"])] + ([pct(r.get("pairwise"))] if pairwise else [])
        if stars:
            row += [f"{r['mae']:.3f}", pct(r["within_one"])]
        speed = r.get("words_per_second")
        row += [seconds(r.get("train_seconds")), f"{speed:,.0f}" if speed else "–"]
        rows.append(row)
    note = " (MAE: mean absolute error in stars)" if stars else ""
    if pairwise:
        note += ("; pairwise: SARC's own metric, in each pair of replies to one post the one scored more "
                 "sarcastic is called sarcastic")
    return table(header, rows) + "\n\nIn % on the test split" + note + ". One training run each (seed "
    "`vars.seed`); the bench (`docs/performance.md`) gives mean ± sd over 3 seeds and bootstrap intervals."


def per_class_table(record: Dict) -> str:
    rows = [[label, pct(s["precision"]), pct(s["recall"]), pct(s["f1"]), str(s["support"])]
            for label, s in record["per_class"].items()]
    return table(["class", "precision", "recall", "F1", "support"], rows)


def example_rows(metrics_dir: Path, seq2seq: bool) -> str:
    """A fixed random draw of spacy-rnn's test predictions (half right, half
    wrong for classifiers)."""
    rows = list(read_jsonl(metrics_dir / "rnn_predictions.jsonl", required=("text", "gold", "pred")))
    rng = random.Random(0)
    if seq2seq:
        chosen = rng.sample(rows, min(N_EXAMPLES, len(rows)))
        return table(["review (start)", "reference title", "generated title"],
                     [[cell(r["text"], 160), cell(r["gold"]), cell(r["pred"] or "")] for r in chosen])
    right = [r for r in rows if r["gold"] == r["pred"]]
    wrong = [r for r in rows if r["gold"] != r["pred"]]
    half = N_EXAMPLES // 2
    chosen = rng.sample(right, min(half, len(right))) + rng.sample(wrong, min(half, len(wrong)))
    return table(["text", "gold", "predicted (probability)"],
                 [[cell(r["text"], 160), r["gold"], f"{r['pred']} ({r['score']:.2f})"] for r in chosen])


def cell(text: str, limit: int = 80) -> str:
    """Text fit for a Markdown table cell."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def training_note(record: Dict) -> str:
    training = record.get("training")
    if not training:
        return ""
    settings = ", ".join(f"`{key}={value}`" for key, value in training["overrides"].items()
                         if not key.startswith("paths."))
    text = f"spacy-rnn was trained with `{training['config']}`" + (f" ({settings})" if settings else "")
    text += f" in {seconds(training['seconds'])}"
    best = record.get("best_dev")
    if best:
        text += (f"; model-best is the checkpoint with the best dev score, {100 * best['score']:.1f} at step "
                 f"{best['step']} (epoch {best['epoch'] + 1}; last evaluation at step {training['steps']})")
    return text + ".\n\n"


def section_markdown(title: str, metrics_dir: Path, report_dir: Path) -> str:
    records = load_section(metrics_dir)
    rnn = records["rnn"]
    parts = [f"## {title}", training_note(rnn) + comparison_table(records)]
    if not is_seq2seq(records):
        parts += ["### spacy-rnn per class", per_class_table(rnn)]
    pictures = [(f"{key}_{kind}.png", label) for key, kind, label in (
        ("rnn", "confusion", "confusion matrix"), ("rnn", "learning_curve", "learning curve"))]
    links = [f"![{title}: {label}]({os.path.relpath(metrics_dir / name, report_dir)})"
             for name, label in pictures if (metrics_dir / name).exists()]
    if links:
        parts += ["### Pictures", "\n".join(links)]
    parts += ["### Example predictions (spacy-rnn)", example_rows(metrics_dir, is_seq2seq(records))]
    return "\n\n".join(parts)


def write_report(output: Path, title: str, sections: List[Tuple[str, Path]]) -> None:
    body = [f"# {title}", "Written by `scripts/report.py` from the metrics in `metrics/`; test splits throughout."]
    body += [section_markdown(name, metrics_dir, output.parent) for name, metrics_dir in sections]
    write_text(output, "\n\n".join(body) + "\n")
    msg.good(f"Report written: {output}")


def readme_tables(sections: List[Tuple[str, Path]]) -> str:
    """Compact tables of every section: classifiers (accuracy / macro-F1, MAE
    for stars) and titles (ROUGE-1 / ROUGE-2 / ROUGE-L), a column for each
    system that some section has."""
    textcat, seq2seq = [], []
    for name, metrics_dir in sections:
        records = load_section(metrics_dir)
        (seq2seq if is_seq2seq(records) else textcat).append((name, records))
    parts = []
    if textcat:
        parts.append(readme_table(textcat, TEXTCAT_SYSTEMS, textcat_cell)
                     + "\n\nAccuracy / macro-F1 in % on the test splits; MAE in stars.")
    if seq2seq:
        parts.append(readme_table(seq2seq, SEQ2SEQ_SYSTEMS, rouge_cell)
                     + "\n\nROUGE-1 / ROUGE-2 / ROUGE-L F1 ×100 on the test split.")
    return "\n\n".join(parts)


def readme_table(
    sections: List[Tuple[str, Dict[str, Dict]]], systems: Sequence[str], cell: Callable[[Dict], str]
) -> str:
    present = [key for key in systems if any(key in records for _, records in sections)]
    with_mae = any(records["rnn"].get("mae") is not None for _, records in sections)
    header = ["Dataset"] + [README_COLUMNS[key] for key in present] + (["spacy-rnn MAE"] if with_mae else [])
    rows = []
    for name, records in sections:
        mae = records["rnn"].get("mae")
        rows.append([name] + [cell(records[key]) if key in records else "–" for key in present]
                    + (["–" if mae is None else f"{mae:.2f}"] if with_mae else [])
                    + [seconds(records["rnn"].get("train_seconds"))])
    return table(header + ["spacy-rnn training"], rows)


def textcat_cell(record: Dict) -> str:
    return f"{pct(record['accuracy'])} / {pct(record['macro_f1'])}"


def rouge_cell(record: Dict) -> str:
    return " / ".join(pct(record[key]) for key in ("rouge1", "rouge2", "rougeL"))


def write_readme(readme: Path, sections: List[Tuple[str, Path]]) -> None:
    write_between_markers(readme, "project-results", readme_tables(sections))
    msg.good(f"Results tables written into {readme}")


def parse_sections(values: List[str], metrics_root: Path = Path("metrics")) -> List[Tuple[str, Path]]:
    """(title, metrics folder) of each value: a corpus of the table (its
    title, metrics_root/name) or TITLE=METRICS_DIR."""
    sections = []
    for value in values:
        name, sep, folder = value.rpartition("=")
        if sep and name:
            sections.append((name, Path(folder)))
        elif value in CORPORA:
            sections.append((CORPORA[value].title, metrics_root / value))
        else:
            fail(f"Section '{value}': give a corpus ({', '.join(CORPORA)}) or TITLE=METRICS_DIR.")
    return sections
