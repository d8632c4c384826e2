"""Screens of ``ulmrec tui``, one module each."""
