"""The rnn_seq2seq component."""
from .seq2seq import RNNSeq2Seq, make_rnn_seq2seq  # noqa: F401
