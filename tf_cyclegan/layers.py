"""Small Keras layers the CycleGAN networks are built from.

Each layer takes explicit arguments and round-trips through ``get_config``.
"""

import keras
import tensorflow as tf

NORMS = ("instance", "batch", "none")
INITS = ("normal", "xavier", "kaiming", "orthogonal")


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class ReflectionPadding2D(keras.layers.Layer):
    """Reflect-pads height and width by ``padding`` pixels on each side (NHWC)."""

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs):
        p = self.padding
        return tf.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        grow = lambda d: None if d is None else d + 2 * self.padding  # noqa: E731
        return (n, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class NearestUpsampling2D(keras.layers.Layer):
    """Repeats every pixel ``factor`` × ``factor`` times (NHWC).

    Same values as ``keras.layers.UpSampling2D(interpolation="nearest")``, but one ResizeNearestNeighbor op:
    Keras's repeat/reshape version leaves the following convolution unconvertible to TFLite. Its gradient
    is the sum over each ``factor`` × ``factor`` block (XLA has no ResizeNearestNeighborGrad kernel).
    """

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, inputs):
        return nearest_upsample(inputs, self.factor)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        grow = lambda d: None if d is None else d * self.factor  # noqa: E731
        return (n, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def nearest_upsample(inputs, factor):
    """Nearest-neighbour upsampling by an integer ``factor`` with a block-sum gradient."""

    @tf.custom_gradient
    def upsample(x):
        shape = tf.shape(x)

        def grad(dy):
            blocks = tf.reshape(dy, [shape[0], shape[1], factor, shape[2], factor, shape[3]])
            return tf.reduce_sum(blocks, axis=[2, 4])

        return tf.image.resize(x, shape[1:3] * factor, method="nearest"), grad

    return upsample(inputs)


def narrow_conv2d(inputs, kernel):
    """Stride-1 'valid' NHWC convolution whose gradients are one patch matrix's products.

    TensorFlow's CPU gradient kernels run a wide kernel with few output channels (the
    generators' 7x7, 64 -> 3 output layer) at ~1 GFLOP/s. Both gradients here use the
    patches of the padded output gradient, which are small because it has few channels:
    ``patches[n, p, q, (a, b, o)] = dy[n, p - (size - 1 - a), q - (size - 1 - b), o]``.
    """

    @tf.custom_gradient
    def conv(x, k):
        def grad(dy):
            size, _, channels, filters = k.shape
            edge = size - 1
            padded = tf.pad(dy, [[0, 0], [edge, edge], [edge, edge], [0, 0]])
            patches = tf.image.extract_patches(padded, [1, size, size, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")
            patches = tf.reshape(patches, [-1, size * size * filters])
            flipped = tf.reverse(k, axis=[0, 1])
            columns = tf.reshape(tf.transpose(flipped, [0, 1, 3, 2]), [size * size * filters, channels])
            dx = tf.reshape(tf.matmul(patches, columns), tf.shape(x))
            dk = tf.matmul(tf.reshape(x, [-1, channels]), patches, transpose_a=True)
            dk = tf.transpose(tf.reshape(dk, [channels, size, size, filters]), [1, 2, 0, 3])
            return dx, tf.reverse(dk, axis=[0, 1])

        return tf.nn.conv2d(x, k, strides=1, padding="VALID"), grad

    # Tensors, not variables: the gradient then reaches a variable through its read.
    return conv(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class NarrowConv2D(keras.layers.Conv2D):
    """Conv2D (stride 1, 'valid') for few output channels, with :func:`narrow_conv2d`'s gradient.

    Weights, forward pass and config are exactly ``Conv2D``'s; only training is faster
    (4-6x for the output layer, which was a third of a 128 px ResNet-6 step).
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        plain = (
            self.strides == (1, 1)
            and self.dilation_rate == (1, 1)
            and self.groups == 1
            and self.padding == "valid"
            and self.data_format == "channels_last"
        )
        if not plain or self.kernel_size[0] != self.kernel_size[1]:
            raise ValueError("NarrowConv2D supports square kernels, stride 1, 'valid' padding, channels_last only")

    def convolution_op(self, inputs, kernel):
        return narrow_conv2d(inputs, kernel)


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class InstanceNormalization(keras.layers.Layer):
    """Per-image, per-channel normalisation over height and width.

    Statistics are always computed in float32 (also under mixed precision), as
    bfloat16/float16 variances of large feature maps are too coarse.
    ``affine=False`` matches the reference's ``InstanceNorm2d`` default.
    """

    def __init__(self, epsilon=1e-5, affine=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.affine = bool(affine)
        # (mean, variance) to use instead of the input's own: set by tiled translation so
        # every tile is normalised with the whole image's statistics. Not part of the config.
        self.fixed_moments = None

    def build(self, input_shape):
        if self.affine:
            channels = input_shape[-1]
            self.gamma = self.add_weight(
                shape=(channels,), initializer=keras.initializers.RandomNormal(1.0, 0.02), name="gamma"
            )
            self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        x = tf.cast(inputs, tf.float32)
        if self.fixed_moments is None:
            mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        else:
            mean, variance = self.fixed_moments
        x = (x - mean) * tf.math.rsqrt(variance + self.epsilon)
        if self.affine:
            x = x * tf.cast(self.gamma, tf.float32) + tf.cast(self.beta, tf.float32)
        return tf.cast(x, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "affine": self.affine}


def _mirror_indices(size, before, after):
    """Indices that reflect-pad a dimension of ``size`` by any amount (may exceed ``size``)."""
    idx = tf.range(-before, size + after)
    if_one = tf.zeros_like(idx)
    period = 2 * (size - 1)
    # Reflection is symmetric about index 0, so |idx| folds the same: non-negative operands, on which ONNX's Mod
    # (tf2onnx's FloorMod) and TensorFlow's agree.
    folded = tf.math.floormod(tf.abs(idx), tf.maximum(period, 1))
    mirrored = tf.where(folded >= size, period - folded, folded)
    return tf.where(size > 1, mirrored, if_one)


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class PadToMultiple(keras.layers.Layer):
    """Reflect-pads height and width up to the next multiple of ``multiple`` (and ≥ ``minimum``).

    Lets a network with total stride ``multiple`` take any image size, tiny ones
    included; pair it with :class:`CropToReference` to return exactly the input size.
    """

    def __init__(self, multiple, minimum=0, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)
        self.minimum = int(minimum)

    def _target(self, size):
        # (size + m - 1) // m, not -(-size // m): converters (tf2onnx) turn floor division into ONNX's Div, which
        # truncates, so the negative form rounds the wrong way there (37 px padded to 36).
        return tf.maximum((size + self.multiple - 1) // self.multiple * self.multiple, self.minimum)

    def call(self, inputs):
        if self.multiple <= 1 and self.minimum <= 1:
            return inputs
        shape = tf.shape(inputs)
        h, w = shape[1], shape[2]
        pad_h = self._target(h) - h
        pad_w = self._target(w) - w
        rows = _mirror_indices(h, pad_h // 2, pad_h - pad_h // 2)
        cols = _mirror_indices(w, pad_w // 2, pad_w - pad_w // 2)
        return tf.gather(tf.gather(inputs, rows, axis=1), cols, axis=2)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        up = lambda d: None if d is None else max(-(-d // self.multiple) * self.multiple, self.minimum)  # noqa: E731
        return (n, up(h), up(w), c)

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple, "minimum": self.minimum}


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class CropToReference(keras.layers.Layer):
    """Centre-crops ``inputs[0]`` to the height and width of ``inputs[1]``.

    Undoes :class:`PadToMultiple` (which pads the extra pixel at the bottom/right).
    """

    def call(self, inputs):
        x, reference = inputs
        shape, ref = tf.shape(x), tf.shape(reference)
        top = (shape[1] - ref[1]) // 2
        left = (shape[2] - ref[2]) // 2
        return x[:, top : top + ref[1], left : left + ref[2], :]

    def compute_output_shape(self, input_shapes):
        x_shape, ref_shape = input_shapes
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])


@keras.saving.register_keras_serializable(package="tf_cyclegan")
class ResidualOutput(keras.layers.Layer):
    """``clip(image + 2 * change, -1, 1)``: a generator's output as its input plus a learned change in [-1, 1]
    (``--residual``), so the input's edges pass through unchanged unless the network changes them."""

    def call(self, inputs):
        image, change = inputs
        return tf.clip_by_value(tf.cast(image, change.dtype) + 2.0 * change, -1.0, 1.0)

    def compute_output_shape(self, input_shapes):
        return input_shapes[1]


def kernel_initializer(init="normal", gain=0.02, seed=None):
    """Weight init as in the reference: N(0, gain), or xavier/kaiming/orthogonal ('zeros': for shape probes, which
    must not draw from the global random state that the real networks' weights come from)."""
    if init == "zeros":
        return keras.initializers.Zeros()
    if init == "normal":
        return keras.initializers.RandomNormal(0.0, gain, seed=seed)
    if init == "xavier":
        return keras.initializers.VarianceScaling(gain**2, "fan_avg", "untruncated_normal", seed=seed)
    if init == "kaiming":
        return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed=seed)
    if init == "orthogonal":
        return keras.initializers.Orthogonal(gain, seed=seed)
    raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")


def normalization(norm, affine=False, name=None):
    """The normalisation layer for ``norm`` ('instance', 'batch' or 'none' → None)."""
    if norm == "instance":
        return InstanceNormalization(affine=affine, name=name)
    if norm == "batch":
        return keras.layers.BatchNormalization(
            momentum=0.9, epsilon=1e-5, gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), name=name
        )
    if norm == "none":
        return None
    raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
