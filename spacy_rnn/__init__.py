"""spacy-rnn: Elman RNN, LSTM, GRU and RNN encoder-decoder models for spaCy v3."""
from . import architectures  # noqa: F401 - registers the architectures
from .about import __version__  # noqa: F401
from . import pipeline  # noqa: F401 - registers the rnn_seq2seq factory, Seq2Seq.v1 and v2 and the seq2seq scorers
from . import corpus  # noqa: F401 - registers the Seq2SeqJSONL reader
from . import training  # noqa: F401 - registers the pretrained-encoder schedule callback
