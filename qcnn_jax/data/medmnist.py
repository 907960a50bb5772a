"""TFDS builder for the 12 MedMNIST v2 2D datasets at 28, 64, 128 and 224 px.

One builder config per dataset × size (e.g. ``breastmnist_28``). Names, URLs, MD5s, label
names, task types and split sizes come from ``medmnist.INFO``. Records are written as
``array_record`` with ``tfds.features.Tensor`` features, so preparing and reading the data
needs no TensorFlow. Each record carries the image's official index within its split
(TFDS reorders records when it prepares them), so predictions can be written back in
MedMNIST's order.

Features of one record:
  image: (size, size, channels) uint8
  label: (n_labels,) int64 — one class index, or 14 binary labels for ChestMNIST
  index: () int64 — position in the official split
"""

import dataclasses
import os
import zipfile

import numpy as np
import tensorflow_datasets as tfds

from qcnn_jax.data import sources

DATASETS_2D = ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist",
               "breastmnist", "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist")
SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class MedMNISTConfig(tfds.core.BuilderConfig):
  """A MedMNIST dataset at one image size."""
  flag: str = ""
  size: int = 28


def config_name(flag: str, size: int) -> str:
  """Builder config name for dataset `flag` at `size` px, e.g. "breastmnist_28"."""
  return f"{flag}_{size}"


def task_of(flag: str) -> str:
  """MedMNIST task type: binary-class, multi-class, ordinal-regression or multi-label, binary-class."""
  return sources.INFO[flag]["task"]


def num_labels(flag: str) -> int:
  """Length of the stored label vector: 14 for multi-label ChestMNIST, else 1."""
  return len(sources.INFO[flag]["label"]) if task_of(flag).startswith("multi-label") else 1


def _read_error(path: os.PathLike, e: Exception) -> sources.ChecksumError:
  return sources.ChecksumError(f"{path} could not be read as a MedMNIST file ({e}); delete it and download it again.")


def npz_split_shape(path: os.PathLike, split: str) -> tuple[int, ...]:
  """Shape of the `{split}_images` array of a MedMNIST `.npz`, read from its header only."""
  try:
    with zipfile.ZipFile(path) as archive, archive.open(f"{split}_images.npy") as f:
      return _npy_header(f)[0]
  except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise _read_error(path, e) from e


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
  version = np.lib.format.read_magic(f)
  read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
  shape, fortran_order, dtype = read(f)
  if fortran_order:
    raise ValueError("Fortran-ordered arrays are not MedMNIST's layout")
  return shape, dtype


def iter_npz_split(path: os.PathLike, split: str, chunk: int = 1024):
  """Yields (images (n, H, W, C) uint8, labels (n, L)) blocks of `chunk` rows of one split of a
  MedMNIST `.npz`, streamed from the archive: memory O(chunk), not O(split)."""
  try:
    with np.load(path) as packed:
      labels = packed[f"{split}_labels"]
    labels = labels.reshape(len(labels), -1)
    with zipfile.ZipFile(path) as archive, archive.open(f"{split}_images.npy") as f:
      shape, dtype = _npy_header(f)
      row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
      for start in range(0, shape[0], chunk):
        rows = min(chunk, shape[0] - start)
        block = np.frombuffer(f.read(rows * row_bytes), dtype).reshape((rows,) + tuple(shape[1:]))
        yield (block if block.ndim == 4 else block[..., None]), labels[start:start + rows]
  except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise _read_error(path, e) from e


class MedmnistV2(tfds.core.GeneratorBasedBuilder):
  """MedMNIST v2 (Yang et al., Scientific Data 2023), 2D datasets, official splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "MedMNIST v2/v3 release files (Zenodo record 10519652)."}
  BUILDER_CONFIGS = [
      MedMNISTConfig(name=config_name(flag, size), flag=flag, size=size,
                     description=f"{flag} at {size}x{size} px")
      for flag in DATASETS_2D for size in SIZES
  ]

  def __init__(self, *, source_dir: str | None = None, allow_download: bool = True, **kwargs):
    """Args: source_dir: folder with the official `.npz` (searched first); allow_download:
    download from the official release when no local copy exists; kwargs: for TFDS."""
    self._source_dir = source_dir
    self._allow_download = allow_download
    super().__init__(**kwargs)

  def download_and_prepare(self, *args, **kwargs):
    """TFDS's; when the source file cannot be found, the dataset's folder it made is removed again."""
    folder = os.path.dirname(self.data_dir)  # {tfds_dir}/medmnist_v2/{flag}_{size}, above the version
    existed = os.path.exists(folder)
    try:
      return super().download_and_prepare(*args, **kwargs)
    except sources.DatasetNotFoundError:
      if not existed:
        sources.remove_empty_dirs(folder)
      raise

  def _info(self) -> tfds.core.DatasetInfo:
    info = sources.INFO[self.builder_config.flag]
    size = self.builder_config.size
    return self.dataset_info_from_configs(
        description=info["description"],
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(size, size, info["n_channels"]), dtype=np.uint8),
            "label": tfds.features.Tensor(shape=(num_labels(self.builder_config.flag),), dtype=np.int64),
            "index": tfds.features.Scalar(dtype=np.int64),
        }),
        homepage="https://medmnist.com/",
        citation=CITATION,
        metadata=tfds.core.MetadataDict(task=info["task"], label_names=info["label"],
                                        license=info["license"]),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Files are located and MD5-verified by `sources`.
    flag, size = self.builder_config.flag, self.builder_config.size
    path = sources.locate_medmnist(flag, size, self._source_dir, self._allow_download)
    expected = sources.INFO[flag]["n_samples"]
    for split in SPLITS:
      shape = npz_split_shape(path, split)
      if shape[0] != expected[split] or tuple(shape[1:3]) != (size, size):
        raise sources.ChecksumError(
            f"{path} {split} split holds {shape} images; the official release has "
            f"{expected[split]} of {size}x{size}. Delete the file and download it again.")
    # Images stream from the archive as TFDS writes them: preparing 224 px PathMNIST (16.3 GB of
    # images) holds a few blocks of rows plus TFDS's shuffle buffer (at most 1 GB), not the splits.
    return {split: self._generate_examples(path, split) for split in SPLITS}

  def _generate_examples(self, path, split: str):
    i = 0
    for images, labels in iter_npz_split(path, split):
      for image, label in zip(images, labels):
        yield i, {"image": image, "label": label.astype(np.int64), "index": i}
        i += 1


CITATION = """@article{medmnistv2,
  title={MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical image classification},
  author={Yang, Jiancheng and Shi, Rui and Wei, Donglai and Liu, Zequan and Zhao, Lin and Ke, Bilian and Pfister, Hanspeter and Ni, Bingbing},
  journal={Scientific Data}, volume={10}, number={1}, pages={41}, year={2023}
}"""
