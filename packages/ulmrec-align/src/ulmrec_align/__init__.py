"""ulmrec-align: data pipeline, retriever, alignment tasks, tuning and LLM ranking."""

__version__ = "0.1.0"
