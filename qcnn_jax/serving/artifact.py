"""Loads and runs a model exported by `python -m experiments.export_model`, with jax and numpy alone.

This file imports nothing from qcnn_jax: the export copies it into the model folder as
`load_model.py`, so a colleague without this project runs the model with `pip install jax
flatbuffers` and

  from load_model import load_model
  model = load_model("exported_model")          # the folder the export wrote
  logits = model.apply(images)                  # (N, H, W, C) uint8 at model.input_shape -> (N, K) float32
  probabilities = model.probabilities(images)   # (N, K') per class (binary: [1 - p, p])

Files of an exported model:
  model.jax         the inference function, serialised by `jax.export` (StableHLO), for batches of
                    `batch_size` images: uint8 images in, normalisation inside, logits out
  params.npz        its parameters (Flax variables), one array per leaf, named by its path
  model.json        what runs it: parameter order, input shape, task, classes, threshold, config
  model_card.md / model_card.json, data_splits.json (folder datasets), load_model.py (this file)
"""

import dataclasses
import json
import pathlib

import jax
import numpy as np
from jax import export as jax_export

FUNCTION_FILE = "model.jax"
PARAMS_FILE = "params.npz"
SPEC_FILE = "model.json"


@dataclasses.dataclass(frozen=True)
class Model:
  """An exported model: `apply` (logits) and `probabilities` on uint8 images.

  Attributes:
    exported: the deserialised `jax.export.Exported` inference function.
    params: its parameter arrays in the order the function takes them.
    spec: the contents of model.json.
  """
  exported: jax_export.Exported
  params: list
  spec: dict

  @property
  def input_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of one input image (uint8)."""
    return tuple(self.spec["input_shape"])

  @property
  def class_names(self) -> list[str]:
    """Names of the probability columns, in order."""
    return list(self.spec["class_names"])

  def apply(self, images) -> np.ndarray:
    """(N, K) float32 logits of (N, H, W, C) uint8 images, run in batches of `spec["batch_size"]`."""
    images = np.asarray(images)
    if images.shape[1:] != self.input_shape or images.dtype != np.uint8:
      raise ValueError(f"images must be uint8 of shape (N, {', '.join(map(str, self.input_shape))}); got "
                       f"{images.dtype} {images.shape}. Resize them as model_card.md says.")
    batch = self.spec["batch_size"]
    out = []
    for start in range(0, len(images), batch):
      chunk = images[start:start + batch]
      padded = np.concatenate([chunk, np.zeros((batch - len(chunk),) + chunk.shape[1:], np.uint8)])
      out.append(np.asarray(self.exported.call(self.params, padded))[:len(chunk)])
    return np.concatenate(out) if out else np.zeros((0, self.spec["num_outputs"]), np.float32)

  def probabilities(self, images) -> np.ndarray:
    """(N, K') probabilities: binary [1 - p, p] (sigmoid), multi-label sigmoids, else softmax."""
    return probabilities(self.apply(images), self.spec["task"])


def probabilities(logits: np.ndarray, task: str) -> np.ndarray:
  """Probabilities of (N, K) logits for a MedMNIST task string, in float64."""
  logits = np.asarray(logits, np.float64)
  if task == "binary-class":
    p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
    return np.stack([1.0 - p, p], axis=1)
  if task.startswith("multi-label"):
    return 1.0 / (1.0 + np.exp(-logits))
  z = np.exp(logits - logits.max(axis=1, keepdims=True))
  return z / z.sum(axis=1, keepdims=True)


def load_model(path) -> Model:
  """Loads the exported model in folder `path` (see the module docstring)."""
  path = pathlib.Path(path)
  spec = json.loads((path / SPEC_FILE).read_text())
  exported = jax_export.deserialize(bytearray((path / FUNCTION_FILE).read_bytes()))
  with np.load(path / PARAMS_FILE) as stored:
    params = [jax.numpy.asarray(stored[name]) for name in spec["param_names"]]
  return Model(exported=exported, params=params, spec=spec)
