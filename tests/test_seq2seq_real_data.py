"""A short training run on Women's clothing review -> title pairs beats the
trivial baseline of always answering the most frequent training title."""
import collections
import json
import random

import pytest
import spacy
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

from spacy_rnn import set_target
from spacy_rnn.scoring import seq2seq_score

N_TRAIN, N_TEST, EPOCHS = 4000, 500, 4


def read_pairs(path, limit):
    with path.open(encoding="utf8") as file_:
        return [json.loads(line) for line, _ in zip(file_, range(limit))]


@pytest.fixture(scope="module")
def title_pairs():
    from conftest import data_dir

    folder = data_dir() / "seq2seq"
    train_file, test_file = folder / "womens_clothing_title_train.jsonl", folder / "womens_clothing_title_test.jsonl"
    if not (train_file.is_file() and test_file.is_file()):
        pytest.skip(f"no real data: {folder} lacks the review -> title JSONL files (set SPACY_RNN_DATA to shared/data)")
    return read_pairs(train_file, N_TRAIN), read_pairs(test_file, N_TEST)


@pytest.mark.slow
def test_short_training_beats_most_frequent_title(title_pairs):
    train_pairs, test_pairs = title_pairs
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_seq2seq", config={
        "beam_size": 3,
        "max_length": 10,
        "model": {
            "width": 64, "target_width": 32, "dropout": 0.1,
            "tok2vec": {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 64,
                        "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"], "rows": [2000, 500, 1000, 500]},
        },
    })

    def examples(pairs):
        return [Example(nlp.make_doc(p["text"]), set_target(nlp.make_doc(p["text"]), p["target"])) for p in pairs]

    train, test = examples(train_pairs), examples(test_pairs)
    optimizer = nlp.initialize(lambda: train, sgd=Adam(0.01))
    rng = random.Random(0)
    for _ in range(EPOCHS):
        rng.shuffle(train)
        for start in range(0, len(train), 32):
            nlp.update(train[start : start + 32], sgd=optimizer, drop=0.1)
    model_rouge_l = nlp.evaluate(test)["s2s_rougeL"]

    most_frequent = collections.Counter(p["target"] for p in train_pairs).most_common(1)[0][0]
    for example in test:
        example.predicted._.generated = most_frequent
    baseline_rouge_l = seq2seq_score(test)["s2s_rougeL"]
    assert model_rouge_l > baseline_rouge_l + 0.01, (model_rouge_l, baseline_rouge_l, most_frequent)
