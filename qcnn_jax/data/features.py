"""Frozen backbone features as data: one `.npz` per dataset and backbone (`qcnn_jax.studies.features`
extracts them from a trained run), read by `load` and trained on by `qcnn_jax.training.frozen`.

  {split}_features  (N, D) float32   pooled ResNet features (D = 2048 for ResNet-50)
  {split}_labels    (N, L) int       labels as the dataset stores them
  {split}_index     (N,)   int       official example indices (predictions CSVs use them)
  fc_kernel, fc_bias  (D, K), (K,)   the run's own linear head (plain ResNets only)
  train_mean, train_std  (D,)        per-feature mean and std of the training split (`standardized`)
  meta              JSON string      dataset, task, label names, num_outputs, source run, epoch

Heads trained on these features all see identical inputs, so head designs compare exactly and
cheaply.
"""

import dataclasses
import json
import os
from typing import Any

import numpy as np

from qcnn_jax.evaluation import reports

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class FeatureSet:
  """Backbone features of one dataset: per split (features, labels, index) and metadata."""

  features: dict[str, np.ndarray]
  labels: dict[str, np.ndarray]
  index: dict[str, np.ndarray]
  meta: dict[str, Any]
  fc: tuple[np.ndarray, np.ndarray] | None = None

  def train_statistics(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(D,) float32 mean and std of each feature over the training split (its `rows` only, when
    given); a constant feature (a ReLU channel dead on every training image) gets std 1, so it
    standardises to 0."""
    train = self.features["train"][slice(None) if rows is None else rows].astype(np.float64)
    std = train.std(axis=0)
    return train.mean(axis=0).astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32)

  def standardized(self, rows: np.ndarray | None = None) -> "FeatureSet":
    """The same set with every split's features mapped to (x − mean) / std of the training split
    (of its `rows` only, when given: a subset fits its own statistics); pooled post-ReLU features
    differ in scale by orders of magnitude between channels."""
    mean, std = self.train_statistics(rows)
    return dataclasses.replace(self, features={s: (x - mean) / std for s, x in self.features.items()})

  @property
  def task(self) -> str:
    return self.meta["task"]

  @property
  def num_outputs(self) -> int:
    return int(self.meta["num_outputs"])

  @property
  def dim(self) -> int:
    return int(self.features["train"].shape[1])

  def save(self, path: str) -> str:
    """Writes the set to `path` (.npz) atomically; returns the path."""
    arrays = {}
    for split in self.features:
      arrays.update({f"{split}_features": self.features[split], f"{split}_labels": self.labels[split],
                     f"{split}_index": self.index[split]})
    if self.fc is not None:
      arrays["fc_kernel"], arrays["fc_bias"] = self.fc
    arrays["train_mean"], arrays["train_std"] = self.train_statistics()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, meta=np.array(json.dumps(reports.to_jsonable(self.meta))), **arrays)
    os.replace(tmp, path)
    return path


def load(path: str) -> FeatureSet:
  """Reads a feature file written by `FeatureSet.save`."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"no feature file {path}; make one with python -m experiments.extract_features "
                            "--workdir=<finished run> --out=<file.npz>")
  with np.load(path) as f:
    meta = json.loads(str(f["meta"]))
    splits = [s for s in SPLITS if f"{s}_features" in f]
    fc = (f["fc_kernel"], f["fc_bias"]) if "fc_kernel" in f else None
    return FeatureSet({s: f[f"{s}_features"] for s in splits}, {s: f[f"{s}_labels"] for s in splits},
                      {s: f[f"{s}_index"] for s in splits}, meta, fc)

