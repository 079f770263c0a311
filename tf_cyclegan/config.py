"""One typed configuration that flows CLI → data → model → trainer.

Sections are dataclasses; a run's resolved config is written to ``config.yaml`` in
its run directory and read back by later commands, so nobody retypes flags.
"""

import dataclasses
import re
import typing

import yaml

from tf_cyclegan import fs
from tf_cyclegan.errors import ConfigError
from tf_cyclegan.rules import MAX_COUNT, count, parse_value, setting, weight

PRESET_DIR = fs.PACKAGE / "presets"
# A run name becomes part of folder names (runs/<name>, export/<name>_a2b): no separators, no "..".
NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
MAX_SIDE = 16384  # image_size / load_size: TensorFlow's image ops and any network past this are out of reach
MAX_CONFIG_BYTES = 1_000_000  # a preset or config.yaml is a few hundred bytes; anything larger is not one
DIFFAUGMENT = ("color", "translation", "cutout")  # DiffAugment's transforms (Zhao et al. 2020), see augment.py
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# Shared by the command lines (which must not load TensorFlow to print --help) and the library.
TFLITE_VARIANTS = ("fp32", "fp16", "int8", "int8_full")
MAX_REQUEST_PIXELS = 16_000_000  # no serving request translates more pixels (a 4000 x 4000 photo), whatever the memory
MAX_REQUEST_GB = 2.0  # nor more than the pixels whose estimated memory (footprint) fits in this, per request
TRANSLATE_MAX_PIXELS = 50_000_000  # translate's decode limit: above training's, as it tiles images too large for memory


@dataclasses.dataclass
class DataConfig:
    """Where the two domains come from and how images are prepared."""

    dataset: str = "fluent"  # 'fluent', 'emoji' (bundled), a TFDS name (cycle_gan/horse2zebra), a folder
    domain_a: str = ""  # two folders of your own images (override dataset)
    domain_b: str = ""
    test_a: str = ""
    test_b: str = ""
    data_dir: str = ""  # TFDS data directory ('' = TFDS default)
    image_size: int = count(256, low=1, high=MAX_SIDE)  # crop size fed to the networks
    load_size: int = count(286, low=1, high=MAX_SIDE)  # resize before the random crop
    preprocess: str = setting(
        "resize_and_crop", choices=("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
    )
    flip: bool = True
    channels_a: int = setting(3, choices=(1, 3))
    channels_b: int = setting(3, choices=(1, 3))
    background: str = "white"  # composite colour for transparent pixels: white, black, gray or R,G,B (0-255)
    max_dataset_size: int = count(0)  # 0 = all images
    cache: bool = False  # keep resized images in memory (resize_and_crop only)
    max_pixels: int = setting(25_000_000, low=0, high=2**40)  # larger images are skipped, not decoded (0 = no limit)

    @property
    def fixed_size(self):
        """Whether preprocessing makes every image image_size × image_size (what batches > 1 and the pool need)."""
        return self.preprocess not in ("scale_width", "none")

    def channels(self, direction):
        """(input, output) channel counts of the generator for ``direction`` ('a2b' or 'b2a')."""
        return (self.channels_a, self.channels_b) if direction == "a2b" else (self.channels_b, self.channels_a)


@dataclasses.dataclass
class ModelConfig:
    """The four networks (names and defaults as in the paper)."""

    generator: str = setting(
        "resnet", choices=("resnet", "unet_64", "unet_128", "unet_256", "resnet_6blocks", "resnet_9blocks")
    )  # resnet takes n_blocks
    n_blocks: int = count(9, low=1, high=1000)
    discriminator: str = setting("patchgan", choices=("patchgan", "n_layers", "pixel"))
    n_layers_d: int = count(3, low=1, high=16)
    ngf: int = count(64, low=1, high=4096)
    ndf: int = count(64, low=1, high=4096)
    norm: str = setting("instance", choices=("instance", "batch", "none"))
    affine: bool = False
    use_dropout: bool = False
    upsample: str = setting("transpose", choices=("transpose", "resize"))
    residual: bool = False  # generators output input + a learned change (not in the paper; needs equal channels)
    init: str = setting("normal", choices=("normal", "xavier", "kaiming", "orthogonal"))
    init_gain: float = weight(0.02)


@dataclasses.dataclass
class LossConfig:
    gan_loss: str = setting("lsgan", choices=("lsgan", "vanilla", "hinge", "wgangp"))
    lambda_gan: float = weight(1.0)  # weight of both generators' adversarial losses (0 = the paper's "cycle alone")
    lambda_cycle: float = weight(10.0)  # both cycle losses, unless lambda_cycle_a/_b say otherwise
    # The forward cycle A→B→A and the backward B→A→B (None = lambda_cycle; 0 with GAN = "GAN + backward"/"+ forward").
    lambda_cycle_a: float | None = weight(None)
    lambda_cycle_b: float | None = weight(None)
    lambda_identity: float = weight(0.5)
    lambda_gp: float = weight(10.0)
    pool_size: int = count(50)
    diffaugment: str = setting("", parts=DIFFAUGMENT)  # for every image the discriminators see ('' = off)


@dataclasses.dataclass
class OptimizerConfig:
    lr: float = setting(2e-4, low=0.0, low_open=True)
    beta1: float = setting(0.5, low=0.0, high=1.0, high_open=True)
    beta2: float = setting(0.999, low=0.0, high=1.0, high_open=True)


@dataclasses.dataclass
class TrainConfig:
    """Length of training, logging cadence and execution."""

    epochs: int = count(100)  # epochs at the initial learning rate
    decay_epochs: int = count(100)  # epochs of linear decay to zero
    steps: int = count(0)  # total steps; overrides epochs/decay_epochs (split half and half) when > 0
    batch_size: int = count(1, low=1)  # global batch, split across replicas
    seed: int = count(0, low=-MAX_COUNT)
    deterministic: bool = False  # TF op determinism (slower, bit-reproducible)
    save_every_steps: int = count(1000, low=1)
    sample_every_steps: int = count(500, low=1)
    log_every_steps: int = count(100, low=1)
    keep_checkpoints: int = count(3, low=1)
    num_samples: int = count(4, high=256)  # test images shown in sample grids
    strategy: str = setting("auto", choices=("auto", "default", "mirrored", "multi_worker"))
    cpu_replicas: int = count(0, high=256)  # split the CPU into N logical devices (testing mirrored on CPU)
    precision: str = setting("auto", choices=PRECISIONS)  # auto: bf16 where the hardware has it natively
    jit_compile: bool = False
    ema_decay: float = setting(0.0, low=0.0, high=1.0, high_open=True)  # averaged generators translate (0 = off)
    health_images: int = count(32, high=4096)  # test images per domain for the health checks (0 = no checks)
    # warn, or stop: save a checkpoint and exit with code 3 (see health.py)
    on_unhealthy: str = setting("warn", choices=("warn", "stop"))


@dataclasses.dataclass
class EvalConfig:
    """Evaluation on the test split, standalone or during training."""

    eval_every: int = count(0)  # epochs between in-training evaluations (0 = off)
    best_metric: str = "auto"  # e.g. a2b/psnr, a2b/cycle_l1, b2a/kid; auto = a2b/psnr when paired, else a2b/cycle_l1
    max_eval_images: int = count(0)  # 0 = the whole test split
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

EVAL_METRICS = ("paired", "cycle", "kid", "fid")  # what python -m tf_cyclegan.evaluate can score
# Metrics a best/ checkpoint can be chosen by, and whether higher is better.
BEST_METRICS = {"psnr": True, "ssim": True, "l1": False, "cycle_l1": False, "kid": False, "fid": False}


def rules():
    """{'section.field': Rule} for every field that has one."""
    found = {}
    for section in SECTIONS:
        for field in dataclasses.fields(type(getattr(Config(), section))):
            if "rule" in field.metadata:
                found[f"{section}.{field.name}"] = field.metadata["rule"]
    return found


def choices(dotted):
    """The values ``section.field`` may take, or () when it is not a choice."""
    rule = rules().get(dotted)
    return rule.choices if rule else ()


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


LEGACY = {"loss.lambda_cycle_a": (-1.0, None), "loss.lambda_cycle_b": (-1.0, None)}  # older config.yaml: (then, now)


def update_from_dict(config, values, origin):
    try:
        for key, value in (values or {}).items():
            if key in SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{key} must be a mapping")
                for field, item in value.items():
                    old, now = LEGACY.get(f"{key}.{field}", (None, None))
                    if old is not None and item == old:  # a run's config.yaml from an older version
                        item = now
                    set_value(config, f"{key}.{field}", item)
            else:
                set_value(config, key, value)
    except ConfigError as error:
        raise ConfigError(f"{origin}: {error}") from None
    return config


class _SettingsLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: a few hundred bytes of nested ``*alias`` references expand to
    gigabytes ("billion laughs"), and a config never needs them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a config", self.peek_event().start_mark
            )
        return super().compose_node(parent, index)


def load_yaml(path, config=None):
    """Reads a preset or a run's config.yaml on top of ``config`` (defaults if None)."""
    path = fs.path(path)
    if not path.is_file():
        raise ConfigError(f"--config: no such file {str(path)!r}")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size} bytes is not a config file (at most {MAX_CONFIG_BYTES})")
    try:
        values = yaml.load(path.read_text(encoding="utf-8"), Loader=_SettingsLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ConfigError(f"{path}: not valid YAML{where} ({problem})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"{path}: must hold a mapping of settings")
    return update_from_dict(config or Config(), values, str(path))


def to_dict(config):
    return dataclasses.asdict(config)


def to_yaml(config):
    return yaml.safe_dump(to_dict(config), sort_keys=False)


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
        name = f"{fs.path(data.domain_a).name}2{fs.path(data.domain_b).name}"
    else:
        name = fs.path(data.dataset.removeprefix("tfds:").rstrip("/")).name.split(":")[0]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".")
    return name or "run"


def preset_path(name):
    """The bundled preset for ``name`` (e.g. 'horse2zebra'), or None."""
    path = PRESET_DIR / f"{name}.yaml"
    return path if path.is_file() else None


def preset_for_dataset(dataset):
    """The preset a dataset name implies: 'cycle_gan/monet2photo' → monet2photo.yaml."""
    stem = fs.path(dataset.rstrip("/")).name if dataset else ""
    return preset_path(stem) if stem else None


def validate(config):
    """Raises ConfigError naming the first bad setting."""
    if config.name and (not NAME.fullmatch(config.name) or set(config.name) == {"."}):
        raise ConfigError(f"--name: {config.name!r} may hold only letters, digits and . _ - (it names folders)")
    for dotted, rule in rules().items():
        section, field = dotted.split(".")
        problem = rule.problem(getattr(getattr(config, section), field))
        if problem:
            raise ConfigError(f"--{field}: {problem}")
    data = config.data
    if data.preprocess in ("resize_and_crop", "scale_width_and_crop") and data.load_size < data.image_size:
        raise ConfigError(f"--load_size: must be >= --image_size ({data.image_size}) for {data.preprocess}")
    if not data.fixed_size and (config.train.batch_size > 1 or config.loss.pool_size > 0):
        raise ConfigError(
            f"--preprocess={data.preprocess} gives images of varying size: it needs --batch_size=1 and --pool_size=0"
        )
    if config.model.residual and data.channels_a != data.channels_b:
        raise ConfigError("--residual: a residual generator needs channels_a == channels_b")
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
    """(forward, backward) cycle weights: lambda_cycle_a/_b, or lambda_cycle where they are None."""
    return tuple(loss.lambda_cycle if w is None else w for w in (loss.lambda_cycle_a, loss.lambda_cycle_b))


def generator_kind(model):
    """The builder name for ``model.generator`` (resnet + n_blocks → resnet_9blocks)."""
    return f"resnet_{model.n_blocks}blocks" if model.generator == "resnet" else model.generator
