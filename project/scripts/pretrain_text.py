"""Gather the unlabelled training text of a domain (rnnproject/datasets.py,
DOMAINS: the files and fields each reads from the project's assets) for
`spacy pretrain`: the texts without duplicates, in a fixed-seed shuffled
order, cut to at most `--max-words` tokens, into OUT/DOMAIN/texts.jsonl, and
their word list OUT/DOMAIN/lm_words.txt (`spacy_rnn.lm_words`). Test and dev
splits are refused: pretraining on them would leak the evaluation texts.

    python scripts/pretrain_text.py reddit --max-words 500000
"""
from pathlib import Path

import typer

from rnnproject.datasets import DOMAINS, check_names, split_path
from rnnproject.pretraining import write_texts


def main(
    # fmt: off
    domain: str = typer.Argument(..., help=f"The domain: {', '.join(DOMAINS)}"),
    out: Path = typer.Option(Path("corpus/pretrain"), help="Folder for a folder per domain"),
    max_words: int = typer.Option(0, min=0, help="At most this many tokens (spaCy's) of text (0: all)"),
    vocab: int = typer.Option(20000, min=1, help="Length of the word list"),
    seed: int = typer.Option(0, help="Seed of the shuffle"),
    lang: str = typer.Option("en", help="Language of the tokenizer"),
    # fmt: on
):
    """Gather a domain's texts for pretraining, and their word list."""
    check_names([domain], DOMAINS, "domain")
    write_texts([split_path(spec) for spec in DOMAINS[domain]], out / domain, max_words, vocab, seed, lang)


if __name__ == "__main__":
    typer.run(main)
