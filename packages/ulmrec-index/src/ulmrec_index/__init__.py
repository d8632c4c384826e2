"""ulmrec-index: semantic user indices (text encoders, ID fusion, pluggable quantizers, distinct codes).

Quick start::

    from ulmrec_index import UserIndexer, IndexerConfig, UserText
    users = [UserText(user_id="u1", texts=["Loves matte lipstick"]), ...]
    indexer = UserIndexer(IndexerConfig(quantizer={"kind": "rqvae", "levels": 4, "codebook_size": 256}))
    indexer.fit(users).save("my-index")
    print(indexer.token("u1"))          # '<a_71><b_254><c_87><d_24>'

Heavy modules (torch, sentence-transformers) load on first use of the names below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "UserText": "ulmrec_index.users",
    "read_user_texts": "ulmrec_index.users",
    "format_code": "ulmrec_index.codes",
    "parse_code": "ulmrec_index.codes",
    "default_token_format": "ulmrec_index.codes",
    "IndexArtifact": "ulmrec_index.artifact",
    "load_index": "ulmrec_index.artifact",
    "IndexReport": "ulmrec_index.report",
    "UserIndexer": "ulmrec_index.indexer",
    "IndexerConfig": "ulmrec_index.indexer",
    "IndexerError": "ulmrec_index.indexer",
    "TextEncoder": "ulmrec_index.encoders",
    "EmbeddingCache": "ulmrec_index.cache",
    "UserFusion": "ulmrec_index.fusion",
}

__all__ = [
    "EmbeddingCache",
    "IndexArtifact",
    "IndexReport",
    "IndexerConfig",
    "IndexerError",
    "TextEncoder",
    "UserFusion",
    "UserIndexer",
    "UserText",
    "__version__",
    "default_token_format",
    "format_code",
    "load_index",
    "parse_code",
    "read_user_texts",
]

if TYPE_CHECKING:
    from ulmrec_index.artifact import IndexArtifact, load_index
    from ulmrec_index.cache import EmbeddingCache
    from ulmrec_index.codes import default_token_format, format_code, parse_code
    from ulmrec_index.encoders import TextEncoder
    from ulmrec_index.fusion import UserFusion
    from ulmrec_index.indexer import IndexerConfig, IndexerError, UserIndexer
    from ulmrec_index.report import IndexReport
    from ulmrec_index.users import UserText, read_user_texts


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ulmrec_index' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
