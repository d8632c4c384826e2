"""Data pipeline: raw Amazon 2014 and RecBole readers, k-core filtering, dense ids, leave-one-out split."""
