"""The unpaired ``tf.data`` pipelines for training and testing.

Training draws example ``g`` of the run as ``(A[perm_e(g)], B[perm'_e(g)])``: A and B
are shuffled independently with permutations that change every epoch, an epoch is
``max(|A|, |B|)`` examples with the smaller domain cycled, and crops/flips are seeded
by ``g``. The stream is therefore a pure function of (seed, position): resuming at
step ``s`` replays exactly what an uninterrupted run would have seen.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tf_cyclegan.data import images

_EPOCH_STRIDE = 1_000_003


def steps_per_epoch(size_a, size_b, global_batch):
    """Full global batches per epoch (an epoch covers the larger domain once)."""
    return max(1, max(size_a, size_b) // global_batch)


class _DomainReader:
    """Loads item ``i`` of a domain: read (or take bytes), decode, deterministic resize."""

    def __init__(self, domain, channels, data, background):
        self.domain, self.channels, self.data, self.background = domain, channels, data, background
        self.table = domain.item_tensor()
        self.cached = None
        if data.cache and data.preprocess == "resize_and_crop":
            self.cached = tf.constant(self._decode_all())

    def _load_uncached(self, index):
        contents = self.table[index] if self.domain.in_memory else tf.io.read_file(self.table[index])
        image = images.decode(contents, self.channels, self.background, self.data.max_pixels)
        return images.resize_for(image, self.data.preprocess, self.data.load_size, self.data.image_size)

    def _decode_all(self):
        to_uint8 = lambda i: tf.cast(tf.round(self._load_uncached(i) * 255.0), tf.uint8)  # noqa: E731
        dataset = tf.data.Dataset.range(len(self.domain)).map(to_uint8, num_parallel_calls=tf.data.AUTOTUNE)
        return np.stack(list(dataset.as_numpy_iterator()))

    def __call__(self, index):
        if self.cached is not None:
            return tf.cast(tf.gather(self.cached, index), tf.float32) / 255.0
        return self._load_uncached(index)


class UnpairedPipeline:
    """Builds training and test datasets from checked :class:`Domains`."""

    def __init__(self, domains, data, global_batch, seed=0):
        self.domains, self.data = domains, data
        self.global_batch = int(global_batch)
        self.seed = int(seed)
        background = images.parse_background(data.background)
        self.reader_a = _DomainReader(domains.train_a, data.channels_a, data, background)
        self.reader_b = _DomainReader(domains.train_b, data.channels_b, data, background)
        self._background = background
        self.steps_per_epoch = steps_per_epoch(len(domains.train_a), len(domains.train_b), self.global_batch)
        self.examples_per_epoch = self.steps_per_epoch * self.global_batch

    def _index(self, g, size, domain_seed):
        epoch = g // self.examples_per_epoch
        position = g % self.examples_per_epoch
        cycle, offset = position // size, position % size
        seed = tf.stack([tf.constant(domain_seed, tf.int64), epoch * _EPOCH_STRIDE + cycle])
        return tf.random.experimental.index_shuffle(offset, seed, tf.constant(size - 1, tf.int64))

    def _example(self, g):
        data = self.data
        pair = []
        for domain_id, (reader, size) in enumerate(
            ((self.reader_a, len(self.domains.train_a)), (self.reader_b, len(self.domains.train_b)))
        ):
            index = self._index(g, size, self.seed * 4 + domain_id)
            image = reader(index)
            seed = tf.stack([tf.constant(self.seed * 4 + 2 + domain_id, tf.int64), g])
            image = images.augment(image, data.preprocess, data.image_size, data.flip, seed)
            pair.append(images.to_model_range(image))
        return tuple(pair)

    def train_dataset(self, start_step=0, end_step=None):
        """Batches of (real_a, real_b) from global step ``start_step`` on (to ``end_step``, or forever)."""
        end = (2**62) if end_step is None else int(end_step) * self.global_batch
        dataset = tf.data.Dataset.range(int(start_step) * self.global_batch, end)
        dataset = dataset.map(self._example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        dataset = dataset.batch(self.global_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.deterministic = True
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return dataset.with_options(options)

    def test_images(self, split, limit=None):
        """Deterministic test images of ``split`` ('A' or 'B') as one float tensor batch and their labels.

        ``limit`` images are taken evenly spaced through the split. Falls back to the
        training split when the dataset has no test split.
        """
        domain = (
            (self.domains.test_a or self.domains.train_a)
            if split == "A"
            else (self.domains.test_b or self.domains.train_b)
        )
        channels = self.data.channels_a if split == "A" else self.data.channels_b
        count = len(domain) if limit is None else min(limit, len(domain))
        # Evenly spread over the (sorted) split, so a few samples are not all keycaps or flags.
        subset = domain.subset(sorted({i * len(domain) // count for i in range(count)}))
        dataset = self.test_dataset(subset, channels)
        if self.data.preprocess in ("scale_width", "none"):  # varying sizes: square them to batch
            size = [self.data.image_size] * 2
            dataset = dataset.map(lambda image: tf.clip_by_value(tf.image.resize(image, size), -1.0, 1.0))
        dataset = dataset.batch(max(count, 1))
        return next(iter(dataset)), subset.labels

    def test_dataset(self, domain, channels):
        """Unbatched deterministic images of any domain (no crop jitter, no flip)."""
        reader = _DomainReader(domain, channels, dataclasses.replace(self.data, cache=False), self._background)
        data = self.data

        def load(index):
            image = images.finish_test(reader(index), data.preprocess, data.image_size)
            return images.to_model_range(image)

        return tf.data.Dataset.range(len(domain)).map(load, num_parallel_calls=tf.data.AUTOTUNE)
