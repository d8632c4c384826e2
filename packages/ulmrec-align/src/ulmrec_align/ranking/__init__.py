"""Ranking with a tuned LLM: one forward pass per prompt (letter logits), a generative baseline, and the
:class:`~ulmrec_align.ranking.recommender.Recommender` API."""
