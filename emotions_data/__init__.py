"""emotions: build, annotate, split, document and validate short-video emotion datasets."""

__version__ = "0.1.0"
