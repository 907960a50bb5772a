"""Feature extraction for head studies (the transfer-learning protocol of Mari et al. 2020).

`extract(workdir, out)` runs the best-validation checkpoint of a finished ResNet run over every
split and stores the pooled backbone features with labels and official indices in one `.npz`
(`qcnn_jax.data.features` describes the file and reads it back).
"""

import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from qcnn_jax import parallel
from qcnn_jax.data import pipeline
from qcnn_jax.data.features import FeatureSet
from qcnn_jax.evaluation import provenance, reports
from qcnn_jax.models.resnet import ResNet, ResNet18, ResNet50
from qcnn_jax.training import train
from qcnn_jax.training.warm_start import backbone_variables

BACKBONES = {"resnet18": ResNet18, "resnet50": ResNet50, "resnet50_qcnn": ResNet50, "resnet50_mlp": ResNet50,
             "resnet50_qcnn_residual": ResNet50, "resnet50_mlp_residual": ResNet50}


def backbone_module(config: ml_collections.ConfigDict) -> ResNet:
  """The run's ResNet without its head (pooled features out)."""
  if config.model not in BACKBONES:
    raise ValueError(f"model {config.model!r} has no ResNet backbone to extract; one of {sorted(BACKBONES)}")
  options = {k: v for k, v in config.model_options.items() if k in ("width", "stem", "dtype") and v is not None}
  if "dtype" in options:
    options["dtype"] = jnp.dtype(options["dtype"])
  return BACKBONES[config.model](num_classes=None, **options)


def source_record(workdir: str) -> dict:
  """What names the backbone run a feature file comes from, beyond its config hash: the commit it was
  trained at and its own test AUC/ACC, from its `summary.json` (empty for a run without one)."""
  path = os.path.join(workdir, reports.SUMMARY_FILENAME)
  if not os.path.exists(path):
    return {}
  summary = reports.read_json(path)
  return {"source_git_commit": summary.get("provenance", {}).get("git_commit"),
          "source_test_auc": summary.get("test_auc"), "source_test_acc": summary.get("test_acc")}


def extract(workdir: str, out: str) -> FeatureSet:
  """Features of every split from the best-validation checkpoint of the run in `workdir`.

  Args:
    workdir: a run trained by `qcnn_jax.training.train` (resnet18, resnet50, resnet50_qcnn, resnet50_mlp).
    out: the .npz file to write.

  Returns:
    The FeatureSet written to `out`.
  """
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
          "num_outputs": dataset.num_outputs, "size": config.size, "source_config_sha256": provenance.config_hash(
              config.to_dict(), train.NON_RESULT_KEYS),
          "source_model": config.model, "source_seed": config.seed, "source_epoch": meta["epoch"] + 1,
          "source_val_auc": meta["best"]["val_auc"], "selection_split": train.selection_split(dataset),
          **source_record(workdir), "extracted_at_commit": provenance.git_commit()}
  feature_set = FeatureSet(features, labels, index, info, fc)
  feature_set.save(out)
  return feature_set
