"""Datasets: MedMNIST v2 (2D), Kaggle Medical MNIST and a folder of your own images, through tensorflow-datasets.

`load_dataset` prepares the TFDS builder once (array_record files under `tfds_dir`) and
returns random-access data sources per split; `qcnn_jax.data.pipeline` batches them.
"""

import dataclasses
from typing import Any

from qcnn_jax.data import cache, folder, medical_mnist, medmnist, sources
from qcnn_jax.data.folder import FolderDatasetError
from qcnn_jax.data.sources import ChecksumError, DatasetNotFoundError

DATASETS = medmnist.DATASETS_2D + ("medical_mnist", "folder")


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A prepared dataset: metadata plus one random-access source per split.

  Attributes:
    name: "breastmnist", ..., or "medical_mnist".
    task: MedMNIST task string ("binary-class", "multi-class", "ordinal-regression",
      "multi-label, binary-class").
    label_names: class (or label) names in label order.
    num_outputs: logits a model needs: 1 for binary, C for multi-class/ordinal, L for multi-label.
    image_shape: (H, W, C) of stored images.
    splits: split name ("train", "val", "test") → data source of records
      {"image": (H, W, C) uint8, "label": (L,) int64, "index": () int64}.
    files: folder datasets only: the prepared copy's files.json (classes, each split's files, skipped
      files; `folder.prepare`), None otherwise.
  """
  name: str
  task: str
  label_names: tuple[str, ...]
  num_outputs: int
  image_shape: tuple[int, int, int]
  splits: dict[str, Any]
  files: dict | None = None

  @property
  def sizes(self) -> dict[str, int]:
    """Number of examples per split."""
    return {name: len(src) for name, src in self.splits.items()}


def num_outputs_for(task: str, num_labels: int) -> int:
  """Logits for a task: 1 for binary-class (sigmoid), else one per class or label."""
  return 1 if task == "binary-class" else num_labels


def load_dataset(name: str, *, size: int = 28, data_dir: str | None = None, tfds_dir: str | None = None,
                 allow_download: bool = True, split_scheme: str = "80_10_10", split_seed: int = 0,
                 image_channels: int | None = None, skip_unreadable: bool = False) -> Dataset:
  """Prepares (once) and opens a dataset.

  Args:
    name: a MedMNIST 2D flag (e.g. "breastmnist") or "medical_mnist".
    size: MedMNIST image size in pixels (28, 64, 128, 224); Medical MNIST is 64 only.
    data_dir: folder (or file, for Medical MNIST) with the source data, searched first.
    tfds_dir: where TFDS writes prepared array_record files (TFDS default when None).
    allow_download: download missing MedMNIST files from the official release.
    split_scheme, split_seed: Medical MNIST split ("80_10_10" or "80_20") and its seed.
    image_channels, skip_unreadable: folder datasets' channels and unreadable files (`folder.prepare`).

  Returns:
    The `Dataset`.
  """
  listing = None  # a folder dataset's files.json
  if name == "medical_mnist":
    if size != medical_mnist.IMAGE_SIZE:
      raise ValueError(f"Medical MNIST images are 64 px; got size={size}. Use resize in the "
                       f"pipeline to train at another size.")
    config = medical_mnist.make_config(split_scheme, split_seed)
    if config.name in medical_mnist.MedicalMnist.builder_configs:  # TFDS wants registered ones by name
      config = config.name
    builder = medical_mnist.MedicalMnist(config=config, source_dir=data_dir, data_dir=tfds_dir, file_format="array_record")
    medical_mnist.prepare(builder)
    task, labels = "multi-class", medical_mnist.CLASS_NAMES
  elif name == "folder":
    builder, listing = folder.prepare(data_dir, size=size, channels=image_channels, tfds_dir=tfds_dir,
                                      split_scheme=split_scheme, split_seed=split_seed, skip_unreadable=skip_unreadable)
    task, labels = listing["task"], tuple(listing["class_names"])
  elif name in medmnist.DATASETS_2D:
    if size not in medmnist.SIZES:
      raise ValueError(f"Unknown MedMNIST size {size}; choose one of {medmnist.SIZES}.")
    builder = medmnist.MedmnistV2(config=medmnist.config_name(name, size), source_dir=data_dir,
                                  allow_download=allow_download, data_dir=tfds_dir, file_format="array_record")
    cache.prepare(builder, lambda: sources.locate_medmnist(name, size, data_dir, allow_download))
    info = sources.INFO[name]
    task = info["task"]
    labels = tuple(info["label"][str(i)] for i in range(len(info["label"])))
  elif "mnist3d" in name:
    raise ValueError(f"{name!r} is a 3D MedMNIST set: 3D sets are not supported (yet); choose one of "
                     f"{', '.join(DATASETS)}.")
  else:
    raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
  features = builder.info.features
  return Dataset(name=name, task=task, label_names=labels,
                 num_outputs=num_outputs_for(task, len(labels)),
                 image_shape=tuple(features["image"].shape), splits=dict(builder.as_data_source()), files=listing)


__all__ = ["ChecksumError", "DATASETS", "FolderDatasetError", "Dataset", "DatasetNotFoundError", "load_dataset", "num_outputs_for"]
