"""Training health: early signs that a run has gone wrong, read off fixed test images at the sample interval.

Per direction (a2b: real_a → fake_b → cycled_a, judged by discriminator_b against real_b), every check computes:

- ``away``: colour-histogram distance of the translations to the real target images, divided by the same
  distance for the untranslated inputs ("doing nothing" is 1.0). Above 1: the translations moved away from the
  target domain (an inverted or hue-rotated image is as easy to cycle back as the right one).
- ``diversity``: mean pairwise distance between translations of different inputs over that between the inputs
  (a collapse to one output for every input goes to 0).
- ``discriminator``: its accuracy on real target images against the translations (1: it has won).
- ``saturation``: the share of translated pixels at ±1 beyond the real target images' own share.
- ``cycle``: cycle L1 over the L1 between unrelated inputs (a closed cycle is near 0).

A signal past its threshold for ``patience`` checks in a row (after ``warmup`` steps) opens an episode: one
warning line, until the signal is back. Values go to TensorBoard (``health/*``) and ``health.json``.
"""

import dataclasses
import json

import numpy as np
import tensorflow as tf

from tf_cyclegan import run

DIRECTIONS = ("a2b", "b2a")


@dataclasses.dataclass(frozen=True)
class Rule:
    signal: str
    above: bool  # unhealthy when the value is above (or below) the threshold
    threshold: float
    patience: int  # consecutive checks past the threshold before it is a warning
    message: str

    def crossed(self, value):
        return value > self.threshold if self.above else value < self.threshold


RULES = (
    Rule(
        "away",
        True,
        1.25,
        2,
        "translations are farther from the target domain's colours than the inputs "
        "(an inverted or hue-rotated shortcut?)",
    ),
    Rule("diversity", False, 0.5, 2, "translations of different inputs look alike (mode collapse)"),
    Rule("discriminator", True, 0.97, 4, "the discriminator tells every translation from real images (it has won)"),
    Rule("saturation", True, 0.20, 2, "translations are stuck at black/white (outputs saturated at ±1)"),
    Rule("cycle", True, 0.50, 2, "the cycle does not close (reconstructions no closer than an unrelated image)"),
)


def default_warmup(total_steps):
    """Steps before checks count: a fifth of the run, at most 2000 (early translations are still blurry)."""
    return min(int(total_steps) // 5, 2000)


def colour_histogram(images, bins=8):
    """Normalised joint histogram of the pixels of NHWC images in [-1, 1] (``bins`` per channel)."""
    levels = np.clip(((images + 1) / 2 * bins).astype(int), 0, bins - 1).reshape(-1, images.shape[-1])
    index = np.ravel_multi_index(levels.T, (bins,) * images.shape[-1])
    counts = np.bincount(index, minlength=bins ** images.shape[-1]).astype(np.float64)
    return counts / counts.sum()


def total_variation(p, q):
    return 0.5 * float(np.abs(p - q).sum())


def mean_pairwise_l1(images, size=16):
    """Mean L1 between every pair of images, each first averaged down to about ``size`` px."""
    n, height, width, channels = images.shape
    step = max(1, min(height, width) // size)
    small = images[:, : height // step * step, : width // step * step]
    small = small.reshape(n, height // step, step, width // step, step, channels).mean(axis=(2, 4)).reshape(n, -1)
    distances = np.abs(small[:, None] - small[None]).mean(axis=2)
    return float(distances.sum() / max(n * (n - 1), 1))


def decision_threshold(gan_loss):
    """The discriminator output that separates 'real' from 'fake' for a GAN loss (LSGAN targets 1 and 0)."""
    return 0.5 if gan_loss == "lsgan" else 0.0


def direction_signals(real, fake, cycled, target, real_logits, fake_logits, gan_loss):
    """The health values of one direction from numpy arrays (images NHWC in [-1, 1], discriminator outputs)."""
    target_histogram = colour_histogram(target)
    doing_nothing = max(total_variation(colour_histogram(real), target_histogram), 1e-6)
    cut = decision_threshold(gan_loss)
    return {
        "away": total_variation(colour_histogram(fake), target_histogram) / doing_nothing,
        "diversity": mean_pairwise_l1(fake) / max(mean_pairwise_l1(real), 1e-6),
        "discriminator": 0.5 * (float((real_logits > cut).mean()) + float((fake_logits < cut).mean())),
        "saturation": float((np.abs(fake) > 0.98).mean()) - float((np.abs(target) > 0.98).mean()),
        "cycle": float(np.abs(cycled - real).mean()) / max(mean_pairwise_l1(real, size=10**6), 1e-6),
    }


class Probe:
    """Measures a CycleGAN's health values on fixed test images of both domains (tensors in [-1, 1])."""

    def __init__(self, model, images_a, images_b, batch=16):

        self.model, self.images, self.batch = model, {"a": images_a, "b": images_b}, batch
        networks = {  # the generators that translate: the averaged ones under EMA
            "generator_ab": model.translator_ab,
            "generator_ba": model.translator_ba,
            "discriminator_a": model.discriminator_a,
            "discriminator_b": model.discriminator_b,
        }
        self._calls = {
            # The default argument binds each network now, not the loop's last name.
            name: tf.function(lambda x, network=network: network(x, training=False), reduce_retracing=True)
            for name, network in networks.items()
        }

    def _run(self, name, images):
        return np.concatenate(
            [self._calls[name](images[i : i + self.batch]).numpy() for i in range(0, len(images), self.batch)]
        )

    def __call__(self):
        """{'a2b/away': ..., 'b2a/cycle': ...}."""
        values = {}
        for direction, (source, target) in {"a2b": ("a", "b"), "b2a": ("b", "a")}.items():
            forward, backward = f"generator_{source}{target}", f"generator_{target}{source}"
            real, goal = np.asarray(self.images[source]), np.asarray(self.images[target])
            fake = self._run(forward, real)
            judge = f"discriminator_{target}"
            signals = direction_signals(
                real,
                fake,
                self._run(backward, fake),
                goal,
                self._run(judge, goal),
                self._run(judge, fake),
                self.model.gan_loss,
            )
            values.update({f"{direction}/{name}": value for name, value in signals.items()})
        return values


class HealthMonitor:
    """Keeps the history of checks, opens and closes episodes, and says so once per episode."""

    def __init__(self, warmup=0, rules=RULES):
        self.warmup, self.rules = int(warmup), rules
        self.history = []  # [{"step": s, "values": {...}, "warnings": [...]}]
        self.streak = {}  # (direction, signal) -> consecutive checks past the threshold
        self.open = set()  # (direction, signal) of episodes not yet over

    def check(self, step, values):
        """Records one check; returns the warning lines of episodes that open now."""
        warnings = []
        for rule in self.rules:
            for direction in DIRECTIONS:
                key = (direction, rule.signal)
                value = values.get(f"{direction}/{rule.signal}")
                past = value is not None and step > self.warmup and rule.crossed(value)
                self.streak[key] = self.streak.get(key, 0) + 1 if past else 0
                if not past:
                    self.open.discard(key)
                elif self.streak[key] >= rule.patience and key not in self.open:
                    self.open.add(key)
                    sign = ">" if rule.above else "<"
                    warnings.append(
                        f"health warning at step {step}: {direction} {rule.signal} {value:.3f} {sign} "
                        f"{rule.threshold} for {rule.patience} checks: {rule.message}"
                    )
        self.history.append({"step": int(step), "values": values, "warnings": warnings})
        return warnings

    def restore(self, summary, up_to):
        """Continues from a resumed run's health.json (checks up to step ``up_to``): they count, their warnings
        are not repeated."""
        for check in summary.get("history", []):
            if check["step"] > up_to:
                break
            self.check(check["step"], check["values"])
            self.history[-1]["warnings"] = check.get("warnings", [])

    def summary(self):
        """The latest values, the episodes still open and every warning given (what health.json holds)."""
        latest = self.history[-1] if self.history else {"step": 0, "values": {}}
        return {
            "step": latest["step"],
            "values": latest["values"],
            "warmup": self.warmup,
            "unhealthy": sorted(f"{d}/{s}" for d, s in self.open),
            "warnings": [w for check in self.history for w in check["warnings"]],
            "thresholds": {
                rule.signal: {"above" if rule.above else "below": rule.threshold, "patience": rule.patience}
                for rule in self.rules
            },
            "history": self.history,
        }


def summary_lines(summary):
    """A health.json summary as a few lines for the terminal (what ``evaluate`` prints)."""
    values = summary.get("values", {})
    lines = [f"health at step {summary.get('step', 0)} (training's last check; health.json):"]
    for direction in DIRECTIONS:
        shown = ", ".join(
            f"{rule.signal} {values[f'{direction}/{rule.signal}']:.3f}"
            for rule in RULES
            if f"{direction}/{rule.signal}" in values
        )
        lines.append(f"  {direction}: {shown}")
    unhealthy = summary.get("unhealthy", [])
    lines.append(
        f"  unhealthy now: {', '.join(unhealthy) if unhealthy else 'none'}; "
        f"{len(summary.get('warnings', []))} warning(s) during training"
    )
    return lines


class TrainingHealth:
    """The trainer's side of the checks: probe, monitor, TensorBoard, health.json, warnings, the stop decision."""

    def __init__(self, model, pipeline, config, path, start_step, total_steps, log=print):

        count = config.train.health_images
        self.probe = Probe(model, pipeline.test_images("A", count)[0], pipeline.test_images("B", count)[0])
        self.monitor = HealthMonitor(warmup=default_warmup(total_steps))
        self.path, self.log = path, log
        self.stop_when_unhealthy = config.train.on_unhealthy == "stop"
        self.reason = None  # the warning that asks the run to stop (with --on_unhealthy=stop)
        if start_step and path.is_file():
            try:
                self.monitor.restore(json.loads(path.read_text()), start_step)
            except (ValueError, KeyError, TypeError):
                log(f"note: {path} is unreadable; health checks start again")

    def __call__(self, step, writer):

        values = self.probe()
        warnings = self.monitor.check(step, values)
        with writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(f"health/{name}", value)
        run.write_json(self.path, self.monitor.summary())
        for warning in warnings:
            self.log(f"warning: {warning}")
        if warnings and self.stop_when_unhealthy and self.reason is None:
            self.reason = warnings[0]
