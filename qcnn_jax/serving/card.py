"""A model card (JSON and Markdown) made from a run's own records, never typed by hand.

`model_card` gathers: what the model is and takes, the data and its split, test metrics with
bootstrap intervals over test examples (overall and per class), the circuit's resources, the
training settings, provenance, intended use and limitations. `markdown` renders the same dict.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qcnn_jax.evaluation import metrics, stats

INTENDED_USE = ("Research on hybrid quantum-classical image classifiers: reproducing, comparing and "
                "studying this model on data like its training data.")
LIMITATIONS = (
    "A research model, not a medical device: it is not cleared or approved for clinical use and must not "
    "inform the diagnosis or treatment of any person.",
    "Measured only on the test split described under Data; other scanners, sites, populations or preprocessing may "
    "give other results. The intervals cover test-set sampling only, not retraining with other seeds.",
    "Its circuit is simulated exactly (statevector) on a classical computer; on quantum hardware shots and "
    "noise change its outputs.",
)
TRAINING_KEYS = ("num_epochs", "batch_size", "optimizer", "learning_rate", "block_learning_rate", "schedule",
                 "class_weights", "seed", "pretrained", "init_from")


def _interval(interval: stats.Interval) -> dict[str, float]:
  return {"estimate": interval.estimate, "low": interval.low, "high": interval.high}


def test_metrics(labels: np.ndarray, logits: np.ndarray, task: str, class_names: Sequence[str], *,
                 num_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
  """Test AUC and ACC with 95% bootstrap intervals, and per class AUC, recall, precision (intervals)
  and support; labels (N, L), logits (N, K)."""
  scores = metrics.scores_from_logits(logits, task)
  overall = stats.paired_bootstrap(labels, [scores], lambda m: m[0], task, num_resamples=num_resamples, seed=seed)
  per_class = stats.per_class_bootstrap(labels, scores, task, num_resamples=num_resamples, seed=seed)
  support = metrics.column_targets(labels, task, scores.shape[1]).sum(axis=0)
  return {"num_examples": int(len(labels)), "confidence": 0.95, "num_resamples": num_resamples,
          "auc": _interval(overall["auc"]), "acc": _interval(overall["acc"]),
          "per_class": [{"class": name, "support": int(n), **{k: _interval(v) for k, v in intervals.items()}}
                        for name, n, intervals in zip(class_names, support, per_class)]}


def data_section(config: Mapping[str, Any], dataset, class_names: Sequence[str], labels_by_split: Mapping) -> dict:
  """Dataset, image size, split (scheme and seed, or the folders'), images per split and class."""
  files = dataset.files
  scheme = files["settings"]["split_scheme"] if files else (
      config["split_scheme"] if dataset.name in ("medical_mnist", "folder") else "official")
  counts = {split: np.bincount(np.asarray(labels)[:, 0], minlength=len(class_names)).tolist()
            for split, labels in labels_by_split.items()} if dataset.task != metrics.MULTI_LABEL else {}
  section = {"dataset": dataset.name, "image_shape": list(dataset.image_shape), "split_scheme": scheme,
             "split_seed": config.get("split_seed") if scheme in ("80_10_10", "80_20") else None,
             "split_sizes": dataset.sizes, "images_per_class": counts}
  if files:
    section.update({"content_sha256": files["content_sha256"], "file_list": "data_splits.json",
                    "skipped_unreadable": len(files["skipped"])})
  return section


def model_card(*, config: Mapping[str, Any], summary: Mapping[str, Any], dataset, class_names: Sequence[str],
               test: Mapping[str, Any], input_spec: Mapping[str, Any], data: Mapping[str, Any],
               check: Mapping[str, Any]) -> dict:
  """The card of an exported run (see module docstring); every entry comes from the arguments."""
  return {
      "model": {"name": config["model"], "options": config.get("model_resolved") or config.get("model_options"),
                "parameters": summary.get("num_params"), "quantum_parameters": summary.get("quantum_params"),
                "checkpoint_epoch": summary.get("best_epoch"),
                "selected_checkpoint": summary.get("selected_checkpoint", "best_val_auc")},
      "task": dataset.task, "class_names": list(class_names), "input": dict(input_spec), "data": dict(data),
      "export_check": dict(check),
      "metrics": {"test": dict(test), "val_auc": summary.get("val_auc")},
      "circuits": summary.get("circuits", []),
      "training": {k: config.get(k) for k in TRAINING_KEYS} | {"wall_time_s": round(summary.get("wall_time_s") or 0, 1)},
      "provenance": summary.get("provenance"),
      "intended_use": INTENDED_USE, "limitations": list(LIMITATIONS),
  }


def _fmt(interval: Mapping[str, float]) -> str:
  """"0.812 [0.751, 0.866]", or "undefined" (e.g. the precision of a class never predicted)."""
  if interval["estimate"] != interval["estimate"]:
    return "undefined"
  return f"{interval['estimate']:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]"


def markdown(card: Mapping[str, Any]) -> str:
  """The card as a Markdown page."""
  model, data, test, spec = card["model"], card["data"], card["metrics"]["test"], card["input"]
  lines = [f"# Model card: {model['name']} on {data['dataset']}", "",
           f"**{LIMITATIONS[0]}**", "",
           "## Model", "",
           f"- {model['name']}: {model['parameters']} parameters ({model['quantum_parameters']} in circuits); "
           f"checkpoint of epoch {model['checkpoint_epoch']} ({model['selected_checkpoint']})",
           f"- task: {card['task']}; classes: {', '.join(card['class_names'])}"
           + (f"; decision threshold {spec['threshold']}" if spec.get("threshold") is not None else ""),
           f"- input: uint8 images of shape {tuple(spec['shape'])} (H, W, C); {spec['how']}", "",
           "## Data", "",
           f"- {data['dataset']}, images {tuple(data['image_shape'])}, split {data['split_scheme']}"
           + (f" (seed {data['split_seed']})" if data.get("split_seed") is not None else "")
           + f"; images per split: {data['split_sizes']}"]
  if data.get("file_list"):
    lines.append(f"- files of each split: `{data['file_list']}` (content SHA-256 {data['content_sha256'][:16]}..., "
                 f"{data['skipped_unreadable']} unreadable file(s) left out)")
  lines += ["", f"## Test metrics ({test['num_examples']} images; 95% bootstrap intervals over test images, "
            f"{test['num_resamples']} resamples)", "",
            f"AUC {_fmt(test['auc'])}, ACC {_fmt(test['acc'])}; best validation AUC "
            + (f"{card['metrics']['val_auc']:.3f}" if card["metrics"].get("val_auc") is not None else "n/a"), "",
            "| class | support | AUC (one vs rest) | recall | precision |", "|---|---|---|---|---|"]
  lines += [f"| {c['class']} | {c['support']} | {_fmt(c['auc'])} | {_fmt(c['recall'])} | {_fmt(c['precision'])} |"
            for c in test["per_class"]]
  if card["circuits"]:
    lines += ["", "## Circuits", ""]
    lines += [f"- {c['n_qubits']} qubits, {c['n_params']} angles; native RX/RY/RZ + CNOT: depth "
              f"{c['native']['depth']}, {c['native']['gates_2q']} CNOTs" for c in card["circuits"]]
  provenance = card["provenance"] or {}
  lines += ["", "## Training and provenance", "",
            "- " + ", ".join(f"{k} {v}" for k, v in card["training"].items() if v not in (None, "")),
            f"- code commit {provenance.get('git_commit')}; config SHA-256 {provenance.get('config_sha256')}",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in (provenance.get("versions") or {}).items()),
            "", "## Intended use", "", card["intended_use"], "", "## Limitations", ""]
  lines += [f"- {item}" for item in card["limitations"]]
  check = card["export_check"]
  lines += ["", "## Using it", "",
            f"`model.jax` (jax.export) reproduces the run's logits on its {check['num_examples']} {check['split']} images "
            f"to within {check['max_abs_logit_difference']:.1e}. It needs jax (with flatbuffers) and numpy only:", "",
            "```python", "from load_model import load_model  # load_model.py of this folder",
            "model = load_model(\"path/to/this/folder\")",
            f"probabilities = model.probabilities(images)  # images: uint8 (N, {', '.join(map(str, spec['shape']))})",
            "```"]
  return "\n".join(lines) + "\n"
