"""tf_cyclegan: CycleGAN (Zhu et al., ICCV 2017) for TensorFlow 2 / Keras 3."""

from tf_cyclegan.model import CycleGAN
from tf_cyclegan.networks import build_discriminator, build_generator

__version__ = "0.1.0"
__all__ = ["CycleGAN", "build_generator", "build_discriminator", "__version__"]
