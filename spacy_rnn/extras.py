"""Optional dependencies: the packages of spacy-rnn's `seq2seq` extra."""
import importlib
from types import ModuleType

SEQ2SEQ_EXTRA = 'pip install "spacy-rnn[seq2seq]"'


def import_seq2seq_extra(module: str, needed_by: str) -> ModuleType:
    """Import a package of the `seq2seq` extra (tokenizers, rouge_score,
    sacrebleu); without it, an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{needed_by} needs the '{module.split('.')[0]}' package, which comes with spacy-rnn's seq2seq extra: "
            f"{SEQ2SEQ_EXTRA}"
        ) from err
