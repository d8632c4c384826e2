"""ulmrec-index: semantic user indices (text encoders, ID fusion, pluggable quantizers, distinct codes)."""

__version__ = "0.1.0"
