"""tf_cyclegan: CycleGAN (Zhu et al., ICCV 2017) for TensorFlow 2 / Keras 3.

The public names are imported lazily, so command-line tools can parse flags and
report mistakes without paying for a TensorFlow import first.
"""

import importlib

__version__ = "0.1.0"
_PUBLIC = {
    "CycleGAN": "tf_cyclegan.model",
    "build_generator": "tf_cyclegan.networks",
    "build_discriminator": "tf_cyclegan.networks",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tf_cyclegan' has no attribute {name!r}")
