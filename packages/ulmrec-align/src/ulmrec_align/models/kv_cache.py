"""The key/value cache under the name this transformers uses: ``cache`` (5.2x and later: ``past_key_values``
is deprecated, to be removed in 5.40) or ``past_key_values`` (earlier versions)."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def cache_name() -> str:
    """``"cache"`` or ``"past_key_values"``: the field of a causal LM's output and its forward argument."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def output_cache(outputs: Any) -> Any:
    """The cache a forward pass returned (None when the model kept none)."""
    return getattr(outputs, cache_name(), None)


def with_cache(cache_value: Any) -> dict[str, Any]:
    """The keyword argument that passes ``cache_value`` to a forward pass."""
    return {cache_name(): cache_value}
