"""Thinc layers over the torch modules of `spacy_rnn.nn`: spaCy and thinc, no registered names."""
