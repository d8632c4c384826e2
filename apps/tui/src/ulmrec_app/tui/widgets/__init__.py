"""Widgets of ``ulmrec tui``."""
