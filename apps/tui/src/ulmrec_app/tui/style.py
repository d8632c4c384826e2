"""Colours the screens share (Rich markup styles)."""

from __future__ import annotations

#: Rich style of each stage/run status.
STATUS_STYLE = {"done": "green", "running": "bold yellow", "failed": "bold red", "stopped": "magenta",
                "pending": "cyan", "new": "dim"}
