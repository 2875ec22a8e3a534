"""Microbenchmarks: ``python -m nnc.bench``. ``suite`` is the op registry the
tests use too; ``harness`` validates and times one case."""
