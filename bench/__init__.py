"""Benchmarks: figures and ratios to naive and raw references, never timed tests.

Tools, not product: they live beside the ``tally`` package and import it (the gateway's
entrypoint included); ``tally`` never imports them. Run ``python -m bench`` from the
repository's root (``make bench``).
"""
