"""The paper's generators (ResNet, U-Net) and discriminators (PatchGAN, n-layer, pixel).

Builders return functional ``keras.Model``s with dynamic height and width. Layer
choices follow the PyTorch reference (junyanz/pytorch-CycleGAN-and-pix2pix), so
parameter counts match it exactly (e.g. 11,378,179 for ``resnet_9blocks``).
"""

import keras

from tf_cyclegan.layers import (
    CropToReference,
    NarrowConv2D,
    NearestUpsampling2D,
    PadToMultiple,
    ReflectionPadding2D,
    ResidualOutput,
    kernel_initializer,
    normalization,
)

GENERATORS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128", "unet_64")
# U-Net depth: one down-sampling per halving, down to 1×1 at the named size.
UNET_DOWNS = {"unet_256": 8, "unet_128": 7, "unet_64": 6}
DISCRIMINATORS = ("patchgan", "n_layers", "pixel")
UPSAMPLES = ("transpose", "resize")


class _Blocks:
    """Layer factory sharing one set of norm/init choices across a network."""

    def __init__(self, norm, affine, init, init_gain):
        self.norm, self.affine = norm, affine
        self.init, self.init_gain = init, init_gain
        # The reference drops conv biases only before batch norm (which has its own shift).
        self.use_bias = norm != "batch"

    def conv(self, filters, kernel, strides=1, use_bias=None, name=None, narrow=False):
        # narrow: the image-producing layer (few output channels) — same layer, a much faster gradient.
        return (NarrowConv2D if narrow else keras.layers.Conv2D)(
            filters,
            kernel,
            strides=strides,
            padding="valid",
            use_bias=self.use_bias if use_bias is None else use_bias,
            kernel_initializer=kernel_initializer(self.init, self.init_gain),
            name=name,
        )

    def conv_transpose(self, filters, kernel, use_bias=None, name=None):
        return keras.layers.Conv2DTranspose(
            filters,
            kernel,
            strides=2,
            padding="same",
            use_bias=self.use_bias if use_bias is None else use_bias,
            kernel_initializer=kernel_initializer(self.init, self.init_gain),
            name=name,
        )

    def norm_layer(self, x, name):
        layer = normalization(self.norm, self.affine, name=name)
        return x if layer is None else layer(x)


def _resnet_generator(inputs, output_channels, ngf, n_blocks, blocks, use_dropout, upsample):
    # At least 8 px, so the 1/4-resolution maps stay wider than the residual blocks' 1 px reflection.
    x = PadToMultiple(4, minimum=8, name="pad_to_stride")(inputs)
    x = ReflectionPadding2D(3, name="c7s1_pad")(x)
    x = blocks.conv(ngf, 7, name="c7s1")(x)
    x = blocks.norm_layer(x, "c7s1_norm")
    x = keras.layers.ReLU(name="c7s1_relu")(x)
    filters = ngf
    for _ in range(2):
        filters *= 2
        x = keras.layers.ZeroPadding2D(1, name=f"d{filters}_pad")(x)
        x = blocks.conv(filters, 3, strides=2, name=f"d{filters}")(x)
        x = blocks.norm_layer(x, f"d{filters}_norm")
        x = keras.layers.ReLU(name=f"d{filters}_relu")(x)
    for i in range(n_blocks):
        y = ReflectionPadding2D(1, name=f"r{i}_pad1")(x)
        y = blocks.conv(filters, 3, name=f"r{i}_conv1")(y)
        y = blocks.norm_layer(y, f"r{i}_norm1")
        y = keras.layers.ReLU(name=f"r{i}_relu")(y)
        if use_dropout:
            y = keras.layers.Dropout(0.5, name=f"r{i}_dropout")(y)
        y = ReflectionPadding2D(1, name=f"r{i}_pad2")(y)
        y = blocks.conv(filters, 3, name=f"r{i}_conv2")(y)
        y = blocks.norm_layer(y, f"r{i}_norm2")
        x = keras.layers.Add(name=f"r{i}_add")([x, y])
    for _ in range(2):
        filters //= 2
        if upsample == "transpose":
            x = blocks.conv_transpose(filters, 3, name=f"u{filters}")(x)
        else:
            x = NearestUpsampling2D(2, name=f"u{filters}_resize")(x)
            x = ReflectionPadding2D(1, name=f"u{filters}_pad")(x)
            x = blocks.conv(filters, 3, name=f"u{filters}")(x)
        x = blocks.norm_layer(x, f"u{filters}_norm")
        x = keras.layers.ReLU(name=f"u{filters}_relu")(x)
    x = ReflectionPadding2D(3, name="out_pad")(x)
    x = blocks.conv(output_channels, 7, use_bias=True, name="out_conv", narrow=True)(x)
    x = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return CropToReference(dtype="float32", name="crop_to_input")([x, inputs])


def _unet_generator(inputs, output_channels, ngf, num_downs, blocks, use_dropout, upsample):
    def up(x, filters, name, use_bias=None):
        if upsample == "transpose":
            return blocks.conv_transpose(filters, 4, use_bias=use_bias, name=name)(x)
        x = NearestUpsampling2D(2, name=f"{name}_resize")(x)
        x = ReflectionPadding2D(1, name=f"{name}_pad")(x)
        return blocks.conv(filters, 3, use_bias=use_bias, name=name, narrow=filters == output_channels)(x)

    channels = [min(ngf * 2**i, ngf * 8) for i in range(num_downs)]
    x = PadToMultiple(2**num_downs, name="pad_to_stride")(inputs)
    skips = []
    for i, filters in enumerate(channels):
        if i > 0:
            x = keras.layers.LeakyReLU(0.2, name=f"down{i}_lrelu")(x)
        x = keras.layers.ZeroPadding2D(1, name=f"down{i}_pad")(x)
        x = blocks.conv(filters, 4, strides=2, name=f"down{i}")(x)
        if 0 < i < num_downs - 1:
            x = blocks.norm_layer(x, f"down{i}_norm")
        skips.append(x)
    for i in reversed(range(1, num_downs)):
        x = keras.layers.ReLU(name=f"up{i}_relu")(x)
        x = up(x, channels[i - 1], name=f"up{i}")
        x = blocks.norm_layer(x, f"up{i}_norm")
        if use_dropout and 4 <= i <= num_downs - 2:
            x = keras.layers.Dropout(0.5, name=f"up{i}_dropout")(x)
        x = keras.layers.Concatenate(name=f"skip{i}")([skips[i - 1], x])
    x = keras.layers.ReLU(name="up0_relu")(x)
    x = up(x, output_channels, name="up0", use_bias=True)
    x = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return CropToReference(dtype="float32", name="crop_to_input")([x, inputs])


def build_generator(
    kind="resnet_9blocks",
    input_channels=3,
    output_channels=3,
    ngf=64,
    norm="instance",
    affine=False,
    use_dropout=False,
    upsample="transpose",
    init="normal",
    init_gain=0.02,
    residual=False,
    name="generator",
):
    """Builds a generator taking NHWC images in [-1, 1] of any height/width.

    ``kind`` is one of ``resnet_9blocks``, ``resnet_6blocks``, ``unet_256``, ``unet_128``, ``unet_64``
    (the U-Nets are named by the image size they reduce to 1×1; ``unet_64`` is not in the reference).
    The input is reflect-padded to the network's stride and the output cropped back,
    so the output always has the input's height and width. With ``residual`` the output is the input
    plus the network's change (:class:`ResidualOutput`; input and output channels must be equal).
    """
    if upsample not in UPSAMPLES:
        raise ValueError(f"unknown upsample {upsample!r}; choose one of {', '.join(UPSAMPLES)}")
    blocks = _Blocks(norm, affine, init, init_gain)
    inputs = keras.Input(shape=(None, None, input_channels), name="image")
    if kind.startswith("resnet_") and kind.endswith("blocks") and kind[7:-6].isdigit():
        outputs = _resnet_generator(inputs, output_channels, ngf, int(kind[7:-6]), blocks, use_dropout, upsample)
    elif kind in UNET_DOWNS:
        outputs = _unet_generator(inputs, output_channels, ngf, UNET_DOWNS[kind], blocks, use_dropout, upsample)
    else:
        raise ValueError(f"unknown generator {kind!r}; choose one of {', '.join(GENERATORS)}")
    if residual:
        if input_channels != output_channels:
            raise ValueError(f"a residual generator needs equal channels, not {input_channels} -> {output_channels}")
        outputs = ResidualOutput(dtype="float32", name="residual")([inputs, outputs])
    return keras.Model(inputs, outputs, name=name)


def build_discriminator(
    kind="patchgan",
    input_channels=3,
    ndf=64,
    n_layers=3,
    norm="instance",
    affine=False,
    init="normal",
    init_gain=0.02,
    name="discriminator",
):
    """Builds a discriminator returning one real/fake logit per patch (float32).

    ``patchgan`` is the paper's 70×70 PatchGAN (``n_layers`` = 3); ``n_layers`` uses the
    given depth; ``pixel`` classifies each pixel independently (1×1 convs).
    """
    if kind not in DISCRIMINATORS:
        raise ValueError(f"unknown discriminator {kind!r}; choose one of {', '.join(DISCRIMINATORS)}")
    blocks = _Blocks(norm, affine, init, init_gain)
    inputs = keras.Input(shape=(None, None, input_channels), name="image")
    if kind == "pixel":
        x = blocks.conv(ndf, 1, use_bias=True, name="conv0")(inputs)
        x = keras.layers.LeakyReLU(0.2, name="conv0_lrelu")(x)
        x = blocks.conv(ndf * 2, 1, name="conv1")(x)
        x = blocks.norm_layer(x, "conv1_norm")
        x = keras.layers.LeakyReLU(0.2, name="conv1_lrelu")(x)
        x = blocks.conv(1, 1, name="logits")(x)
    else:
        depth = 3 if kind == "patchgan" else n_layers
        x = inputs
        for i in range(depth + 1):
            filters = ndf * min(2**i, 8)
            x = keras.layers.ZeroPadding2D(1, name=f"c{i}_pad")(x)
            x = blocks.conv(filters, 4, strides=2 if i < depth else 1, use_bias=True if i == 0 else None, name=f"c{i}")(
                x
            )
            if i > 0:
                x = blocks.norm_layer(x, f"c{i}_norm")
            x = keras.layers.LeakyReLU(0.2, name=f"c{i}_lrelu")(x)
        x = keras.layers.ZeroPadding2D(1, name="logits_pad")(x)
        x = blocks.conv(1, 4, use_bias=True, name="logits")(x)
    outputs = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(x)
    return keras.Model(inputs, outputs, name=name)
