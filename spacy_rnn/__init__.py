"""spacy-rnn: Elman RNN, LSTM, GRU and RNN encoder-decoder models for spaCy v3."""
from . import architectures  # noqa: F401 - registers the architectures
from .about import __version__  # noqa: F401
