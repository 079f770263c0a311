"""One typed configuration that flows CLI → data → model → trainer.

Sections are dataclasses; a run's resolved config is written to ``config.yaml`` in
its run directory and read back by later commands, so nobody retypes flags.
"""

import dataclasses
import re
import typing
from pathlib import Path

import yaml

PRESET_DIR = Path(__file__).resolve().parent / "presets"
# A run name becomes part of folder names (runs/<name>, export/<name>_a2b): no separators, no "..".
NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


class ConfigError(ValueError):
    """A bad setting; the message names the setting and what is allowed."""


@dataclasses.dataclass
class DataConfig:
    """Where the two domains come from and how images are prepared."""

    dataset: str = "emoji"  # 'emoji' (bundled), a TFDS name like cycle_gan/horse2zebra, or a folder with trainA/trainB
    domain_a: str = ""  # two folders of your own images (override dataset)
    domain_b: str = ""
    test_a: str = ""
    test_b: str = ""
    data_dir: str = ""  # TFDS data directory ('' = TFDS default)
    image_size: int = 256  # crop size fed to the networks
    load_size: int = 286  # resize before the random crop
    preprocess: str = "resize_and_crop"
    flip: bool = True
    channels_a: int = 3
    channels_b: int = 3
    background: str = "white"  # composite colour for transparent pixels: white, black, gray or R,G,B (0-255)
    max_dataset_size: int = 0  # 0 = all images
    cache: bool = False  # keep resized images in memory (resize_and_crop only)
    max_pixels: int = 25_000_000  # images whose header declares more are skipped, never decoded (0 = no limit)


@dataclasses.dataclass
class ModelConfig:
    """The four networks (names and defaults as in the paper)."""

    generator: str = "resnet"  # resnet (with n_blocks), unet_64, unet_128, unet_256
    n_blocks: int = 9
    discriminator: str = "patchgan"  # patchgan, n_layers, pixel
    n_layers_d: int = 3
    ngf: int = 64
    ndf: int = 64
    norm: str = "instance"
    affine: bool = False
    use_dropout: bool = False
    upsample: str = "transpose"
    init: str = "normal"
    init_gain: float = 0.02


@dataclasses.dataclass
class LossConfig:
    gan_loss: str = "lsgan"
    lambda_gan: float = 1.0  # weight of both generators' adversarial losses (0 = the paper's "cycle alone")
    lambda_cycle: float = 10.0  # both cycle losses, unless lambda_cycle_a/_b say otherwise
    lambda_cycle_a: float = -1.0  # forward cycle A→B→A (-1 = lambda_cycle; 0 with GAN = "GAN + backward")
    lambda_cycle_b: float = -1.0  # backward cycle B→A→B (-1 = lambda_cycle; 0 with GAN = "GAN + forward")
    lambda_identity: float = 0.5
    lambda_gp: float = 10.0
    pool_size: int = 50


@dataclasses.dataclass
class OptimizerConfig:
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999


@dataclasses.dataclass
class TrainConfig:
    """Length of training, logging cadence and execution."""

    epochs: int = 100  # epochs at the initial learning rate
    decay_epochs: int = 100  # epochs of linear decay to zero
    steps: int = 0  # total steps; overrides epochs/decay_epochs (split half and half) when > 0
    batch_size: int = 1  # global batch, split across replicas
    seed: int = 0
    deterministic: bool = False  # TF op determinism (slower, bit-reproducible)
    save_every_steps: int = 1000
    sample_every_steps: int = 500
    log_every_steps: int = 100
    keep_checkpoints: int = 3
    num_samples: int = 4  # test images shown in sample grids
    strategy: str = "auto"  # auto, default, mirrored, multi_worker
    cpu_replicas: int = 0  # split the CPU into N logical devices (testing mirrored on CPU)
    precision: str = "auto"  # auto (bf16 where the hardware has it natively), float32, mixed_bfloat16, mixed_float16
    jit_compile: bool = False
    health_images: int = 32  # test images per domain the health checks at every sample step use (0 = no checks)
    on_unhealthy: str = "warn"  # warn, or stop: save a checkpoint and exit with code 3 (see health.py)


@dataclasses.dataclass
class EvalConfig:
    """Evaluation on the test split, standalone or during training."""

    eval_every: int = 0  # epochs between in-training evaluations (0 = off)
    best_metric: str = "auto"  # e.g. a2b/psnr, a2b/cycle_l1, b2a/kid; auto = a2b/psnr when paired, else a2b/cycle_l1
    max_eval_images: int = 0  # 0 = the whole test split
    inception_weights: str = ""  # local InceptionV3 notop .h5 for KID/FID ('' = Keras cache or download)


@dataclasses.dataclass
class Config:
    name: str = ""
    run_dir: str = ""  # default runs/<name>
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


SECTIONS = ("data", "model", "loss", "optimizer", "train", "eval")

CHOICES = {
    "data.preprocess": ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"),
    "model.generator": ("resnet", "unet_64", "unet_128", "unet_256", "resnet_6blocks", "resnet_9blocks"),
    "model.discriminator": ("patchgan", "n_layers", "pixel"),
    "model.norm": ("instance", "batch", "none"),
    "model.upsample": ("transpose", "resize"),
    "model.init": ("normal", "xavier", "kaiming", "orthogonal"),
    "loss.gan_loss": ("lsgan", "vanilla", "hinge", "wgangp"),
    "train.strategy": ("auto", "default", "mirrored", "multi_worker"),
    "train.precision": ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
    "train.on_unhealthy": ("warn", "stop"),
}
# What python -m tf_cyclegan.evaluate can score.
EVAL_METRICS = ("paired", "cycle", "kid", "fid")
# Metrics a best/ checkpoint can be chosen by, and whether higher is better.
BEST_METRICS = {"psnr": True, "ssim": True, "l1": False, "cycle_l1": False, "kid": False, "fid": False}
POSITIVE = (
    "data.image_size", "data.load_size", "data.channels_a", "data.channels_b", "model.n_blocks", "model.n_layers_d",
    "model.ngf", "model.ndf", "train.batch_size", "train.save_every_steps", "train.sample_every_steps",
    "train.log_every_steps", "train.keep_checkpoints", "optimizer.lr",
)
NON_NEGATIVE = (
    "data.max_dataset_size", "data.max_pixels", "loss.lambda_gan", "loss.lambda_cycle", "loss.lambda_identity",
    "loss.lambda_gp",
    "loss.pool_size",
    "train.epochs", "train.decay_epochs", "train.steps", "train.num_samples", "train.cpu_replicas", "model.init_gain",
    "train.health_images",
    "eval.eval_every", "eval.max_eval_images",
)


def field_types(section_cls):
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls)}


def flat_fields():
    """Maps each unique field name (used as a CLI flag) to its dotted path and type."""
    fields = {"name": ("name", str), "run_dir": ("run_dir", str)}
    for section in SECTIONS:
        cls = type(getattr(Config(), section))
        for name, kind in field_types(cls).items():
            fields[name] = (f"{section}.{name}", kind)
    return fields


def parse_value(key, kind, text):
    """Converts ``text`` (from a flag or YAML) to ``kind``, naming ``key`` when it cannot."""
    if isinstance(text, kind) and not (kind is int and isinstance(text, bool)):
        return text
    if kind is bool:
        lowered = str(text).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--{key.split('.')[-1]}: expected true or false, got {text!r}")
    try:
        if kind is int:
            as_float = float(text)
            if not as_float.is_integer():
                raise ValueError
            return int(as_float)
        return kind(text)
    except (TypeError, ValueError):
        raise ConfigError(f"--{key.split('.')[-1]}: expected {kind.__name__}, got {text!r}") from None


def set_value(config, dotted, text):
    """Sets ``section.field`` (or a top-level field) from text, with type checking."""
    parts = dotted.split(".")
    if len(parts) == 1 and parts[0] in ("name", "run_dir"):
        setattr(config, parts[0], str(text))
        return
    if len(parts) != 2 or parts[0] not in SECTIONS:
        raise ConfigError(f"unknown setting {dotted!r}; use section.field with section one of {', '.join(SECTIONS)}")
    section = getattr(config, parts[0])
    types = field_types(type(section))
    if parts[1] not in types:
        raise ConfigError(f"unknown setting {dotted!r}; {parts[0]} has {', '.join(types)}")
    setattr(section, parts[1], parse_value(dotted, types[parts[1]], text))


def update_from_dict(config, values, origin):
    try:
        for key, value in (values or {}).items():
            if key in SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{key} must be a mapping")
                for field, item in value.items():
                    set_value(config, f"{key}.{field}", item)
            else:
                set_value(config, key, value)
    except ConfigError as error:
        raise ConfigError(f"{origin}: {error}") from None
    return config


def load_yaml(path, config=None):
    """Reads a preset or a run's config.yaml on top of ``config`` (defaults if None)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config: no such file {str(path)!r}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where} ({getattr(error, 'problem', None) or type(error).__name__})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"{path}: must hold a mapping of settings")
    return update_from_dict(config or Config(), values, str(path))


def to_dict(config):
    return dataclasses.asdict(config)


def to_yaml(config):
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def save_yaml(config, path):
    Path(path).write_text(to_yaml(config), encoding="utf-8")


def apply_fields(config, fields, sets=()):
    """Applies ``{field: text}`` (flag names, see ``flat_fields``), then ``section.field=value`` items."""
    flat = flat_fields()
    for name, text in fields.items():
        set_value(config, flat[name][0], text)
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set: expected section.field=value, got {item!r}")
        set_value(config, key.strip(), text.strip())
    return config


def default_name(config):
    """A run name from the data: ``horse2zebra`` for cycle_gan/horse2zebra, ``a2b`` for two folders a and b.

    Characters a run name may not hold (see ``NAME``) become ``_``.
    """
    data = config.data
    if data.domain_a and data.domain_b:
        name = f"{Path(data.domain_a).name}2{Path(data.domain_b).name}"
    else:
        name = Path(data.dataset.removeprefix("tfds:").rstrip("/")).name.split(":")[0]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".")
    return name or "run"


def preset_path(name):
    """The bundled preset for ``name`` (e.g. 'horse2zebra'), or None."""
    path = PRESET_DIR / f"{name}.yaml"
    return path if path.is_file() else None


def preset_for_dataset(dataset):
    """The preset a dataset name implies: 'cycle_gan/monet2photo' → monet2photo.yaml."""
    stem = Path(dataset.rstrip("/")).name if dataset else ""
    return preset_path(stem) if stem else None


def validate(config):
    """Raises ConfigError naming the first bad setting."""
    if config.name and (not NAME.fullmatch(config.name) or set(config.name) == {"."}):
        raise ConfigError(f"--name: {config.name!r} may hold only letters, digits and . _ - (it names folders)")
    for dotted, choices in CHOICES.items():
        section, field = dotted.split(".")
        value = getattr(getattr(config, section), field)
        if value not in choices:
            raise ConfigError(f"--{field}: {value!r} is not one of {', '.join(choices)}")
    for dotted in POSITIVE + NON_NEGATIVE:
        section, field = dotted.split(".")
        value = getattr(getattr(config, section), field)
        if value < 0 or (dotted in POSITIVE and value == 0):
            bound = "> 0" if dotted in POSITIVE else ">= 0"
            raise ConfigError(f"--{field}: must be {bound}, got {value}")
    for field in ("lambda_cycle_a", "lambda_cycle_b"):
        value = getattr(config.loss, field)
        if value < 0 and value != -1:
            raise ConfigError(f"--{field}: must be >= 0, or -1 for lambda_cycle, got {value}")
    data = config.data
    if data.preprocess in ("resize_and_crop", "scale_width_and_crop") and data.load_size < data.image_size:
        raise ConfigError(f"--load_size: must be >= --image_size ({data.image_size}) for {data.preprocess}")
    variable = data.preprocess in ("scale_width", "none")
    if variable and (config.train.batch_size > 1 or config.loss.pool_size > 0):
        raise ConfigError(
            f"--preprocess={data.preprocess} gives images of varying size: it needs --batch_size=1 and --pool_size=0"
        )
    if config.loss.lambda_identity > 0 and data.channels_a != data.channels_b:
        raise ConfigError("--lambda_identity: identity loss needs channels_a == channels_b; set it to 0")
    if config.train.steps == 0 and config.train.epochs + config.train.decay_epochs == 0:
        raise ConfigError("--epochs: epochs + decay_epochs must be > 0 (or set --steps)")
    metric = config.eval.best_metric
    if metric != "auto" and not (
        metric.count("/") == 1 and metric.split("/")[0] in ("a2b", "b2a") and metric.split("/")[1] in BEST_METRICS
    ):
        raise ConfigError(f"--best_metric: expected auto or a2b|b2a/{'|'.join(BEST_METRICS)}, got {metric!r}")
    if bool(data.domain_a) != bool(data.domain_b):
        raise ConfigError("--domain_a/--domain_b: give both folders or neither")
    return config


def cycle_weights(loss):
    """(forward, backward) cycle weights: lambda_cycle_a/_b, or lambda_cycle where they are -1."""
    return tuple(loss.lambda_cycle if weight == -1 else weight for weight in (loss.lambda_cycle_a, loss.lambda_cycle_b))


def generator_kind(model):
    """The builder name for ``model.generator`` (resnet + n_blocks → resnet_9blocks)."""
    return f"resnet_{model.n_blocks}blocks" if model.generator == "resnet" else model.generator
