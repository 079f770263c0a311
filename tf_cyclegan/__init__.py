"""tf_cyclegan: CycleGAN (Zhu et al., ICCV 2017) for TensorFlow 2 / Keras 3."""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, CPU features) is not for users; set before TF loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_cyclegan.model import CycleGAN  # noqa: E402
from tf_cyclegan.networks import build_discriminator, build_generator  # noqa: E402

__version__ = "0.1.0"
__all__ = ["CycleGAN", "build_generator", "build_discriminator", "__version__"]
