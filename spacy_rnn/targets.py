"""The training target of a sequence to sequence example, carried by its
reference Doc as the extension `doc._.seq2seq_target` (kept in
`doc.user_data`, so a `DocBin(store_user_data=True)` saves it). Public as
`spacy_rnn.set_target` and `spacy_rnn.get_target`."""
from typing import Optional

from spacy.tokens import Doc

TARGET_ATTR = "seq2seq_target"

if not Doc.has_extension(TARGET_ATTR):
    Doc.set_extension(TARGET_ATTR, default=None)


def set_target(doc: Doc, text: str) -> Doc:
    """Attach the target text to a reference Doc; returns the Doc. Save the Docs
    with `DocBin(store_user_data=True)` to keep it."""
    if not isinstance(text, str):
        raise TypeError(f"A seq2seq target must be a string, got {type(text).__name__}: {text!r}.")
    doc._.set(TARGET_ATTR, text)
    return doc


def get_target(doc: Doc) -> Optional[str]:
    """The target text attached by `set_target`, or None."""
    return doc._.get(TARGET_ATTR)
