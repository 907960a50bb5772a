"""Input pipeline: grain over TFDS data sources → shuffled, preprocessed numpy batches.

A batch is a dict of numpy arrays:
  image: (B, H, W, C) float32, normalised ((x / 255 - mean) / std)
  label: (B, L) int64
  index: (B,) int64, the official index of each image (for predictions in MedMNIST order)
  mask:  (B,) bool, False on padding rows (evaluation batches only are padded)

Training order is a permutation seeded by (seed, epoch) (`epoch_order`), so epoch `e` of a
run is the same on every run and after a resume. grain maps batch numbers to batches (and
prefetches them in threads); each batch is gathered at once from an in-memory `ArraySplit`
(see `materialise`) or, for splits too large for memory, read record by record.
"""

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import grain
import numpy as np
from PIL import Image

RESIZE_METHODS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC}


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """How stored uint8 images become model inputs.

  Attributes:
    mean, std: normalisation on the [0, 1] scale (MedMNIST uses 0.5 and 0.5).
    channels: output channels; 3 repeats grayscale to RGB, None keeps the stored count.
    resize: output side in pixels, None keeps the native size. This is "native 28 px
      upsampled" (e.g. MedMNIST's ResNet (224) on 28 px data), distinct from loading a
      native 224 px release.
    resize_method: "nearest" (what MedMNIST's code uses), "bilinear" or "bicubic".
    augment: random horizontal flip and a random crop of the image padded by 1/8 of its side
      (drawn from a generator seeded by (seed, epoch, step)).
  """
  mean: float = 0.5
  std: float = 0.5
  channels: int | None = None
  resize: int | None = None
  resize_method: str = "nearest"
  augment: bool = False

  def __post_init__(self):
    if self.resize_method not in RESIZE_METHODS:
      raise ValueError(f"resize_method must be one of {list(RESIZE_METHODS)}, got {self.resize_method!r}.")
    if self.channels not in (None, 1, 3):
      raise ValueError(f"channels must be None, 1 or 3, got {self.channels}.")


def resize_image(image: np.ndarray, side: int, method: str) -> np.ndarray:
  """Resizes one (H, W, C) uint8 image to (side, side, C) with PIL."""
  if image.shape[0] == side and image.shape[1] == side:
    return image
  channels = [Image.fromarray(image[..., c]).resize((side, side), RESIZE_METHODS[method])
              for c in range(image.shape[-1])]
  return np.stack([np.asarray(c) for c in channels], axis=-1)


def augment_image(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Random horizontal flip and random crop (reflect-padded by side // 8) of one (H, W, C) image."""
  if rng.random() < 0.5:
    image = image[:, ::-1]
  pad = max(1, image.shape[0] // 8)
  padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
  dy, dx = rng.integers(0, 2 * pad + 1, size=2)
  return np.ascontiguousarray(padded[dy:dy + image.shape[0], dx:dx + image.shape[1]])


def normalise(images: np.ndarray, prep: Preprocess) -> np.ndarray:
  """(B, H, W, C) uint8 → float32, scaled to [0, 1], normalised, channels adjusted; numpy or JAX
  arrays (array methods only, so an exported model runs the same steps, `qcnn_jax.serving`)."""
  x = (images.astype(np.float32) / 255.0 - prep.mean) / prep.std
  if prep.channels == 3 and x.shape[-1] == 1:
    x = x.repeat(3, axis=-1)
  elif prep.channels == 1 and x.shape[-1] == 3:
    x = x.mean(axis=-1, keepdims=True)
  return x


@dataclasses.dataclass(frozen=True)
class ArraySplit:
  """A split held in memory: images (N, H, W, C) uint8, labels (N, L) int64, index (N,) int64.

  Reading a TFDS data source record by record costs tens of microseconds per image; gathering
  whole batches from arrays is ~30× faster, so small datasets are materialised once.
  """
  image: np.ndarray
  label: np.ndarray
  index: np.ndarray

  def __len__(self) -> int:
    return len(self.index)

  @classmethod
  def from_source(cls, source: Sequence, chunk: int = 4096) -> "ArraySplit":
    """Reads every record of a random-access source (in stored order) into arrays."""
    parts = {"image": [], "label": [], "index": []}
    for start in range(0, len(source), chunk):
      records = _read(source, range(start, min(start + chunk, len(source))))
      for key in parts:
        parts[key].append(np.stack([np.asarray(r[key]) for r in records]))
    return cls(**{k: np.concatenate(v).astype(np.uint8 if k == "image" else np.int64) for k, v in parts.items()})


def _read(source: Sequence, indices) -> list[dict]:
  indices = [int(i) for i in indices]
  if hasattr(source, "__getitems__"):
    return source.__getitems__(indices)
  return [source[i] for i in indices]


def materialise(source: Sequence, max_bytes: int = 4 << 30) -> Sequence:
  """`source` as an in-memory `ArraySplit` when its images fit in `max_bytes`, else unchanged."""
  if isinstance(source, ArraySplit) or not len(source):
    return source
  if len(source) * np.asarray(source[0]["image"]).nbytes > max_bytes:
    return source
  return ArraySplit.from_source(source)


def column(source: Sequence, key: str) -> np.ndarray:
  """One field ("label" (N, L) or "index" (N,)) of every record, without gathering the images."""
  if isinstance(source, ArraySplit):
    return getattr(source, key)
  return np.stack([np.asarray(r[key]) for r in _read(source, np.arange(len(source)))])


def gather(source: Sequence, indices: np.ndarray) -> dict[str, np.ndarray]:
  """Raw batch {"image" uint8, "label", "index"} of the records at `indices`."""
  if isinstance(source, ArraySplit):
    return {"image": source.image[indices], "label": source.label[indices], "index": source.index[indices]}
  records = _read(source, indices)
  return {k: np.stack([np.asarray(r[k]) for r in records]) for k in ("image", "label", "index")}


def _resized(images: np.ndarray, prep: Preprocess) -> np.ndarray:
  if not prep.resize:
    return images
  return np.stack([resize_image(im, prep.resize, prep.resize_method) for im in images])


def preprocess(images: np.ndarray, prep: Preprocess) -> np.ndarray:
  """Model inputs (B, H', W', C') float32 of stored images (B, H, W, C) uint8, as evaluation sees them."""
  return normalise(_resized(images, prep), prep)


def _prepare(raw: dict[str, np.ndarray], prep: Preprocess, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
  """Resize, augment (when `rng` is given) and normalise a raw batch; adds an all-True mask."""
  images = _resized(raw["image"], prep)
  if rng is not None:
    images = np.stack([augment_image(im, rng) for im in images])
  return {"image": normalise(images, prep), "label": raw["label"].astype(np.int64),
          "index": raw["index"].astype(np.int64), "mask": np.ones(len(images), bool)}


def _iterate(ds: grain.MapDataset, num_threads: int) -> Iterator[dict[str, np.ndarray]]:
  if num_threads <= 0:
    return iter(ds)
  return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=4)))


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full training batches per epoch (the last partial batch is dropped)."""
  if num_examples < batch_size:
    raise ValueError(f"The training split has {num_examples} examples, fewer than one batch of "
                     f"{batch_size}; lower batch_size.")
  return num_examples // batch_size


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
  """(n,) permutation of example indices for one epoch: numpy's PCG64 seeded by (seed, epoch)."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def train_batches(source: Sequence, *, batch_size: int, seed: int, epoch: int, prep: Preprocess,
                  num_threads: int = 2) -> Iterator[dict[str, np.ndarray]]:
  """Batches of one training epoch, in the seeded order of that epoch.

  Args:
    source: random-access records {"image", "label", "index"} (a TFDS data source) or an
      `ArraySplit`.
    batch_size: global batch size; the last partial batch of an epoch is dropped.
    seed: shuffling (and augmentation) seed; epoch `e` is always the same for a seed.
    epoch: 0-based epoch number.
    prep: preprocessing.
    num_threads: grain reader threads (0 reads in the calling thread).

  Yields:
    Batch dicts (see module docstring), `steps_per_epoch(len(source), batch_size)` of them.
  """
  steps = steps_per_epoch(len(source), batch_size)
  order = epoch_order(len(source), seed, epoch)[:steps * batch_size].reshape(steps, batch_size)

  def batch(step: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, epoch, step]) if prep.augment else None
    return _prepare(gather(source, order[step]), prep, rng)

  return _iterate(grain.MapDataset.range(steps).map(batch), num_threads)


def eval_batches(source: Sequence, *, batch_size: int, prep: Preprocess,
                 num_threads: int = 2) -> Iterator[dict[str, np.ndarray]]:
  """All examples of a split in stored order, in batches of exactly `batch_size`.

  The last batch is padded with zero images whose `mask` is False, so that no example is
  dropped or counted twice and every batch has one shape (one compiled eval step).
  """
  def padded(idx: np.ndarray) -> dict[str, np.ndarray]:
    batch = _prepare(gather(source, idx), prep, None)
    missing = batch_size - len(idx)
    if missing:
      raw = gather(source, idx[:1])
      filler = _prepare({k: np.zeros((missing,) + v.shape[1:], v.dtype) for k, v in raw.items()}, prep, None)
      batch = {k: np.concatenate([batch[k], filler[k]]) for k in batch}
      batch["mask"] = np.arange(batch_size) < len(idx)
    return batch

  n = len(source)
  ds = grain.MapDataset.range(-(-n // batch_size)).map(
      lambda b: padded(np.arange(b * batch_size, min((b + 1) * batch_size, n))))
  return _iterate(ds, num_threads)
