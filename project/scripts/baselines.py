"""Baselines on the same data as spacy-rnn, in the same metrics format (see
evaluate.py), so that the reports compare like with like: for a textcat
corpus, TF-IDF + logistic regression, fastText and spaCy's BOW, Ensemble and
BiLSTM text classifiers (configs/baseline_*.cfg, trained with `spacy train`;
--spacy picks them; further options override their configs, e.g.
--training.max_epochs 8); for a
seq2seq corpus, the most frequent training title, the review's first four
words and the title of the TF-IDF nearest training review (see
rnnproject/baselines.py).

Corpus NAME is read from CORPUS/NAME; the metrics go to METRICS/NAME, spaCy's
models to TRAINING/NAME_baselines. `--test` scores the title baselines on
other test pairs.

    python scripts/baselines.py sst5 --training.max_epochs 8
    python scripts/baselines.py marc --spacy bow
    python scripts/baselines.py titles --test assets/titles_other/amazon_other_products_title_test.jsonl \\
        --metrics metrics/other_products
"""
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from rnnproject.baselines import (SPACY_BASELINES, drop_unchosen_records, fasttext_baseline, spacy_baseline,
                                  tfidf_logreg, title_baselines)
from rnnproject.datasets import CORPORA, check_names
from rnnproject.files import config_overrides, fail, run_with_overrides
from rnnproject.metrics import summary
from spacy_rnn.corpus import DataError


def main(
    # fmt: off
    ctx: typer.Context,  # config overrides of spaCy's models
    name: str = typer.Argument(..., help=f"The corpus: {', '.join(CORPORA)}"),
    corpus: Path = typer.Option(Path("corpus"), help="Folder of the corpora (convert.py's --out)"),
    metrics: Path = typer.Option(Path("metrics"), help="Folder for a metrics folder per corpus"),
    training: Path = typer.Option(Path("training"), help="Folder for spaCy's models (NAME_baselines)"),
    test: Optional[Path] = typer.Option(None, help="seq2seq: test pairs (.jsonl) other than the corpus's", exists=True),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="GPU to train spaCy's models on; -1: CPU"),
    spacy: str = typer.Option(" ".join(SPACY_BASELINES), help=f"spaCy's text classifiers to train, separated by spaces ({', '.join(SPACY_BASELINES)}; empty: none)"),
    # fmt: on
):
    """Baselines on the same data as spacy-rnn; further options
    (--section.key value) override the configs of spaCy's models."""
    check_names([name], CORPORA, "corpus")
    chosen = spacy.split()
    check_names(chosen, SPACY_BASELINES, "spaCy baseline")
    overrides = config_overrides(ctx.args)
    seed = int(overrides.get("system.seed", 0))  # fastText's seed too
    info, data, out = CORPORA[name], corpus / name, metrics / name
    try:
        if info.kind == "seq2seq":
            records = title_baselines(data, out, test)
        else:
            records = [tfidf_logreg(data, out, info.stars), fasttext_baseline(data, out, info.stars, seed)]
            drop_unchosen_records(out, chosen)
            for key in chosen:
                records.append(spacy_baseline(key, data, out, training / f"{name}_baselines", info.stars, gpu_id,
                                              overrides))
    except DataError as err:
        fail(f"{err} Run the convert step again.")
    for record in records:
        msg.good(f"{record['system']}: {summary(record)}")


if __name__ == "__main__":
    run_with_overrides(main)
