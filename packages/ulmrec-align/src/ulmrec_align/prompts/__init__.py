"""Prompts: the ONE place that turns candidates into letters, user codes into tokens and samples into ids.

Training targets (:func:`encoding.encode_sample`) and the ranker's letter token ids
(:func:`encoding.letter_token_ids`) come from the same functions, so the ranker reads exactly the token the
model was trained to emit after the response prefix.
"""
