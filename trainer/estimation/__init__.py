"""Estimation: what a path's accuracy is taken to be before it is trained on its own.

Modules: `shared_weights` (top-1 % of a path with the supernet's shared weights, BatchNorm
recalibrated per path, sharded across processes), `proxies` (zero-cost proxies on freshly
initialised weights, and the per-run cache of them) and `estimators` (the registry of
estimators a run ranks by, and the rank aggregation that combines the two).

Nothing is imported here: `config` reads the estimator registry without loading torch.
"""
