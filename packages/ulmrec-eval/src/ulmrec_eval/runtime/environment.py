"""Provenance: the installed versions of the packages that shape a result, and the host name."""

from __future__ import annotations

import platform
import socket
from importlib import metadata

#: Distributions whose versions provenance records carry.
TRACKED_PACKAGES = ("ulmrec", "ulmrec-eval", "ulmrec-index", "ulmrec-align", "torch", "transformers", "peft",
                    "sentence-transformers", "numpy", "pydantic")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (those not installed are left out)."""
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def host_name() -> str:
    """This machine's host name."""
    return socket.gethostname() or platform.node()
