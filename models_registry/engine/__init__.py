"""Continuous-batching inference engine over transformers' model classes (torch + transformers only).

Import from the submodules (`engine.engine`, `engine.params`, ...): this package's own import stays free
of torch, so the API layer can validate sampling parameters without loading it.
"""
