"""Input pipeline: grain over TFDS data sources → shuffled, preprocessed numpy batches.

A batch is a dict of numpy arrays:
  image: (B, H, W, C) float32, normalised ((x / 255 - mean) / std)
  label: (B, L) int64
  index: (B,) int64, the official index of each image (for predictions in MedMNIST order)
  mask:  (B,) bool, False on padding rows (evaluation batches only are padded)

Training order is a grain global shuffle seeded by `seed` and reshuffled every epoch, so
epoch `e` of a run is the same on every machine and after a resume.
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
    augment: random horizontal flip and a random crop of the image padded by 1/8 of its side.
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
  """(B, H, W, C) uint8 → float32, scaled to [0, 1], normalised, channels adjusted."""
  x = (images.astype(np.float32) / 255.0 - prep.mean) / prep.std
  if prep.channels == 3 and x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  elif prep.channels == 1 and x.shape[-1] == 3:
    x = x.mean(axis=-1, keepdims=True)
  return x


def _element(record: dict[str, Any], prep: Preprocess) -> dict[str, np.ndarray]:
  image = record["image"]
  if prep.resize:
    image = resize_image(image, prep.resize, prep.resize_method)
  return {"image": image, "label": np.asarray(record["label"], np.int64),
          "index": np.asarray(record["index"], np.int64)}


def _finish_batch(batch: dict[str, np.ndarray], prep: Preprocess) -> dict[str, np.ndarray]:
  return {**batch, "image": normalise(batch["image"], prep),
          "mask": batch.get("mask", np.ones(len(batch["index"]), bool))}


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


def train_batches(source: Sequence, *, batch_size: int, seed: int, epoch: int, prep: Preprocess,
                  num_threads: int = 2) -> Iterator[dict[str, np.ndarray]]:
  """Batches of one training epoch, in the seeded order of that epoch.

  Args:
    source: random-access records {"image", "label", "index"} (a TFDS data source).
    batch_size: global batch size; the last partial batch of an epoch is dropped.
    seed: shuffling (and augmentation) seed; epoch `e` is always the same for a seed.
    epoch: 0-based epoch number.
    prep: preprocessing.
    num_threads: grain reader threads (0 reads in the calling thread).

  Yields:
    Batch dicts (see module docstring), `steps_per_epoch(len(source), batch_size)` of them.
  """
  n = len(source)
  steps = steps_per_epoch(n, batch_size)
  ds = grain.MapDataset.source(source).seed(seed).shuffle().repeat()
  ds = ds[epoch * n: epoch * n + steps * batch_size]
  ds = ds.map(lambda r: _element(r, prep))
  if prep.augment:
    ds = ds.random_map(lambda e, rng: {**e, "image": augment_image(e["image"], rng)})
  ds = ds.batch(batch_size, drop_remainder=True).map(lambda b: _finish_batch(b, prep))
  return _iterate(ds, num_threads)


def eval_batches(source: Sequence, *, batch_size: int, prep: Preprocess,
                 num_threads: int = 2) -> Iterator[dict[str, np.ndarray]]:
  """All examples of a split in stored order, in batches of exactly `batch_size`.

  The last batch is padded with zero images whose `mask` is False, so that no example is
  dropped or counted twice and every batch has one shape (one compiled eval step).
  """
  eval_prep = dataclasses.replace(prep, augment=False)

  def pad(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = batch_size - len(batch["index"])
    padded = {k: np.concatenate([v, np.zeros((missing,) + v.shape[1:], v.dtype)]) for k, v in batch.items()}
    padded["mask"] = np.arange(batch_size) < len(batch["index"])
    return _finish_batch(padded, eval_prep)

  ds = grain.MapDataset.source(source).map(lambda r: _element(r, eval_prep))
  ds = ds.batch(batch_size, drop_remainder=False).map(pad)
  return _iterate(ds, num_threads)
