"""The lean install: spacy-rnn imports and classifies text without the
`seq2seq` extra (rouge-score, sacrebleu, tokenizers), and what needs the
extra says how to install it."""
import subprocess
import sys

import pytest
import spacy
from spacy.training import Example

from spacy_rnn import set_target
from spacy_rnn.scoring import seq2seq_score
from spacy_rnn.target_vocab import build_vocab, vocab_from_bytes

EXTRA = 'pip install "spacy-rnn[seq2seq]"'
SEQ2SEQ_MODULES = ("tokenizers", "rouge_score", "rouge_score.rouge_scorer", "sacrebleu")


@pytest.fixture
def without_extra(monkeypatch):
    """The packages of the seq2seq extra cannot be imported (None in sys.modules)."""
    for name in SEQ2SEQ_MODULES:
        monkeypatch.setitem(sys.modules, name, None)


def test_scores_without_the_extra_name_it(without_extra):
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_seq2seq")  # sets the doc._.generated extension
    predicted = nlp.make_doc("a lovely dress")
    predicted._.generated = "lovely dress"
    example = Example(predicted, set_target(nlp.make_doc("a lovely dress"), "lovely dress"))
    with pytest.raises(ImportError) as err:
        seq2seq_score([example])
    assert "'rouge_score' package" in str(err.value) and EXTRA in str(err.value)


def test_bpe_vocabulary_without_the_extra_names_it():
    saved = build_vocab("bpe", ["runs small", "love it"], min_freq=1, max_size=200, lowercase=True).to_bytes()
    with pytest.MonkeyPatch.context() as patch:
        for name in SEQ2SEQ_MODULES:
            patch.setitem(sys.modules, name, None)
        for attempt in (lambda: build_vocab("bpe", ["runs small"], 1, 200, True), lambda: vocab_from_bytes(saved)):
            with pytest.raises(ImportError) as err:
                attempt()
            assert "'tokenizers' package" in str(err.value) and EXTRA in str(err.value)
        assert len(build_vocab("word", ["runs small"], 1, 200, True)) == 6  # the word vocabulary needs nothing


def test_text_classification_needs_no_extra():
    """In a fresh process where the extra's packages cannot be imported."""
    code = f"""
import sys
sys.modules.update(dict.fromkeys({SEQ2SEQ_MODULES!r}))
import spacy
from spacy.training import Example
nlp = spacy.blank("en")
tok2vec = {{"@architectures": "spacy_rnn.HashEmbed.v1", "width": 8, "attrs": ["NORM"], "rows": [100]}}
nlp.add_pipe("textcat", config={{"model": {{"@architectures": "spacy_rnn.TextCatRNN.v1", "exclusive_classes": True,
                                          "width": 8, "tok2vec": tok2vec}}}})
examples = [Example.from_dict(nlp.make_doc(text), {{"cats": {{"POS": pos, "NEG": 1 - pos}}}})
            for text, pos in (("great", 1.0), ("awful", 0.0))]
nlp.initialize(lambda: examples)
spacy.blank("en").add_pipe("rnn_seq2seq")
print(sorted(nlp("great").cats))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "['NEG', 'POS']"
