"""Baselines on the same data as spacy-rnn, written in the same metrics
format (see `pipelines.write_outputs`) so the reports compare like with like.

textcat:
- `tfidf`: TF-IDF of word 1-2-grams + logistic regression (scikit-learn), C
  picked on the dev split by macro-F1;
- `fasttext`: fastText's supervised classifier with word bigrams on the
  lowercased tokens, epochs and learning rate picked on dev by macro-F1;
- `bow`, `ensemble`, `bilstm`: spaCy's built-in text classifiers
  (project/configs/baseline_*.cfg: TextCatBOW.v3, the default TextCatEnsemble.v2,
  TorchBiLSTMEncoder.v1 in TextCatReduce.v1), trained with `pipelines.train`.

seq2seq (review -> title): the most frequent training title, the first four
words of the review, and the title of the most similar training review
(TF-IDF cosine).
"""
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy
import spacy
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from spacy.tokens import Doc
from spacy.training import Example
from wasabi import msg

from spacy_rnn import get_target

from .corpora import read_docs
from .files import fail
from .metrics import doc_groups, seq2seq_result, textcat_result, top_label
from .pipelines import evaluate_pipeline, train, write_outputs

CONFIGS = Path(__file__).resolve().parents[2] / "configs"  # project/configs
SPACY_BASELINES = {
    "bow": ("spaCy TextCatBOW.v3", "baseline_bow.cfg"),
    "ensemble": ("spaCy TextCatEnsemble.v2 (default textcat)", "baseline_ensemble.cfg"),
    "bilstm": ("spaCy TorchBiLSTMEncoder + TextCatReduce", "baseline_bilstm.cfg"),
}
TFIDF_NAME = "TF-IDF (1-2-grams) + LogReg"
C_GRID = (0.25, 1.0, 4.0, 16.0)
FASTTEXT_NAME = "fastText (word bigrams)"
FASTTEXT_GRID = {"epoch": (5, 25), "lr": (0.05, 0.2, 1.0)}
FASTTEXT_DIM = 50
TITLE_BASELINES = {
    "most_frequent": "the most frequent training title",
    "first_words": "the first 4 words of the review",
    "tfidf_nearest": "the title of the TF-IDF nearest training review",
}
OUTPUT_ATTR = "generated"


def read_split(path: Path) -> List[Doc]:
    return read_docs(path, spacy.blank("en"))


def tfidf() -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


def textcat_splits(corpus: Path) -> Tuple[Dict[str, List[Doc]], Dict[str, List[str]], List[str]]:
    """The train, dev and test Docs of a textcat corpus, their gold labels, and the label set."""
    splits = {split: read_split(corpus / f"{split}.spacy") for split in ("train", "dev", "test")}
    gold = {split: [top_label(doc.cats) for doc in docs] for split, docs in splits.items()}
    return splits, gold, list(splits["train"][0].cats)


def tfidf_logreg(corpus: Path, out_dir: Path, stars: bool) -> Dict:
    """Fit TF-IDF + logistic regression on train, pick C on dev, score test."""
    splits, gold, labels = textcat_splits(corpus)
    texts = {split: [doc.text for doc in docs] for split, docs in splits.items()}
    start = time.perf_counter()
    vectorizer = tfidf()
    features = {"train": vectorizer.fit_transform(texts["train"]), "dev": vectorizer.transform(texts["dev"])}
    fitted = []
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000).fit(features["train"], gold["train"])
        dev_f1 = f1_score(gold["dev"], model.predict(features["dev"]), average="macro")
        fitted.append((dev_f1, c, model))
    dev_f1, best_c, model = max(fitted, key=lambda item: item[0])
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    probs = model.predict_proba(vectorizer.transform(texts["test"]))
    n_words = sum(len(doc) for doc in splits["test"])
    words_per_second = n_words / (time.perf_counter() - start)
    cats = [dict(zip(model.classes_, row)) for row in probs]
    result = textcat_result(texts["test"], gold["test"], cats, labels, stars, doc_groups(splits["test"]))
    extra = {"train_seconds": round(seconds, 1), "words_per_second": words_per_second, "C": best_c,
             "dev_macro_f1": dev_f1}
    return write_outputs(out_dir, "tfidf", TFIDF_NAME, result, extra)


def fasttext_lines(docs: List[Doc]) -> List[str]:
    """fastText's input: the Docs' tokens lowercased, joined by spaces."""
    return [" ".join(token.lower_ for token in doc if not token.is_space) for doc in docs]


def fasttext_baseline(corpus: Path, out_dir: Path, stars: bool, seed: int = 0,
                      settings: Optional[Dict] = None) -> Dict:
    """fastText's supervised classifier (word bigrams, one thread, `seed`):
    epochs and learning rate picked on the dev split by macro-F1 from
    FASTTEXT_GRID, or the given `settings` (a record's "settings", to train
    more seeds with what dev picked once)."""
    try:
        import fasttext
    except ImportError:
        fail("fastText is not installed: pip install -e \".[project]\" (it brings fasttext-numpy2-wheel).")
    splits, gold, labels = textcat_splits(corpus)
    lines = {split: fasttext_lines(docs) for split, docs in splits.items()}
    n_train_words = sum(len(doc) for doc in splits["train"])
    candidates = [settings] if settings else [
        {"epoch": epoch, "lr": lr, "dim": FASTTEXT_DIM, "wordNgrams": 2}
        for epoch in FASTTEXT_GRID["epoch"] for lr in FASTTEXT_GRID["lr"]
    ]
    order = list(range(len(lines["train"])))
    random.Random(seed).shuffle(order)  # fastText reads the file in order: a file sorted by label would bias it
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("".join(f"__label__{gold['train'][i]} {lines['train'][i]}\n" for i in order))
        fitted = []
        for candidate in candidates:
            start, cpu_start = time.perf_counter(), time.process_time()
            try:  # seed + 1: fastText's generator (minstd_rand) turns seed 0 into 1, so 0 and 1 would train alike
                model = fasttext.train_supervised(str(train_file), **candidate, thread=1, seed=seed + 1, verbose=0)
            except RuntimeError as err:  # "Encountered NaN.": the learning rate is too high for this data
                msg.warn(f"fastText with {candidate} diverged ({err}): left out.")
                continue
            cpu_seconds = time.process_time() - cpu_start
            seconds = time.perf_counter() - start
            dev_f1 = f1_score(gold["dev"], [fasttext_cats(model, line, labels) for line in lines["dev"]],
                              labels=labels, average="macro")
            fitted.append((dev_f1, candidate, model, seconds, cpu_seconds))
    if not fitted:
        fail(f"fastText diverged with every setting tried ({candidates}): try lower learning rates.")
    dev_f1, best, model, seconds, cpu_seconds = max(fitted, key=lambda item: item[0])
    start = time.perf_counter()
    cats = [fasttext_cats(model, line, labels, all_scores=True) for line in lines["test"]]
    n_words = sum(len(doc) for doc in splits["test"])
    words_per_second = n_words / (time.perf_counter() - start)
    result = textcat_result(lines["test"], gold["test"], cats, labels, stars, doc_groups(splits["test"]))
    result["predictions"] = [{**row, "text": doc.text} for row, doc in zip(result["predictions"], splits["test"])]
    extra = {"train_seconds": round(seconds, 1), "words_per_second": words_per_second, "settings": best,
             "seed": seed, "dev_macro_f1": dev_f1,
             "train_words_per_second": n_train_words * best["epoch"] / seconds,
             "train_words_per_cpu_second": n_train_words * best["epoch"] / cpu_seconds}
    return write_outputs(out_dir, "fasttext", FASTTEXT_NAME, result, extra)


def fasttext_cats(model, line: str, labels: List[str], all_scores: bool = False):
    """The top label of a line (or, with `all_scores`, the probability of
    every label as a `cats` dict)."""
    names, probs = model.predict(line, k=-1 if all_scores else 1)
    found = {name[len("__label__"):]: float(prob) for name, prob in zip(names, probs)}
    if not all_scores:
        return next(iter(found))
    return {label: found.get(label, 0.0) for label in labels}


def drop_unchosen_records(out_dir: Path, chosen: List[str]) -> None:
    """Remove the metrics files of spaCy baselines not chosen this time, so
    that a report never shows a model of an earlier run beside this one."""
    for key in set(SPACY_BASELINES) - set(chosen):
        stale = [*out_dir.glob(f"{key}.*"), *out_dir.glob(f"{key}_*")]  # as write_outputs names them
        for path in stale:
            path.unlink()
        if stale:
            msg.info(f"Removed {len(stale)} files of spaCy's '{key}' baseline from {out_dir}: not chosen this time")


def spacy_baseline(key: str, corpus: Path, out_dir: Path, training_dir: Path, stars: bool, gpu_id: int,
                   overrides: Dict) -> Dict:
    name, config = SPACY_BASELINES[key]
    output = training_dir / key
    paths = {"paths.train": str(corpus / "train.spacy"), "paths.dev": str(corpus / "dev.spacy")}
    train(CONFIGS / config, output, {**paths, **overrides}, gpu_id)
    return evaluate_pipeline(output / "model-best", corpus / "test.spacy", out_dir, key, name, stars, gpu_id)


def nearest_titles(train_texts: List[str], train_titles: List[str], texts: List[str], chunk: int = 256) -> List[str]:
    """The title of the most similar training review (TF-IDF cosine) for each text."""
    vectorizer = tfidf()
    train_matrix = vectorizer.fit_transform(train_texts)
    matrix = vectorizer.transform(texts)
    titles = []
    for start in range(0, matrix.shape[0], chunk):
        similarity = (matrix[start:start + chunk] @ train_matrix.T).toarray()
        titles.extend(train_titles[i] for i in numpy.argmax(similarity, axis=1))
    return titles


def title_baselines(corpus: Path, out_dir: Path, test: Optional[Path] = None) -> List[Dict]:
    """The title baselines, fitted on the corpus's training pairs, on its test
    pairs or on the pairs of `test`."""
    if not Doc.has_extension(OUTPUT_ATTR):
        Doc.set_extension(OUTPUT_ATTR, default=None)
    train_docs, test_docs = read_split(corpus / "train.jsonl"), read_split(test or corpus / "test.jsonl")
    train_texts = [doc.text for doc in train_docs]
    train_titles = [get_target(doc) or "" for doc in train_docs]
    texts = [doc.text for doc in test_docs]
    most_frequent = Counter(title.lower().strip() for title in train_titles).most_common(1)[0][0]
    predictions = {
        "most_frequent": [most_frequent] * len(texts),
        "first_words": [" ".join(text.split()[:4]) for text in texts],
        "tfidf_nearest": nearest_titles(train_texts, train_titles, texts),
    }
    records = []
    for key, outputs in predictions.items():
        examples = []
        for doc, output in zip(test_docs, outputs):
            predicted = doc.copy()
            predicted._.set(OUTPUT_ATTR, output)
            examples.append(Example(predicted, doc))
        result = seq2seq_result(examples, OUTPUT_ATTR, train_titles)
        records.append(write_outputs(out_dir, key, TITLE_BASELINES[key], result, {}))
    return records
