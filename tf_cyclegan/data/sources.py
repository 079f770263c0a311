"""Where the two domains' images come from: the bundled sample, folders, or TFDS.

Every source resolves to :class:`Domain` lists of *encoded* images — file paths or,
for TFDS, the stored bytes — which one pipeline decodes the same way.
"""

import dataclasses
import os
import re
import socket
import sys
import threading
from urllib.parse import urlparse

from tf_cyclegan import fs
from tf_cyclegan.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# The bundled samples (package data): fluent (the quickstart: Fluent Emoji Flat -> 3D) and emoji (Noto -> Twemoji).
BUNDLED = {name: fs.PACKAGE / "datasets" / name for name in ("fluent", "emoji")}
_TFDS_NAME = re.compile(r"^[a-z][a-z0-9_]*(/[a-z0-9_.\-]+)?(:[0-9.*]+)?$")
OFFLINE_TIMEOUT = 8.0


class DataError(UserError):
    """A problem with the user's data; the message is one line naming the file, folder or flag."""


@dataclasses.dataclass
class Domain:
    """The images of one domain split (e.g. trainA)."""

    split: str
    origin: str  # a folder, or tfds:<name>/<split>
    items: list  # file paths (str) or encoded bytes
    labels: list  # file names relative to the origin, or TFDS example numbers
    skipped: list = dataclasses.field(default_factory=list)  # files that are not images

    @property
    def in_memory(self):
        return bool(self.items) and isinstance(self.items[0], bytes)

    def item_tensor(self):
        """The items as a string tensor: file paths as the bytes the file system holds (any encoding)."""
        # Here, not at the top: sources stays TensorFlow-free, so a missing dataset is reported before TF loads.
        import tensorflow as tf

        return tf.constant(self.items if self.in_memory else [os.fsencode(p) for p in self.items])

    def __len__(self):
        return len(self.items)

    def subset(self, keep):
        keep = sorted(keep)
        return dataclasses.replace(self, items=[self.items[i] for i in keep], labels=[self.labels[i] for i in keep])


@dataclasses.dataclass
class Domains:
    description: str
    train_a: Domain
    train_b: Domain
    test_a: Domain | None = None
    test_b: Domain | None = None

    def splits(self):
        return {
            name: domain
            for name, domain in (
                ("trainA", self.train_a),
                ("trainB", self.train_b),
                ("testA", self.test_a),
                ("testB", self.test_b),
            )
            if domain is not None
        }


def list_folder(folder, split=None, extensions=IMAGE_EXTENSIONS):
    """Files under ``folder`` with one of ``extensions`` (recursive, case-insensitive), sorted; the others skipped."""
    folder = fs.path(folder)
    if not folder.is_dir():
        raise DataError(f"no such folder: {folder}")
    images, skipped = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        (images if path.suffix.lower() in extensions else skipped).append(path)
    return Domain(
        split=split or folder.name,
        origin=str(folder),
        items=[str(p) for p in images],
        labels=[str(p.relative_to(folder)) for p in images],
        skipped=[str(p) for p in skipped],
    )


def _optional_folder(path, split):
    return list_folder(path, split) if path and fs.path(path).is_dir() else None


def _from_root(root, description):
    root = fs.path(root)
    missing = [s for s in ("trainA", "trainB") if not (root / s).is_dir()]
    if missing:
        raise DataError(
            f"--dataset: {root} has no {' or '.join(missing)} folder (expected trainA/ trainB/ [testA/ testB/])"
        )
    return Domains(
        description=description,
        train_a=list_folder(root / "trainA", "trainA"),
        train_b=list_folder(root / "trainB", "trainB"),
        test_a=_optional_folder(root / "testA", "testA"),
        test_b=_optional_folder(root / "testB", "testB"),
    )


def host_reachable(host, port=443, timeout=OFFLINE_TIMEOUT):
    """True if a TCP connection to host:port opens within ``timeout`` (DNS included)."""
    result = {}

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result["ok"] = True
        except OSError as error:
            result["error"] = error

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return result.get("ok", False)


def _download_host(builder):
    module = sys.modules.get(type(builder).__module__)
    url = getattr(module, "_DL_URL", None) or "https://storage.googleapis.com/"
    return urlparse(url).hostname


def _tfds_domains(name, data_dir, max_size):
    try:
        # TFDS only for a TFDS dataset: it is slow to import and folders do not need it.
        import tensorflow_datasets as tfds
    except ImportError as error:  # pragma: no cover - tensorflow-datasets is a dependency
        raise DataError(f"--dataset={name}: tensorflow-datasets cannot be imported ({error})") from None
    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
    except Exception as error:  # TFDS raises several types for unknown names/configs
        raise DataError(
            f"--dataset={name}: not a folder and not a known TFDS dataset ({str(error).splitlines()[0]})"
        ) from None
    if not builder.is_prepared():
        host = _download_host(builder)
        if not host_reachable(host):
            raise DataError(
                f"--dataset={name}: could not download the TFDS dataset (no connection to {host}) and it is not "
                f"prepared in {builder.data_dir}; download it where there is internet, or use a folder: "
                "--dataset=path/with/trainA_trainB or --domain_a=DIR --domain_b=DIR"
            )
        builder.download_and_prepare()
    splits = builder.info.splits
    missing = [s for s in ("trainA", "trainB") if s not in splits]
    if missing:
        raise DataError(f"--dataset={name}: TFDS splits {list(splits)} lack {', '.join(missing)}")
    image_key = next((k for k, f in builder.info.features.items() if isinstance(f, tfds.features.Image)), None)
    if image_key is None:
        raise DataError(f"--dataset={name}: the TFDS dataset has no image feature")

    def read(split):
        if split not in splits:
            return None
        dataset = builder.as_dataset(split=split, decoders={image_key: tfds.decode.SkipDecoding()}, shuffle_files=False)
        if max_size:
            dataset = dataset.take(max_size)
        items = [bytes(example[image_key].numpy()) for example in dataset]
        return Domain(split, f"tfds:{name}/{split}", items, [f"{split}/{i:06d}" for i in range(len(items))])

    return Domains(f"TFDS {name}", read("trainA"), read("trainB"), read("testA"), read("testB"))


def resolve(data):
    """Turns a :class:`~tf_cyclegan.config.DataConfig` into the four domain splits."""
    if data.domain_a or data.domain_b:
        domains = Domains(
            description=f"folders {data.domain_a} | {data.domain_b}",
            train_a=list_folder(data.domain_a, "domain_a"),
            train_b=list_folder(data.domain_b, "domain_b"),
            test_a=list_folder(data.test_a, "test_a") if data.test_a else None,
            test_b=list_folder(data.test_b, "test_b") if data.test_b else None,
        )
    elif data.dataset in BUNDLED:
        domains = _from_root(BUNDLED[data.dataset], f"bundled sample '{data.dataset}'")
    elif data.dataset.startswith("tfds:"):
        domains = _tfds_domains(data.dataset[5:], data.data_dir, data.max_dataset_size)
    elif fs.path(data.dataset).is_dir():
        domains = _from_root(data.dataset, f"folder {data.dataset}")
    elif _TFDS_NAME.match(data.dataset):
        domains = _tfds_domains(data.dataset, data.data_dir, data.max_dataset_size)
    else:
        raise DataError(
            f"--dataset: {data.dataset!r} is not a folder, {' or '.join(map(repr, BUNDLED))}, or a TFDS name"
        )
    if data.max_dataset_size:
        for domain in domains.splits().values():
            del domain.items[data.max_dataset_size :]
            del domain.labels[data.max_dataset_size :]
    return domains
