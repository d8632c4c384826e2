"""The training losses of ``ulmrec align train --loss``: one module per loss, each declaring a
:class:`~ulmrec_align.losses.base.Loss`, listed in :mod:`ulmrec_align.losses.registry` (docs/tuning.md,
"Adding a loss")."""
