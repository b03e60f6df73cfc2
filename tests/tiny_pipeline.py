"""A tiny trained pipeline (textcat with TextCatRNN, and rnn_seq2seq) and the
texts it is run on, shared by the annotate and GPU tests."""
import spacy
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

from spacy_rnn import set_target

WORDS = "good bad film plot actor dull great story long short fun awful".split()
TEXTS = [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(2 + i % 9)) for i in range(120)]
TEXTS[5] = ""  # an empty Doc is annotated like any other


def make_pipeline():
    """textcat (TextCatRNN) and rnn_seq2seq, tiny, a few updates so that
    predictions differ from Doc to Doc."""
    nlp = spacy.blank("en")
    embed = {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 8, "attrs": ["NORM"], "rows": [200]}
    nlp.add_pipe("textcat", config={"model": {
        "@architectures": "spacy_rnn.TextCatRNN.v1", "exclusive_classes": True, "width": 8, "tok2vec": embed,
    }})
    nlp.add_pipe("rnn_seq2seq", config={
        "min_freq": 1, "beam_size": 1, "max_length": 4, "model": {"width": 8, "target_width": 8, "tok2vec": embed},
    })
    examples = []
    for i, text in enumerate(TEXTS[:12]):
        reference = nlp.make_doc(text)
        reference.cats = {"POS": float(i % 2), "NEG": float(1 - i % 2)}
        examples.append(Example(nlp.make_doc(text), set_target(reference, " ".join(text.split()[:2]) or "empty")))
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.01))
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    return nlp
