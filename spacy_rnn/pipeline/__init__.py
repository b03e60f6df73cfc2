"""The rnn_seq2seq component."""
from .seq2seq import RNNSeq2Seq, build_seq2seq, make_rnn_seq2seq  # noqa: F401
from .targets import get_target, set_target  # noqa: F401
