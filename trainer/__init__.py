"""PRP-NAS trainer: search spaces, supernet, cost models, Pareto math and training."""

__all__ = ["__version__"]
__version__ = "0.1.0"
