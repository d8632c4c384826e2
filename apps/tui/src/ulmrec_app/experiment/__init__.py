"""Experiments on the pipeline: ablations that share every unchanged stage (:mod:`.ablate`) and a report with
paired comparisons and plots (:mod:`.report`)."""
