"""The ground floor every ULMRec package stands on (numpy-free, torch-free):

* :mod:`~ulmrec_eval.runtime.errors` — one-line user errors (``file:line: …``);
* :mod:`~ulmrec_eval.runtime.io` — atomic writes, JSON-lines readers that name the bad line;
* :mod:`~ulmrec_eval.runtime.artifacts` — whole-or-nothing folders, locks, content hashes;
* :mod:`~ulmrec_eval.runtime.events` — progress events for the pipeline and the TUI (``$ULMREC_EVENTS``);
* :mod:`~ulmrec_eval.runtime.cli` — runs a Typer app: one-line errors, Ctrl-C, quiet third-party logs;
* :mod:`~ulmrec_eval.runtime.environment` — installed versions and the host name, for provenance;
* :mod:`~ulmrec_eval.runtime.provenance` — whether a file of a pipeline run is still what its run was made
  from (its stage records' hashes).
"""
