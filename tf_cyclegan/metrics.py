"""Image-quality metrics: paired (L1, PSNR, SSIM) and distribution (FID, KID).

Images are float arrays in [0, 1], NHWC. FID/KID take feature matrices (one row per
image), so the feature network is a separate choice (see ``tf_cyclegan.evaluate``).
"""

import numpy as np
import tensorflow as tf


def psnr_from_mse(mse):
    """PSNR in dB for data range 1; an MSE below 1e-10 counts as 1e-10 (100 dB)."""
    return 10.0 * np.log10(1.0 / np.maximum(mse, 1e-10))


def psnr(translated, target):
    """PSNR (dB, data range 1) of two arrays in [0, 1], over all their values."""
    difference = np.asarray(translated, np.float64) - np.asarray(target, np.float64)
    return float(psnr_from_mse(np.mean(difference**2)))


def paired(translated, target):
    """Mean L1, PSNR (dB, data range 1) and SSIM of image pairs, each averaged over images."""

    x = tf.convert_to_tensor(translated, tf.float32)
    y = tf.convert_to_tensor(target, tf.float32)
    l1 = tf.reduce_mean(tf.abs(x - y), axis=[1, 2, 3])
    mse = tf.reduce_mean(tf.square(x - y), axis=[1, 2, 3]).numpy().astype(np.float64)
    ssim = tf.image.ssim(x, y, max_val=1.0)
    return {
        "l1": float(tf.reduce_mean(l1)),
        "psnr": float(np.mean(psnr_from_mse(mse))),
        "ssim": float(tf.reduce_mean(ssim)),
    }


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """‖μ1−μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½), with the trace of the root from a symmetric eigenproblem."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    values, vectors = np.linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root1 @ sigma2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root)


def fid(features_x, features_y):
    """Fréchet distance between Gaussians fitted to two feature sets."""
    fx, fy = np.asarray(features_x, np.float64), np.asarray(features_y, np.float64)
    return frechet_distance(fx.mean(0), np.cov(fx, rowvar=False), fy.mean(0), np.cov(fy, rowvar=False))


def _polynomial_kernel(a, b):
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(features_x, features_y):
    """Unbiased MMD² with the cubic polynomial kernel (the KID estimator of Bińkowski et al. 2018)."""
    x, y = np.asarray(features_x, np.float64), np.asarray(features_y, np.float64)
    m, n = len(x), len(y)
    kxx, kyy, kxy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * kxy.mean())


def kid(features_x, features_y, subsets=10, subset_size=1000, seed=0):
    """KID: mean (and std) of unbiased MMD² over random subsets; all samples when sets are small."""
    x, y = np.asarray(features_x), np.asarray(features_y)
    size = min(subset_size, len(x), len(y))
    if size == len(x) == len(y):
        return {"kid": mmd2_unbiased(x, y), "kid_std": 0.0}
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
        for _ in range(subsets)
    ]
    return {"kid": float(np.mean(values)), "kid_std": float(np.std(values))}
