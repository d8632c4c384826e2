"""ulmrec-eval: ranking metrics for sequential recommendation (numpy + pydantic only; never imports torch)."""

__version__ = "0.1.0"
