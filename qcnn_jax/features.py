"""Frozen backbone features of a trained run (the transfer-learning protocol of Mari et al. 2020).

`extract(workdir, out)` runs the best-validation checkpoint of a finished ResNet run over every
split and stores the pooled backbone features with labels and official indices in one `.npz`:

  {split}_features  (N, D) float32   pooled ResNet features (D = 2048 for ResNet-50)
  {split}_labels    (N, L) int       labels as the dataset stores them
  {split}_index     (N,)   int       official example indices (predictions CSVs use them)
  fc_kernel, fc_bias  (D, K), (K,)   the run's own linear head (plain ResNets only)
  train_mean, train_std  (D,)        per-feature mean and std of the training split (`standardized`)
  meta              JSON string      dataset, task, label names, num_outputs, source run, epoch

Heads trained on these features (`qcnn_jax.heads_train`) all see identical inputs, so head
designs compare exactly and cheaply.
"""

import dataclasses
import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from qcnn_jax import checkpointing, parallel, reports
from qcnn_jax.data import pipeline
from qcnn_jax.models.resnet import ResNet, ResNet18, ResNet50

BACKBONES = {"resnet18": ResNet18, "resnet50": ResNet50, "resnet50_qcnn": ResNet50, "resnet50_mlp": ResNet50,
             "resnet50_qcnn_residual": ResNet50, "resnet50_mlp_residual": ResNet50}
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class FeatureSet:
  """Backbone features of one dataset: per split (features, labels, index) and metadata."""

  features: dict[str, np.ndarray]
  labels: dict[str, np.ndarray]
  index: dict[str, np.ndarray]
  meta: dict[str, Any]
  fc: tuple[np.ndarray, np.ndarray] | None = None

  def train_statistics(self) -> tuple[np.ndarray, np.ndarray]:
    """(D,) float32 mean and std of each feature over the training split; a constant feature (a
    ReLU channel dead on every training image) gets std 1, so it standardises to 0."""
    train = self.features["train"].astype(np.float64)
    std = train.std(axis=0)
    return train.mean(axis=0).astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32)

  def standardized(self) -> "FeatureSet":
    """The same set with every split's features mapped to (x − mean) / std of the training split
    (pooled post-ReLU features differ in scale by orders of magnitude between channels)."""
    mean, std = self.train_statistics()
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


def backbone_variables(model_name: str, variables: dict) -> tuple[dict, tuple | None]:
  """(backbone variables, (fc kernel, fc bias) or None) of a trained model's variables."""
  params, stats = variables["params"], variables.get("batch_stats", {})
  if model_name in ("resnet18", "resnet50"):
    fc = params["fc"]
    return ({"params": {k: v for k, v in params.items() if k != "fc"}, "batch_stats": stats},
            (np.asarray(fc["kernel"]), np.asarray(fc["bias"])))
  return {"params": params["backbone"], "batch_stats": stats["backbone"]}, None


def warm_start(variables: dict, model: str, workdir: str) -> tuple[dict, list[str]]:
  """Fresh `variables` of `model` with the trained backbone of the run in `workdir` (best checkpoint).

  Fine-tunes a hybrid from a classical run (`--config.init_from`): the ResNet-50 backbone (params and
  BatchNorm statistics) is copied; when the source is a plain ResNet and the target's head has a
  linear path (the residual head, or a plain ResNet), its final layer is copied too, so a residual
  hybrid (gate g = 0) starts as exactly the source model. The circuit starts fresh.

  Returns:
    (variables, names of the copied parts).

  Raises:
    FileNotFoundError: `workdir` holds no run or no checkpoint.
    ValueError: the source's backbone does not fit `model` (other width, stem or architecture).
  """
  config_path = os.path.join(workdir, checkpointing.CONFIG_FILENAME)
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"init_from={workdir} holds no run ({checkpointing.CONFIG_FILENAME} missing)")
  source = reports.read_json(config_path)["model"]
  with checkpointing.RunCheckpoints(workdir) as ckpts:
    restored = ckpts.restore_best(None) or ckpts.restore_latest(None)
  if restored is None:
    raise FileNotFoundError(f"init_from={workdir} holds no checkpoint; train it first.")
  state = restored[0]
  trained, fc = backbone_variables(source, {"params": state["params"], "batch_stats": state.get("batch_stats", {})})
  params, stats = dict(variables["params"]), dict(variables.get("batch_stats", {}))
  plain = model in ("resnet18", "resnet50")
  if plain:
    new_params, new_stats = dict(trained["params"]), dict(trained["batch_stats"])
    new_params["fc"] = params["fc"]
  elif "backbone" in params and model in BACKBONES:
    new_params, new_stats = {**params, "backbone": trained["params"]}, {**stats, "backbone": trained["batch_stats"]}
  else:
    raise ValueError(f"init_from: model {model!r} has no ResNet backbone to initialise")
  copied = ["backbone"]
  head = new_params["fc"] if plain else new_params["head"].get("linear")
  if fc is not None and head is not None:
    linear = {"kernel": jnp.asarray(fc[0]), "bias": jnp.asarray(fc[1])}
    if plain:
      new_params["fc"] = linear
    else:
      new_params["head"] = {**new_params["head"], "linear": linear}
    copied.append("final linear layer")
  new = {**variables, "params": new_params, "batch_stats": new_stats}
  expected = jax.tree.map(lambda x: (x.shape, x.dtype), {"params": params, "batch_stats": stats})
  got = jax.tree.map(lambda x: (np.shape(x), jnp.asarray(x).dtype), {"params": new_params, "batch_stats": new_stats})
  if expected != got:
    raise ValueError(f"init_from={workdir}: its {source} backbone does not fit {model} with this config's options "
                     "(width, stem and number of classes must match).")
  return jax.tree.map(jnp.asarray, new), copied


def backbone_module(config: ml_collections.ConfigDict) -> ResNet:
  """The run's ResNet without its head (pooled features out)."""
  if config.model not in BACKBONES:
    raise ValueError(f"model {config.model!r} has no ResNet backbone to extract; one of {sorted(BACKBONES)}")
  options = {k: v for k, v in config.model_options.items() if k in ("width", "stem", "dtype") and v is not None}
  if "dtype" in options:
    options["dtype"] = jnp.dtype(options["dtype"])
  return BACKBONES[config.model](num_classes=None, **options)


def extract(workdir: str, out: str) -> FeatureSet:
  """Features of every split from the best-validation checkpoint of the run in `workdir`.

  Args:
    workdir: a run trained by `qcnn_jax.train` (resnet18, resnet50, resnet50_qcnn, resnet50_mlp).
    out: the .npz file to write.

  Returns:
    The FeatureSet written to `out`.
  """
  from qcnn_jax import train  # pylint: disable=g-import-not-at-top  # train imports this module's users

  trainer, state, meta, _ = train.load_run(workdir)
  config, dataset = trainer.config, trainer.dataset
  module = backbone_module(config)
  variables, fc = backbone_variables(config.model, {"params": state.params, "batch_stats": state.batch_stats})
  apply = jax.jit(functools.partial(module.apply, train=False))
  features, labels, index = {}, {}, {}
  for split, source in trainer.splits.items():
    chunks = {"features": [], "label": [], "index": []}
    for batch in pipeline.eval_batches(source, batch_size=config.eval_batch_size, prep=trainer.prep,
                                       num_threads=config.num_threads):
      mask = batch["mask"]
      chunks["features"].append(np.asarray(apply(variables, parallel.put_batch(
          {"image": batch["image"]}, trainer.mesh)["image"]))[mask])
      chunks["label"].append(batch["label"][mask])
      chunks["index"].append(batch["index"][mask])
    features[split] = np.concatenate(chunks["features"]).astype(np.float32)
    labels[split], index[split] = np.concatenate(chunks["label"]), np.concatenate(chunks["index"])
  info = {"dataset": dataset.name, "task": dataset.task, "label_names": list(dataset.label_names),
          "num_outputs": dataset.num_outputs, "size": config.size, "source_workdir": os.path.abspath(workdir),
          "source_model": config.model, "source_seed": config.seed, "source_epoch": meta["epoch"] + 1,
          "source_val_auc": meta["best"]["val_auc"], "selection_split": train.selection_split(dataset)}
  feature_set = FeatureSet(features, labels, index, info, fc)
  feature_set.save(out)
  return feature_set
