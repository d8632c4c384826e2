"""Alignment tasks: one registered builder per task (entry-point group ``ulmrec.tasks``), each with
paraphrased templates, an on/off switch and a weight; see :mod:`.registry` and :mod:`.builders`."""
