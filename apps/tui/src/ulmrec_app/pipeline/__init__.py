"""The pipeline runner behind ``ulmrec run`` and ``ulmrec demo``: configs, the stage graph, cached and
resumable stages that run as detached processes (see docs/pipeline.md)."""
