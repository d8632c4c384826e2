"""Helpers every test folder shares (``tests/`` is on ``sys.path`` through the root ``conftest.py``)."""
