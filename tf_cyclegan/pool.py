"""History of generated images (Shrivastava et al. 2017), kept in TF state.

The discriminator is updated with a 50/50 mix of the newest fakes and fakes
drawn from a buffer of earlier ones, which damps oscillation. The buffer, its
fill count and its random-draw counter are ``tf.Variable``s, so the whole
training step stays one graph function and all of it is checkpointed.

Under a distribution strategy every replica keeps its own pool: the variables
are replica-local (``ON_READ``), updated in place on the replica's own device,
with no traffic between devices during training. A checkpoint stores the
pools of all replicas stacked on a leading axis (gathered across workers at
save time), so a resume on the same replica count is exact. On a different
replica count, replica ``r`` resumes with saved pool ``r mod saved_count``:
extra replicas start from copies, surplus saved pools are dropped.
"""

import tensorflow as tf

STATE = ("images", "count", "draws")


class HistoryPool(tf.Module):
    """Returns, per image, either the image itself or a stored older image it replaces.

    Mirrors the reference ``ImagePool``, image by image in batch order: while not
    full, images are stored and returned; once full, each image has a 50% chance to
    be swapped with a random stored one (the stored one is returned). ``size=0``
    disables the pool.
    """

    def __init__(self, size, image_shape, seed=0, name=None):
        super().__init__(name=name)
        self.size = int(size)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.seed = int(seed)
        self._saved = {}
        if self.size <= 0:
            return
        local = dict(
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        self.images = tf.Variable(tf.zeros((self.size, *self.image_shape), tf.float32), name="images", **local)
        self.count = tf.Variable(0, dtype=tf.int32, name="count", **local)
        self.draws = tf.Variable(0, dtype=tf.int64, name="draws", **local)
        strategy = tf.distribute.get_strategy()
        self._saved = {name: ReplicaStack(getattr(self, name), strategy) for name in STATE}

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        # Checkpoints hold every replica's state (ReplicaStack), not the first replica's alone.
        return dict(self._saved)

    def __call__(self, images):
        """Queries the pool with a batch of fakes; returns a batch of the same shape."""
        if self.size <= 0:
            return images
        images = tf.cast(tf.stop_gradient(images), tf.float32)
        batch = tf.shape(images)[0]
        coins, slots = self._draw(batch)
        return self._query(images, coins, slots)

    def _query(self, images, coins, slots):
        """The reference's per-image loop, vectorised: ``coins`` decide swaps, ``slots`` where."""
        batch = tf.shape(images)[0]
        count = self.count.read_value()
        filling = count + tf.range(batch) < self.size
        swapping = tf.logical_and(tf.logical_not(filling), coins > 0.5)
        writes = tf.logical_or(filling, swapping)
        targets = tf.where(filling, count + tf.range(batch), slots)
        earlier, later = _same_slot_writers(targets, writes)
        stored = tf.raw_ops.ResourceGather(resource=self.images.handle, indices=targets, dtype=tf.float32)
        # An earlier image of this batch written to the same slot is what a swap takes out.
        latest_earlier = tf.gather(images, _last_true_index(earlier), batch_dims=0)
        previous = tf.where(tf.reduce_any(earlier, axis=1)[:, None, None, None], latest_earlier, stored)
        outputs = tf.where(swapping[:, None, None, None], previous, images)
        # Of several images written to one slot, the last one stays.
        final = tf.logical_and(writes, tf.logical_not(tf.reduce_any(later, axis=1)))
        kept = tf.where(final)[:, 0]
        with tf.control_dependencies([outputs]):
            tf.raw_ops.ResourceScatterNdUpdate(
                ref=self.images.handle, indices=tf.gather(targets, kept)[:, None], updates=tf.gather(images, kept)
            )
        self.count.assign(tf.minimum(count + batch, self.size))
        return tf.reshape(outputs, tf.shape(images))

    def _draw(self, batch):
        """This query's coins and slots, from a stream of (seed, replica, query number)."""
        seed = tf.stack([tf.constant(self.seed, tf.int64) * 1009 + replica_id(), self.draws.read_value()])
        self.draws.assign_add(1)
        coins = tf.random.stateless_uniform([batch], seed=seed)
        slots = tf.random.stateless_uniform([batch], seed=seed + [0, 1 << 40], maxval=self.size, dtype=tf.int32)
        return coins, slots


def make_pools(size, image_shape, channels_a, channels_b, seed):
    """(image_shape, pool_a, pool_b) of a CycleGAN: pools of ``size`` training crops of ``image_shape``
    (height, width, channels), or empty pools when ``image_shape`` is None (images of varying size)."""
    if image_shape is None:
        return (
            None,
            HistoryPool(0, (1, 1, channels_a), name="pool_a"),
            HistoryPool(0, (1, 1, channels_b), name="pool_b"),
        )
    if None in tuple(image_shape):
        raise ValueError("pool_size > 0 needs image_shape=(height, width, channels) of the training crops")
    shape = tuple(int(d) for d in image_shape)
    return (
        shape,
        HistoryPool(size, (*shape[:2], channels_a), seed=seed, name="pool_a"),
        HistoryPool(size, (*shape[:2], channels_b), seed=seed + 1, name="pool_b"),
    )


def replica_id():
    context = tf.distribute.get_replica_context()
    if context is None:
        return tf.constant(0, tf.int64)
    return tf.cast(context.replica_id_in_sync_group, tf.int64)


def _same_slot_writers(targets, writes):
    """[i, j] masks: image j writes the slot image i targets, j before i (earlier) or after i (later)."""
    batch = tf.shape(targets)[0]
    order = tf.range(batch)
    same = tf.logical_and(tf.equal(targets[:, None], targets[None, :]), writes[None, :])
    earlier = tf.logical_and(same, order[None, :] < order[:, None])
    later = tf.logical_and(same, order[None, :] > order[:, None])
    return earlier, later


def _last_true_index(mask):
    """Per row, the index of the last True column (0 when there is none)."""
    positions = tf.range(1, tf.shape(mask)[1] + 1)
    return tf.maximum(tf.reduce_max(tf.where(mask, positions[None, :], 0), axis=1) - 1, 0)


class ReplicaStack(tf.__internal__.tracking.Trackable):
    """Checkpoints one replica-local variable as the stack of every replica's value.

    Restoring gives replica ``r`` the saved value ``r mod saved_count``; a value saved
    without the replica axis (one device, before pools were stacked) is one replica's.
    """

    def __init__(self, variable, strategy):
        self.variable = variable
        self.strategy = strategy

    def _serialize_to_tensors(self):
        local = self.strategy.run(lambda: tf.expand_dims(self.variable.read_value(), 0))
        return {"VARIABLE_VALUE": self.strategy.gather(local, axis=0)}

    def _restore_from_tensors(self, restored_tensors):
        saved = restored_tensors["VARIABLE_VALUE"]
        if saved.shape.rank == self.variable.shape.rank:
            saved = saved[None]
        if saved.shape[1:] != self.variable.shape:
            raise ValueError(
                f"{self.variable.name.split(':')[0]}: the checkpoint's pool holds {saved.shape[1:]}, "
                f"this config's holds {self.variable.shape} (changed pool_size, image_size or channels?)"
            )

        def assign(values):
            return self.variable.assign(values[replica_id() % tf.shape(values, out_type=tf.int64)[0]])

        self.strategy.run(assign, args=(saved,))
        return tf.no_op()
