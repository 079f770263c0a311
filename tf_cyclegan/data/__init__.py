"""Unpaired input pipelines: sources (bundled sample, folders, TFDS), checks, tf.data.

The public names load lazily, so ``python -m tf_cyclegan.data`` can parse its flags (and
quiet TensorFlow) before TensorFlow is imported.
"""

import importlib

_PUBLIC = {
    "DomainReport": "preflight",
    "check": "preflight",
    "UnpairedPipeline": "pipeline",
    "steps_per_epoch": "pipeline",
    "DataError": "sources",
    "Domain": "sources",
    "Domains": "sources",
    "list_folder": "sources",
    "resolve": "sources",
    "prepare": "assemble",
}
__all__ = list(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"tf_cyclegan.data.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'tf_cyclegan.data' has no attribute {name!r}")
