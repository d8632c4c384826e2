"""The answer kinds of ``next_item`` (``PromptConfig.answer``, ``align build --answer``): one module per kind,
each declaring an :class:`~ulmrec_align.prompts.answers.base.Answer`, listed in
:mod:`ulmrec_align.prompts.answers.registry`."""
