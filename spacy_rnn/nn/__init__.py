"""Plain torch modules: no spaCy or thinc imports below this package."""
