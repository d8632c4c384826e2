"""Candidate retrieval: LRURec (and SASRec) trained on the train split, top-N candidates per user."""
