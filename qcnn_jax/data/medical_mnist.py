"""TFDS builder for the Kaggle "Medical MNIST" set, the dataset of Hassan et al. (2024).

58,954 grayscale 64×64 images in 6 classes (AbdomenCT, BreastMRI, CXR, ChestCT, Hand,
HeadCT), gathered from TCIA, the RSNA Bone Age challenge and NIH Chest X-ray (CC BY-SA 4.0;
MONAI calls the same set "MedNIST"). It is read either as distributed (one folder of JPEGs
per class) or from a packed `.npz` (`images` (N, 64, 64) uint8, `labels` (N,), `class_names`).

There is no official split. Images are ordered by their source path (class, then file name)
and split per class by a keyed hash of (seed, index), which is the same on every machine
and every numpy version: a seeded, stratified split. Configs: ``split_80_10_10`` (default,
train/val/test) and ``split_80_20`` (train/test, the setting of Hassan et al.).

Features of one record: image (64, 64, 1) uint8, label (1,) int64, index () int64 (row in
path order).
"""

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil
import zipfile

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from qcnn_jax.data import cache, sources

CLASS_NAMES = ("AbdomenCT", "BreastMRI", "CXR", "ChestCT", "Hand", "HeadCT")
NUM_IMAGES = 58_954
CLASS_COUNTS = (10_000, 8_954, 10_000, 10_000, 10_000, 10_000)  # images per class of the full set
SOURCE_STAMP = "source.json"  # beside a prepared copy: the counts and digest of the source it came from
IMAGE_SIZE = 64
NPZ_NAME = "medical_mnist_64.npz"
SPLIT_SCHEMES = {"80_10_10": {"train": 0.8, "val": 0.1, "test": 0.1},
                 "80_20": {"train": 0.8, "test": 0.2}}


@dataclasses.dataclass
class MedicalMNISTConfig(tfds.core.BuilderConfig):
  """One split scheme of Medical MNIST with its seed."""
  scheme: str = "80_10_10"
  seed: int = 0


def make_config(scheme: str = "80_10_10", seed: int = 0) -> MedicalMNISTConfig:
  """Builder config for split `scheme` ("80_10_10" or "80_20") drawn with `seed`."""
  if scheme not in SPLIT_SCHEMES:
    raise ValueError(f"Unknown Medical MNIST split {scheme!r}; choose one of {list(SPLIT_SCHEMES)}.")
  name = f"split_{scheme}" + (f"_seed{seed}" if seed else "")
  return MedicalMNISTConfig(name=name, scheme=scheme, seed=seed,
                            description=f"stratified {scheme.replace('_', '/')} split, seed {seed}")


def stratified_split(labels: np.ndarray, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
  """Seeded stratified split that is identical on every machine.

  Within each class, indices are ordered by the BLAKE2b hash of "seed:index"; the first
  floor(f·n + 0.5) go to the first split, and so on; the last split takes the rest.

  Args:
    labels: (N,) integer class of each example.
    fractions: split name → fraction of each class, in order; must sum to 1.
    seed: integer seed.

  Returns:
    Split name → sorted (M,) int64 indices into `labels`.
  """
  if abs(sum(fractions.values()) - 1.0) > 1e-9:
    raise ValueError(f"Split fractions {fractions} do not sum to 1.")
  parts = {name: [] for name in fractions}
  for cls in np.unique(labels):
    members = np.flatnonzero(labels == cls)
    keys = [hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest() for i in members]
    members = members[np.argsort(np.array(keys, dtype="S8"), kind="stable")]
    start = 0
    names = list(fractions)
    for j, name in enumerate(names):
      stop = len(members) if j == len(names) - 1 else start + int(np.floor(fractions[name] * len(members) + 0.5))
      parts[name].append(members[start:stop])
      start = stop
  return {name: np.sort(np.concatenate(p)).astype(np.int64) for name, p in parts.items()}


def default_dirs() -> list[pathlib.Path]:
  """Folders searched after an explicit one: `$MEDICAL_MNIST_ROOT` if set, else `~/.medical_mnist`."""
  root = os.environ.get("MEDICAL_MNIST_ROOT")
  return [pathlib.Path(root or "~/.medical_mnist").expanduser()]


def _class_tree(folder: pathlib.Path) -> pathlib.Path | None:
  """The folder holding the six class folders: `folder` itself or its `resized/`."""
  for root in (folder, folder / "resized"):
    if all((root / name).is_dir() for name in CLASS_NAMES):
      return root
  return None


def _jpeg_paths(root: pathlib.Path, name: str) -> list[pathlib.Path]:
  return sorted(p for p in (root / name).iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))


def read_jpeg_tree(root: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """Decodes `root/<class>/*.jpeg` in path order: images (N, 64, 64) uint8, labels (N,) int64."""
  images, labels = [], []
  for label, name in enumerate(CLASS_NAMES):
    for path in _jpeg_paths(root, name):
      try:
        with Image.open(path) as img:
          pixels = np.asarray(img.convert("L"))
      except OSError as e:  # PIL's truncated or unidentified image errors are OSErrors
        raise sources.ChecksumError(f"{path} cannot be decoded ({e}): it is truncated or corrupt. Extract the "
                                    f"Kaggle archive again.") from e
      if pixels.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"{path} is {pixels.shape[::-1]} px; Medical MNIST images are 64x64.")
      images.append(pixels)
      labels.append(label)
  return np.stack(images), np.asarray(labels, np.int64)


def read_npz(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """Reads a packed Medical MNIST `.npz`: images (N, 64, 64) uint8, labels (N,) int64."""
  try:
    with np.load(path) as data:
      images, labels, names = data["images"], data["labels"], tuple(data["class_names"].tolist())
  except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise sources.ChecksumError(
        f"{path} is not a readable Medical MNIST .npz ({e}): it is truncated or corrupt. "
        f"Replace it, or point data_dir at the class-per-folder JPEG tree.") from e
  if names != CLASS_NAMES:
    raise ValueError(f"{path} has classes {names}; expected {CLASS_NAMES}.")
  if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or len(images) != len(labels):
    raise ValueError(f"{path} holds images {images.shape} and labels {labels.shape}; "
                     f"expected (N, 64, 64) and (N,).")
  return images, labels.astype(np.int64)


def find_source(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """The Medical MNIST source to read: a `.npz` file or the root of the JPEG tree.

  Looks in `data_dir` (a `.npz` file, a folder with `medical_mnist_64.npz`, or the JPEG
  tree), then `$MEDICAL_MNIST_ROOT` or `~/.medical_mnist`.
  """
  folders = ([pathlib.Path(data_dir).expanduser()] if data_dir else []) + default_dirs()
  for folder in folders:
    if folder.is_file():
      return folder
    if (folder / NPZ_NAME).is_file():
      return folder / NPZ_NAME
    tree = _class_tree(folder)
    if tree is not None:
      return tree
  raise sources.DatasetNotFoundError(
      f"Medical MNIST was not found in {', '.join(map(str, folders))}. It cannot be downloaded "
      f"automatically (Kaggle needs a login): download 'Medical MNIST' (andrewmvd) from "
      f"https://www.kaggle.com/datasets/andrewmvd/medical-mnist, unpack it so that the folders "
      f"{', '.join(CLASS_NAMES)} lie in one of those folders (or put {NPZ_NAME} there), or pass "
      f"--config.data_dir=DIR.")


def load_arrays(data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Finds (`find_source`) and reads Medical MNIST: images (N, 64, 64) uint8, labels (N,) int64,
  in path order."""
  source = find_source(data_dir)
  return read_npz(source) if source.is_file() else read_jpeg_tree(source)


def source_summary(source: pathlib.Path) -> dict:
  """{"counts": images per class, "digest": ...} of a source, without decoding images.

  The digest is the MD5 of a `.npz`, or of the JPEG tree's (relative path, size) list.
  """
  if source.is_file():
    try:
      with np.load(source) as packed:
        counts = np.bincount(packed["labels"].astype(np.int64), minlength=len(CLASS_NAMES))
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile):
      return {"counts": None, "digest": None}  # unreadable: read_npz says why when the builder reads it
    return {"counts": [int(c) for c in counts], "digest": sources.md5sum(source)}
  listing, counts = hashlib.md5(), []
  for name in CLASS_NAMES:
    paths = _jpeg_paths(source, name)
    counts.append(len(paths))
    for path in paths:
      listing.update(f"{path.relative_to(source)}:{path.stat().st_size}\n".encode())
  return {"counts": counts, "digest": listing.hexdigest()}


def check_complete(source: pathlib.Path, counts: list[int] | None) -> None:
  """Refuses (ChecksumError) a source whose images per class differ from the full set's."""
  if counts is not None and tuple(counts) != tuple(CLASS_COUNTS):
    found = ", ".join(f"{n} {c}/{e}" for n, c, e in zip(CLASS_NAMES, counts, CLASS_COUNTS))
    raise sources.ChecksumError(
        f"{source} is not the full Medical MNIST set (images per class found/expected: {found}): a partial or "
        f"modified copy would be prepared and cached as the real one. Extract the Kaggle archive again, completely.")


def prepare(builder: "MedicalMnist") -> None:
  """Prepares `builder` from a complete source; a copy prepared from another source is rebuilt."""
  source = find_source(builder.source_dir)
  summary = source_summary(source)
  check_complete(source, summary["counts"])
  stamp = pathlib.Path(builder.data_dir) / SOURCE_STAMP
  if builder.is_prepared():
    made_from = json.loads(stamp.read_text()) if stamp.is_file() else None
    if made_from is None or made_from["digest"] != summary["digest"]:
      logging.warning("%s was prepared from %s; rebuilding it from %s.", builder.data_dir,
                      "another source" if made_from else "an unrecorded source", source)
      shutil.rmtree(builder.data_dir)

  def build() -> None:
    builder.download_and_prepare()
    stamp.write_text(json.dumps(summary))

  cache.prepare(builder, lambda: source, build)


class MedicalMnist(tfds.core.GeneratorBasedBuilder):
  """Kaggle Medical MNIST (6 classes, 64×64 grayscale) with a seeded stratified split."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Full set of 58,954 images; hash-based stratified splits."}
  BUILDER_CONFIGS = [make_config("80_10_10"), make_config("80_20")]

  def __init__(self, *, source_dir: str | None = None, **kwargs):
    """Args: source_dir: `.npz` file, folder holding it, or JPEG tree; kwargs: for TFDS."""
    self.source_dir = source_dir
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8),
            "label": tfds.features.Tensor(shape=(1,), dtype=np.int64),
            "index": tfds.features.Scalar(dtype=np.int64),
        }),
        homepage="https://github.com/apolanco3225/Medical-MNIST-Classification",
        metadata=tfds.core.MetadataDict(task="multi-class",
                                        label_names={str(i): n for i, n in enumerate(CLASS_NAMES)},
                                        license="CC BY-SA 4.0"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    images, labels = load_arrays(self.source_dir)
    config = self.builder_config
    splits = stratified_split(labels, SPLIT_SCHEMES[config.scheme], config.seed)
    return {name: self._generate_examples(images, labels, idx) for name, idx in splits.items()}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray):
    for i in indices:
      yield int(i), {"image": images[i][..., None], "label": labels[i:i + 1], "index": int(i)}
