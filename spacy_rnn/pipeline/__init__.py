"""The rnn_seq2seq component (`rnn_seq2seq`) and its checks (`rnn_seq2seq_checks`)."""
from . import rnn_seq2seq  # noqa: F401 - registers the rnn_seq2seq factory
