"""History of generated images (Shrivastava et al. 2017), kept in TF state.

The discriminator is updated with a 50/50 mix of the newest fakes and fakes
drawn from a buffer of earlier ones, which damps oscillation. The buffer, its
fill count and its random-draw counter are ``tf.Variable``s, so the whole
training step stays one graph function and all of it is checkpointed. Under a
distribution strategy each replica keeps its own pool (``ON_READ`` variables).
"""

import tensorflow as tf


class HistoryPool(tf.Module):
    """Returns, per image, either the image itself or a stored older image it replaces.

    Mirrors the reference ``ImagePool``: while not full, images are stored and
    returned; once full, each image has a 50% chance to be swapped with a random
    stored one (the stored one is returned). ``size=0`` disables the pool.
    """

    def __init__(self, size, image_shape, seed=0, name=None):
        super().__init__(name=name)
        self.size = int(size)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.seed = int(seed)
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

    def _replica_id(self):
        context = tf.distribute.get_replica_context()
        if context is None:
            return tf.constant(0, tf.int64)
        return tf.cast(context.replica_id_in_sync_group, tf.int64)

    def __call__(self, images):
        """Queries the pool with a batch of fakes; returns a batch of the same shape."""
        if self.size <= 0:
            return images
        images = tf.cast(tf.stop_gradient(images), tf.float32)
        batch = tf.shape(images)[0]
        seed = tf.stack([tf.constant(self.seed, tf.int64) * 1009 + self._replica_id(), self.draws.read_value()])
        self.draws.assign_add(1)
        coins = tf.random.stateless_uniform([batch], seed=seed)
        slots = tf.random.stateless_uniform([batch], seed=seed + [0, 1 << 40], maxval=self.size, dtype=tf.int32)

        def query_one(i, outputs):
            image = images[i]
            count = self.count.read_value()

            def store():
                self.images.scatter_nd_update([[count]], image[None])
                self.count.assign_add(1)
                return image

            def swap():
                old = self.images[slots[i]]
                with tf.control_dependencies([old]):
                    self.images.scatter_nd_update([[slots[i]]], image[None])
                return tf.identity(old)

            def keep():
                return image

            result = tf.cond(
                count < self.size, store, lambda: tf.cond(coins[i] > 0.5, swap, keep)
            )
            return i + 1, outputs.write(i, result)

        _, outputs = tf.while_loop(
            lambda i, _: i < batch,
            query_one,
            [tf.constant(0), tf.TensorArray(tf.float32, size=batch, element_shape=self.image_shape)],
        )
        return tf.reshape(outputs.stack(), tf.shape(images))
