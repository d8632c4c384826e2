"""``ulmrec tui``: a Textual app over a runs folder (runs, stages, logs, results, the user index, the system).

Everything it shows is read from the files the pipeline writes (manifests, logs, events, eval results), so
closing it never affects a run, and reopening it re-attaches to stages that are still running.
"""
