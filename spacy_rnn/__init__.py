"""spacy-rnn: Elman RNN, LSTM, GRU and RNN encoder-decoder models for spaCy v3."""
from . import architectures  # noqa: F401 - registers the architectures
from . import corpus  # noqa: F401 - registers the Seq2SeqJSONL reader
from . import optimizers  # noqa: F401 - registers spacy_rnn.LazyAdam.v1
from . import pipeline  # noqa: F401 - registers the rnn_seq2seq factory
from . import scoring  # noqa: F401 - registers the seq2seq scorers
from . import training  # noqa: F401 - registers the pretrained-encoder schedule and cpu_bf16 callbacks
from .about import __version__  # noqa: F401
from .precision import bf16_support, set_cpu_bf16  # noqa: F401 - bf16 mixed precision on the CPU (off by default)
from .targets import get_target, set_target  # noqa: F401 - the seq2seq training target of a reference Doc
