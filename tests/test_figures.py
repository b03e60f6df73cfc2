"""Measured figures live only where a script writes them.

The README and the pages of docs/ quote results, speeds, timings and memory
only inside generated blocks, the lines between `<!-- name:start -->` and
`<!-- name:end -->` that the benchmarks and the project's `readme` step
rewrite. Prose points to those tables; the research log with its figures is
experiments/NOTES.md, which is not policed. Figures from the literature that a
page cites are allowed only on the ALLOWLIST below, and only in a paragraph
that names their source.

The patterns catch the shapes that measurements take ("41.2 ± 1.4", "87.6%",
"50,000 words/s", "2.4×", "+2.1 [+0.4, +3.7]", "46 minutes", "1.1 GB",
"scores 43.8") and leave alone what is not measured: config values (`0.002`,
`8MiB`), dataset sizes (318,582 phrases), version numbers (spaCy 3.8),
parameter counts and formulas (4 × 32).
"""
import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Tuple

import pytest

from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# The generated blocks each page must hold, by the name in its markers.
GENERATED: Dict[str, List[str]] = {
    "README.md": ["bench-summary"],
    "docs/performance.md": ["bench-accuracy", "bench-speed"],
    "docs/pretraining.md": ["screen", "confirm", "bench-accuracy"],
    "docs/scaling.md": ["bench-scale"],
    "docs/project.md": ["project-results"],
}

MARKER = re.compile(r"<!--\s*([\w.-]+)\s*:\s*(start|end)\s*-->")

NUMBER = r"\d[\d,]*(?:\.\d+)?"
RANGE = rf"{NUMBER}(?:\s*[–-]\s*{NUMBER})?"
SIGNED = r"[+−]\d+(?:\.\d+)?"
METRIC = (r"accuracy|pairwise|macro-F1|F1|ROUGE(?:-[12L])?|BLEU|MAE|perplexity|"
          r"scores?|scored|scoring|reach(?:es|ed)?|reports?|reported|best|above|below|ahead|behind|against|vs")

# (what the figure is, pattern): each match outside a generated block fails.
PATTERNS: List[Tuple[str, "re.Pattern[str]"]] = [
    ("a mean ± sd", re.compile(r"±\s*\d")),
    ("a percentage with a decimal", re.compile(r"(?<![\w.])\d+\.\d+\s*%")),
    ("a rate per second", re.compile(
        rf"(?<![\w.]){RANGE}\s*(?:[kKM]|million|thousand)?\s*(?:words|tokens|Docs|docs|records|texts|reviews|sentences|examples|steps"
        r"|updates|pairs)\s*(?:/\s*s\b|per\s+(?:CPU-)?second|a\s+second)")),
    ("a FLOP rate", re.compile(rf"(?<![\w.]){RANGE}\s*[kMGT]?FLOP/s")),
    ("a speed ratio", re.compile(
        rf"(?<![\w.]){RANGE}\s*×(?!\s*\d)|(?<![\w.]){RANGE}\s+times\s+(?:as|faster|slower|more|fewer|the)\b")),
    ("a signed difference", re.compile(rf"(?<![\w.`=]){SIGNED}\s*(?:points?\b|\[|%|\(|,|$)", re.MULTILINE)),
    ("a confidence interval", re.compile(r"\[\s*[+−-]?\d+\.\d+\s*,\s*[+−-]?\d+\.\d+\s*\]")),
    ("a difference in points", re.compile(rf"(?<![\w.]){RANGE}\s+(?:percentage\s+)?points?\b")),
    ("a duration", re.compile(
        rf"(?<![\w.`]){RANGE}\s*(?:ms|seconds?|minutes?|mins?|hours?)\b|(?<![\w.`]){RANGE}\s+s\b")),
    ("a memory size", re.compile(rf"(?<![\w.`]){RANGE}\s*(?:KiB|MiB|GiB|TiB|kB|KB|MB|GB|TB)\b")),
    ("a table row of figures", re.compile(
        r"^\|(?:[^|\n]*\|)*?[ \t]*\**\d[\d,.]*%?\**[ \t]*\|(?:[^|\n]*\|)*?[ \t]*\**\d[\d,.]*%?\**[ \t]*\|", re.MULTILINE)),
    ("a score", re.compile(rf"\b(?:{METRIC})\b[^\n|`]{{0,30}}?(?<![\w.+−-])(\d+\.\d+)(?![\w.])"
                           rf"|(?<![\w.+−-])\d+\.\d+\s*%?\s*(?:test\s+|dev\s+)?(?:{METRIC})\b")),
]


class Cited(NamedTuple):
    figure: str  # the number as the page writes it
    source: str  # a pattern that the paragraph quoting it must match
    reference: str  # where the figure comes from


# Figures of the literature the pages cite, each with its source.
ALLOWLIST: List[Cited] = [
    Cited("46.4", r"Tai et al", "Tai, Socher & Manning (2015), Table 2: LSTM, SST-5 fine-grained test accuracy"),
    Cited("49.1", r"Tai et al", "Tai, Socher & Manning (2015), Table 2: bidirectional LSTM, SST-5 fine-grained"),
    Cited("86.5", r"Dai (?:&|and) Le", "Dai & Le (2015), Table 4: LSTM from random initialisation, IMDB accuracy"),
    Cited("92.8", r"Dai (?:&|and) Le", "Dai & Le (2015), Table 4: SA-LSTM (LM-pretrained), IMDB accuracy"),
]


class Figure(NamedTuple):
    page: str
    line: int
    text: str
    kind: str


def page_name(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def outside_generated(text: str) -> str:
    """The page with the lines of its generated blocks blanked (markers
    included), so that offsets still give the right line numbers."""
    lines = text.split("\n")
    inside = None
    for i, line in enumerate(lines):
        marker = MARKER.search(line)
        if marker and marker.group(2) == "start" and inside is None:
            inside = marker.group(1)
            lines[i] = ""
        elif marker and marker.group(2) == "end" and marker.group(1) == inside:
            inside = None
            lines[i] = ""
        elif inside is not None:
            lines[i] = ""
    return "\n".join(lines)


def paragraph_at(text: str, offset: int) -> str:
    start = text.rfind("\n\n", 0, offset)
    end = text.find("\n\n", offset)
    return text[start + 1 if start >= 0 else 0:end if end >= 0 else len(text)]


def is_cited(match: "re.Match[str]", text: str) -> bool:
    numbers = re.findall(r"\d+(?:\.\d+)?", match.group(0))
    paragraph = paragraph_at(text, match.start())
    return bool(numbers) and all(
        any(number == cited.figure and re.search(cited.source, paragraph) for cited in ALLOWLIST)
        for number in numbers)


def figures(path: Path) -> List[Figure]:
    """Every policed figure of a page outside its generated blocks, once per line."""
    name = page_name(path) if REPO in path.parents else path.name
    text = outside_generated(path.read_text(encoding="utf8"))
    found: Dict[Tuple[int, str], Figure] = {}
    for kind, pattern in PATTERNS:
        for match in pattern.finditer(text):
            if is_cited(match, text):
                continue
            line = text.count("\n", 0, match.start()) + 1
            figure = match.group(0).strip()
            found.setdefault((line, figure), Figure(name, line, figure, kind))
    return sorted(found.values(), key=lambda figure: figure.line)


# Pages whose rewrite is under way elsewhere: strict, so the mark fails as soon as the page passes and
# must then be removed. Keep this empty otherwise.
PENDING = {}


def policed_pages():
    return [pytest.param(page, id=page_name(page),
                         marks=[pytest.mark.xfail(strict=True, reason=PENDING[page_name(page)])]
                         if page_name(page) in PENDING else [])
            for page in PAGES]


@pytest.mark.parametrize("page", policed_pages())
def test_no_measured_figure_outside_generated_blocks(page):
    found = figures(page)
    assert not found, (
        "measured figures outside the generated blocks (point to the generated table, or move the figure to "
        "experiments/NOTES.md; a literature figure goes on tests/test_figures.py's ALLOWLIST with its source):\n"
        + "\n".join(f"  {figure.page}:{figure.line}: {figure.text!r} ({figure.kind})" for figure in found))


@pytest.mark.parametrize("page", PAGES, ids=page_name)
def test_markers_are_balanced(page):
    text = page.read_text(encoding="utf8")
    name = page_name(page)
    open_block = None
    seen = []
    for number, line in enumerate(text.splitlines(), 1):
        for marker in MARKER.finditer(line):
            block, side = marker.groups()
            if side == "start":
                assert open_block is None, f"{name}:{number}: {block}:start inside {open_block}"
                assert block not in seen, f"{name}:{number}: a second {block} block"
                open_block = block
                seen.append(block)
            else:
                assert open_block == block, f"{name}:{number}: {block}:end without its start"
                open_block = None
    assert open_block is None, f"{name}: {open_block}:start has no end"
    assert seen == GENERATED.get(name, []), f"{name}: generated blocks {seen}, expected {GENERATED.get(name, [])}"


def test_every_page_with_generated_blocks_exists():
    assert sorted(GENERATED) == sorted(name for name in map(page_name, PAGES) if name in GENERATED)


def test_every_allowlisted_figure_is_cited():
    """An allowlist entry that no page uses any more is dropped, not kept."""
    texts = [outside_generated(page.read_text(encoding="utf8")) for page in PAGES]
    for cited in ALLOWLIST:
        assert any(re.search(rf"(?<![\d.]){re.escape(cited.figure)}(?![\d.])", text)
                   and re.search(cited.source, text) for text in texts), f"{cited.figure} ({cited.reference}) is cited nowhere"


@pytest.mark.parametrize("line,kind", [
    ("SST-5 reaches 41.2 ± 1.4 here", "a mean ± sd"),
    ("with 53.2% distinct titles", "a percentage with a decimal"),
    ("it trains at 50,000 words/s on 2 cores", "a rate per second"),
    ("it predicts 1.35M words per second", "a rate per second"),
    ("the layer alone reaches 4.1 million tokens/s", "a rate per second"),
    ("it trains 2.1–2.9× as many words", "a speed ratio"),
    ("a matrix product runs at 183 GFLOP/s", "a FLOP rate"),
    ("the gain is +2.1 [+0.4, +3.7]", "a confidence interval"),
    ("pretraining lifts it by 2.1 points", "a difference in points"),
    ("the movies domain takes about 46 minutes", "a duration"),
    ("a 12-second job ends after 2.5 s", "a duration"),
    ("the step peaks at about 1.1 GB", "a memory size"),
    ("the pretrained RNN scores 43.8 on SST-5", "a score"),
    ("macro-F1 of 38.6 with HashEmbed", "a score"),
    ("| LSTM | 119,452 | 167,391 |", "a table row of figures"),
    ("Tai et al. report 51.0 for their tree-LSTM", "a score"),
    ("it is best on SST-5 (41.7)", "a score"),
    ("a 43.8 accuracy on SST-5", "a score"),
])
def test_patterns_catch_measurements(line, kind, tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"# A page\n\n{line}\n", encoding="utf8")
    found = figures(page)
    assert kind in {figure.kind for figure in found}, found


@pytest.mark.parametrize("line", [
    "Adam at 0.002, `learn_rate_scale = 0.25`, prior penalty 0.2, dropout 0.2",
    "the default blocksize is `8MiB`; a size such as `512KiB` or `64MB`",
    "318,582 labelled phrases of the 8,544 training trees; 25,000 test reviews",
    "spaCy 3.8.18, torch 2.13.0, Python ≥ 3.9",
    "HashEmbed.v1 of width 128 (4 × 32); N·d + N² + 2N weights per gate",
    "| Elman, sigmoid (own) | N·d + N² + N | 20,608 |",
    "| `rnn_seq2seq` `max_length` | 20 | at most 20 generated tokens |",
    "spaCy prints the loss every 10,000 words; a uniform guess costs ln 20002 ≈ 9.9",
    "Tai et al. (2015) report 46.4 for their LSTM over GloVe vectors",
    "Dai & Le (2015): IMDB 86.5 → 92.8 with in-domain pretraining",
    "the scorer `spacy_rnn.seq2seq_scorer.v3` and `--gpu-id -1`",
    "cutoffs = [2000,10000]; the boundary and unknown classes at ids [0, 1]",
])
def test_patterns_leave_facts_alone(line, tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"# A page\n\n{line}\n", encoding="utf8")
    assert figures(page) == []


def test_generated_blocks_are_exempt(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n<!-- bench:start -->\n| x | 41.2 ± 1.4 |\n<!-- bench:end -->\n\n"
                    "Outside: 41.2 ± 1.4\n", encoding="utf8")
    assert [(figure.line, figure.kind) for figure in figures(page)] == [(7, "a mean ± sd")]
