"""LoRA/QLoRA tuning of a causal LM on alignment samples (``ulmrec align train``), behind the ``[train]``
extra.

Heavy modules (transformers' ``Trainer``, peft, accelerate) are imported by the functions that need them;
importing this package is cheap.
"""

from ulmrec_align.tuning.config import LoraSettings, TrainManifest, TrainSettings, read_train_manifest

__all__ = ["LoraSettings", "TrainManifest", "TrainSettings", "read_train_manifest"]
