"""Sample grids: fixed test images as real | translated | reconstructed, to PNG and TensorBoard."""

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_cyclegan import fs
from tf_cyclegan.data.images import to_unit_range


def sample_grid(real, fake, cycled):
    """Rows of real | translated | reconstructed as one uint8 image."""
    rows = [np.concatenate([r, f, c], axis=1) for r, f, c in zip(real, fake, cycled)]
    grid = np.concatenate(rows, axis=0)
    grid = np.round(to_unit_range(tf.constant(grid)).numpy() * 255).astype(np.uint8)
    return np.repeat(grid, 3, axis=-1) if grid.shape[-1] == 1 else grid[..., :3]


def translation_grids(model, real_a, real_b):
    """{'a2b': grid, 'b2a': grid} of a CycleGAN on fixed images of each domain."""
    generator_ab, generator_ba = model.translator_ab, model.translator_ba  # the averaged ones under EMA
    fake_b = generator_ab(real_a, training=False)
    cycled_a = generator_ba(fake_b, training=False)
    fake_a = generator_ba(real_b, training=False)
    cycled_b = generator_ab(fake_a, training=False)
    return {
        "a2b": sample_grid(real_a.numpy(), fake_b.numpy(), cycled_a.numpy()),
        "b2a": sample_grid(real_b.numpy(), fake_a.numpy(), cycled_b.numpy()),
    }


def write_grids(grids, step, folder, writer):
    """Saves ``step_<step>_<direction>.png`` files and the same grids as TensorBoard images."""
    folder = fs.path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for direction, grid in grids.items():
        encoded = io.BytesIO()
        Image.fromarray(grid).save(encoded, "PNG")
        fs.write_atomic(folder / f"step_{step:07d}_{direction}.png", encoded.getvalue())
    with writer.as_default(step=step):
        tf.summary.image("samples/real_a|fake_b|cycled_a", grids["a2b"][None], max_outputs=1)
        tf.summary.image("samples/real_b|fake_a|cycled_b", grids["b2a"][None], max_outputs=1)
