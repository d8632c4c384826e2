"""Pluggable quantizers: the protocol, the registry and the built-ins (``rqvae``, ``rqkmeans``, ``faiss``)."""

from ulmrec_index.quantizers.base import (
    FitReport,
    Quantizer,
    QuantizerConfig,
    QuantizerOutput,
    TrainableQuantizer,
)
from ulmrec_index.quantizers.errors import NotFittedError, QuantizerError
from ulmrec_index.quantizers.registry import (
    DEFAULT_KIND,
    ENTRY_POINT_GROUP,
    QuantizerSpec,
    available_quantizers,
    create_quantizer,
    get_quantizer_config_class,
    get_quantizer_spec,
    parse_quantizer_config,
    register_quantizer,
    unregister_quantizer,
)

__all__ = [
    "DEFAULT_KIND",
    "ENTRY_POINT_GROUP",
    "FitReport",
    "NotFittedError",
    "Quantizer",
    "QuantizerConfig",
    "QuantizerError",
    "QuantizerOutput",
    "QuantizerSpec",
    "TrainableQuantizer",
    "available_quantizers",
    "create_quantizer",
    "get_quantizer_config_class",
    "get_quantizer_spec",
    "parse_quantizer_config",
    "register_quantizer",
    "unregister_quantizer",
]
