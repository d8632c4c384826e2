"""ULMRec: the ``ulmrec`` command, which gathers every package's sub-commands, and the pipeline runner."""

__version__ = "0.1.0"
