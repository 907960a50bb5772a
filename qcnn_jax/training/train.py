"""Training and evaluation: the `Trainer` and the run's lifecycle, `train_and_evaluate(config, workdir)`.

The loop follows the MedMNIST protocol: train for `num_epochs`, evaluate on `val` after every
epoch, keep the checkpoint with the best validation AUC, and report test metrics of that
checkpoint. Everything a run makes lives in its workdir (see `qcnn_jax.evaluation.reports`), and
rerunning the same command resumes from the latest checkpoint with the same data order.
"""

import contextlib
import functools
import math
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from qcnn_jax import data, malloc, parallel, runtime
from qcnn_jax.evaluation import metrics, provenance, reports
from qcnn_jax.training import checkpointing, lock, warm_start
from qcnn_jax.training.diagnostics import angle_shift, count_params, quantum_leaves, residual_gate, summarize_probe
from qcnn_jax.training.optim import (ROLES, base_rates, create_optimizer, learning_rate_schedule, param_role,
                                     role_labels, scale_by_role)
from qcnn_jax.training.steps import (TrainState, check_finite, class_weights, eval_step, per_example_loss, train_loss,
                                     train_step)
from qcnn_jax.data import pipeline
from qcnn_jax.models import MODELS, get_model, heads, resolved_options
from qcnn_jax.models.quantum import export

# The step, optimiser and diagnostics API live in `steps`, `optim` and `diagnostics`; studies, benchmarks
# and tests reach them through this module too.
__all__ = ["ConfigError", "ROLES", "TrainState", "Trainer", "base_rates", "class_weights", "count_params",
           "create_optimizer", "eval_step", "evaluate_workdir", "learning_rate_schedule", "load_run", "param_role",
           "per_example_loss", "role_labels", "scale_by_role", "train_and_evaluate", "train_loss", "train_step"]

# Config keys that do not change results (how a run is driven, where its files come from): a run
# may resume with other values, and a grid record made with other values still counts.
NON_RESULT_KEYS = ("log_every_steps", "num_threads", "compilation_cache", "distributed", "checkpoint_every_epochs",
                   "data_dir", "tfds_dir", "allow_download", "progress")
# Every option of the run's model with the value it used (unset ones at the model's defaults then):
# written into config.json, so a run made before a default changed never passes for a new one.
RESOLVED_MODEL_KEY = "model_resolved"
# A folder dataset's content digest (its files and settings, `data.folder`): written into config.json,
# so rerunning a run's command on a folder whose images changed is refused rather than resumed on them.
DATA_DIGEST_KEY = "data_content_sha256"
# Keys that configs written by earlier versions lack: compared only when the older config has them.
LATER_KEYS = (RESOLVED_MODEL_KEY, DATA_DIGEST_KEY)
# Keys of configs written by earlier versions, read under their current name: the circuit's rate
# became the rate of the block role (`param_role`; the same parameters for models without a twin).
RENAMED_KEYS = {"quantum_learning_rate": "block_learning_rate"}


class ConfigError(ValueError):
  """A config value that cannot run (unknown dataset, model, unit, schedule, ...); found before the
  workdir is touched."""


class _StateWithRng(TrainState):
  """The train state as checkpoints written before the unused `rng` field was dropped hold it."""
  rng: jax.Array


def restore_state(restore, target: TrainState):
  """`restore(target)` (a `RunCheckpoints.restore_*` method): (state, metadata) or None; a checkpoint
  that still holds the dropped `rng` field is read through `_StateWithRng` and returned without it."""
  try:
    return restore(target)
  except ValueError as e:
    if "rng" not in str(e):
      raise
  fields = {k: getattr(target, k) for k in ("step", "apply_fn", "params", "tx", "opt_state", "batch_stats")}
  restored, meta = restore(_StateWithRng(**fields, rng=jax.random.PRNGKey(0)))
  return target.replace(step=restored.step, params=restored.params, opt_state=restored.opt_state,
                        batch_stats=restored.batch_stats), meta


def class_names(label_names, task: str) -> list[str]:
  """Class names for reports: the dataset's, or "0", "1" for a binary task named otherwise."""
  names = list(label_names)
  return names if task != metrics.BINARY or len(names) == 2 else ["0", "1"]


class Trainer:
  """Compiled steps, sharding and evaluation for one model, dataset and config."""

  def __init__(self, config: ml_collections.ConfigDict, dataset: data.Dataset, mesh=None):
    """Args: config: run config; dataset: prepared data; mesh: device mesh (default: all devices)."""
    self.config = config
    self.dataset = dataset
    self.mesh = mesh if mesh is not None else parallel.data_mesh()
    parallel.check_batch_size(config.batch_size, self.mesh)
    parallel.check_batch_size(config.eval_batch_size, self.mesh)
    self.prep = pipeline.Preprocess(**config.preprocess)
    self.splits = {name: pipeline.materialise(source) for name, source in dataset.splits.items()}
    # A run's own record of its model options (written with its config.json) rebuilds it exactly.
    given = config.get(RESOLVED_MODEL_KEY) or config.model_options
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(given).items() if v is not None}
    if dataset.task == metrics.MULTI_LABEL:
      options.setdefault("multi_label", True)
    if "prior" in MODELS.get(config.model, (None, ()))[1]:  # heads that start at the training prior (heads.prior_logits)
      train_labels = pipeline.column(self.splits["train"], "label")
      options["prior"] = heads.prior_logits(train_labels, dataset.task, dataset.num_outputs)
    self.model = get_model(config.model, dataset.num_outputs, **options)
    self.class_weights = class_weights(pipeline.column(self.splits["train"], "label"), dataset.task,
                                       dataset.num_outputs, config.get("class_weights"))
    self.has_circuit = False  # set by init_state: does the model train circuit parameters?
    self.has_block = False  # set by init_state: has the model a "block" role (circuit or twin block)?
    self.input_shape = self._input_shape()
    self.steps_per_epoch = pipeline.steps_per_epoch(len(self.splits["train"]), config.batch_size)
    self.total_steps = self.steps_per_epoch * config.num_epochs
    patience = config.get("early_stopping_patience")
    if patience is not None and patience < 1:
      raise ValueError(f"early_stopping_patience {patience} must be at least 1 (or unset: train every epoch)")
    rates = base_rates(config)
    self._schedules = {"learning_rate": learning_rate_schedule(config, rates["rest"], self.total_steps),
                       "block_learning_rate": learning_rate_schedule(config, rates["block"], self.total_steps)}
    replicated, sharded = parallel.replicated(self.mesh), parallel.batch_sharded(self.mesh)
    self._train_step = jax.jit(functools.partial(train_step, model=self.model, task=dataset.task,
                                                 class_weights=self.class_weights),
                               in_shardings=(replicated, sharded), out_shardings=(replicated, replicated),
                               donate_argnums=0)
    self._eval_step = jax.jit(functools.partial(eval_step, model=self.model),
                              in_shardings=(replicated, sharded), out_shardings=sharded)

  def _input_shape(self) -> tuple[int, int, int]:
    h, w, c = self.dataset.image_shape
    if self.prep.resize:
      h = w = self.prep.resize
    return (h, w, self.prep.channels or c)

  def init_state(self) -> TrainState:
    """Fresh, replicated train state from `config.seed` (and pretrained weights if configured)."""
    init_rng, _ = jax.random.split(jax.random.PRNGKey(self.config.seed))  # same init as before rng was dropped
    dummy = jnp.zeros((1,) + self.input_shape, jnp.float32)
    variables = jax.jit(functools.partial(self.model.init, train=False))(init_rng, dummy)
    if self.config.pretrained:
      from qcnn_jax.models import pretrained  # pylint: disable=g-import-not-at-top
      variables = pretrained.load_torchvision_resnet(self.config.pretrained, variables,
                                                     arch="resnet18" if self.config.model == "resnet18" else "resnet50")
    if self.config.get("init_from"):
      variables, copied = warm_start.warm_start(variables, self.config.model, self.config.init_from)
      logging.info("Initialised %s from %s", " and ".join(copied), self.config.init_from)
    params = variables["params"]
    self.has_circuit = count_params(params)[1] > 0
    self.has_block = "block" in jax.tree.leaves(role_labels(params))
    state = TrainState.create(apply_fn=self.model.apply, params=params,
                              tx=create_optimizer(self.config, params, self.total_steps),
                              batch_stats=variables.get("batch_stats", {}))
    return parallel.put_replicated(state, self.mesh)

  def train_epoch(self, state: TrainState, epoch: int, log: reports.MetricsWriter, progress) -> tuple[TrainState, dict]:
    """Runs one epoch; returns the new state and {"train_loss", "images_per_s", "epoch_time_s"} (and
    the epoch's mean "grad_norm_quantum" / "grad_norm_classical" for models with a circuit)."""
    losses, start, timed_images, timed_start = [], time.time(), 0, None

    def rate() -> float:  # images/s since the first (compiling) step of the epoch
      return timed_images / max(time.time() - timed_start, 1e-9) if timed_images else float("nan")

    batches = pipeline.train_batches(self.splits["train"], batch_size=self.config.batch_size,
                                     seed=self.config.seed, epoch=epoch, prep=self.prep,
                                     num_threads=self.config.num_threads)
    for i, batch in enumerate(batches):
      batch = parallel.put_batch({k: batch[k] for k in ("image", "label")}, self.mesh)
      state, step_metrics = self._train_step(state, batch)
      losses.append(step_metrics)
      if i == 0:
        jax.block_until_ready(step_metrics)
        timed_start = time.time()  # Exclude compilation and the first step from throughput.
      else:
        timed_images += self.config.batch_size
      step = epoch * self.steps_per_epoch + i + 1
      if step % self.config.log_every_steps == 0 or i == self.steps_per_epoch - 1:
        fetched = jax.device_get(losses[-1])
        check_finite([m["finite"] for m in losses], step - len(losses) + 1)
        log.write({"step": step, "epoch": epoch, "loss": float(fetched["loss"]),
                   "grad_norm": float(fetched["grad_norm"]), "images_per_s": rate(),
                   **self.learning_rates(step)}, group="train")
        progress(step, rate(), float(fetched["loss"]))
    check_finite([m["finite"] for m in losses], epoch * self.steps_per_epoch + 1)
    fetched = jax.device_get(losses)
    epoch_metrics = {"train_loss": float(np.mean([float(m["loss"]) for m in fetched])), "images_per_s": rate(),
                     "epoch_time_s": time.time() - start}
    if self.has_circuit:
      for key in ("grad_norm_quantum", "grad_norm_classical"):
        epoch_metrics[key] = float(np.mean([float(m[key]) for m in fetched]))
    return state, epoch_metrics

  def learning_rates(self, step: int) -> dict[str, float]:
    """Learning rates of the update that made `step` (1-based); the block's only for a model with one."""
    names = ("learning_rate", "block_learning_rate") if self.has_block else ("learning_rate",)
    return {name: float(self._schedules[name](step - 1)) for name in names}

  def predict(self, state: TrainState, split, step=None) -> dict[str, np.ndarray]:
    """Logits (N, K), labels (N, L), official indices (N,) of every example of `split` (a split name,
    or a source of raw records such as a corrupted `pipeline.ArraySplit`), and the head's
    per-example diagnostics under "probe" (a dict, see `eval_step`).

    `step(state, batch, batch_number) -> (logits, probe)` replaces the compiled `eval_step` (e.g. to
    evaluate the circuits under shots or noise, `qcnn_jax.studies.robustness`)."""
    outputs = {"logits": [], "label": [], "index": []}
    probes = []
    source = self.splits[split] if isinstance(split, str) else split
    for number, batch in enumerate(pipeline.eval_batches(source, batch_size=self.config.eval_batch_size,
                                                         prep=self.prep, num_threads=self.config.num_threads)):
      inputs = parallel.put_batch({"image": batch["image"]}, self.mesh)
      logits, probe = jax.device_get(self._eval_step(state, inputs) if step is None else step(state, inputs, number))
      mask = batch["mask"]
      outputs["logits"].append(np.asarray(logits)[mask])
      outputs["label"].append(batch["label"][mask])
      outputs["index"].append(batch["index"][mask])
      probes.append({k: np.asarray(v)[mask] for k, v in probe.items()})
    out = {k: np.concatenate(v) for k, v in outputs.items()}
    out["probe"] = {k: np.concatenate([p[k] for p in probes]) for k in probes[0]} if probes else {}
    return out

  def evaluate(self, state: TrainState, split, step=None) -> tuple[dict, dict[str, np.ndarray]]:
    """(classification report incl. MedMNIST `auc`/`acc` and mean `loss`, raw predictions); `step`
    as in `predict`."""
    out = self.predict(state, split, step)
    report = metrics.classification_report(out["label"], out["logits"], self.dataset.task,
                                           self.class_names())
    report["loss"] = float(per_example_loss(jnp.asarray(out["logits"]), jnp.asarray(out["label"]),
                                            self.dataset.task).mean())
    return report, out

  def class_names(self) -> list[str]:
    return class_names(self.dataset.label_names, self.dataset.task)

  def split(self, name: str):
    """The stored examples of split `name`; ConfigError naming the run's splits when it has none."""
    if name not in self.splits:
      raise ConfigError(f"split {name!r} not in {sorted(self.splits)}")
    return self.splits[name]

  def circuits(self, variables: dict, images: np.ndarray) -> list:
    """(circuit spec, trained angles, encoding inputs (B, F)) of every QCNN the model runs on stored
    images (B, H, W, C) uint8 (see `export.capture_circuits`); empty for a classical model."""
    inputs = jnp.asarray(pipeline.preprocess(images, self.prep))
    return export.capture_circuits(self.model.apply, variables, inputs, train=False)

  def circuit_resources(self, state: TrainState) -> list[dict]:
    """`export.resources` of each circuit the model runs (what a device needs)."""
    if not self.has_circuit:
      return []
    variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
    image = pipeline.gather(self.splits["train"], np.arange(1))["image"]
    return [export.resources(spec) for spec, _, _ in self.circuits(variables, image)]


def gate_off_report(trainer: Trainer, state: TrainState) -> dict[str, float]:
  """A residual head's gate g and the test metrics of its linear path alone (g set to 0, see
  ``heads.gate_off``): what the circuit (or twin block) adds to the reported checkpoint is the
  difference. {} for models without a residual gate or a test split."""
  gate = residual_gate(state.params)
  if not gate or "test" not in trainer.dataset.splits:
    return {}
  off = state.replace(params=parallel.put_replicated(heads.gate_off(state.params), trainer.mesh))
  report, _ = trainer.evaluate(off, "test")
  return gate_off_entries(state.params, report)


def gate_off_entries(params, report: dict) -> dict[str, float]:
  """Summary entries of a residual head: its gate g ("residual_gate") and, from ``report`` (the
  test split's classification report with g set to 0), test_{auc,acc,balanced_accuracy}_gate_off."""
  return {**residual_gate(params), **{f"test_{k}_gate_off": report[k] for k in ("auc", "acc", "balanced_accuracy")}}


def write_split_reports(trainer: Trainer, workdir: str, split: str, report: dict, out: dict, run: str) -> None:
  """Predictions CSV (MedMNIST naming), ROC curves and confusion matrix of one split."""
  config = trainer.config
  scores = metrics.scores_from_logits(out["logits"], trainer.dataset.task)
  reports.write_predictions_csv(f"{workdir}/predictions", trainer.dataset.name.replace("_", ""), split,
                                out["index"], scores, auc=report["auc"], acc=report["acc"], run=run,
                                size=config.size)
  reports.plot_roc_curves(out["label"], scores, trainer.dataset.task, f"{workdir}/plots/roc_{split}.png",
                          class_names=trainer.class_names())
  if trainer.dataset.task != metrics.MULTI_LABEL:
    reports.plot_confusion_matrix(report["confusion_matrix"], trainer.class_names(),
                                  f"{workdir}/plots/confusion_{split}.png")


def load_config_dataset(config: ml_collections.ConfigDict) -> data.Dataset:
  """Prepares and opens the dataset that `config` names."""
  return data.load_dataset(config.dataset, size=config.size, data_dir=config.data_dir, tfds_dir=config.tfds_dir,
                           allow_download=config.allow_download, split_scheme=config.split_scheme,
                           split_seed=config.split_seed, image_channels=config.get("image_channels"),
                           skip_unreadable=bool(config.get("skip_unreadable")))


def selection_split(dataset: data.Dataset) -> str:
  """Split used for checkpoint selection: "val", or "train" when a split scheme has no val."""
  return "val" if "val" in dataset.splits else "train"


def finish_run(trainer: Trainer, state: TrainState, workdir: str, best: dict, wall_time_s: float,
               images_per_s: float, selected: str, recovered: list | None = None,
               epochs_trained: int | None = None) -> dict:
  """Evaluates `state` (the checkpoint chosen as `selected`, see `restore_selected`) on every split
  and writes all reports; `recovered` lists damaged checkpoints the run continued past, `epochs_trained`
  how many epochs ran (fewer than `num_epochs` when it stopped early)."""
  config, run = trainer.config, config_run_name(trainer.config)
  split_reports = {}
  for split in trainer.dataset.splits:
    report, out = trainer.evaluate(state, split)
    split_reports[split] = report
    if jax.process_index() == 0:
      write_split_reports(trainer, workdir, split, report, out, run)
  gate_off = gate_off_report(trainer, state)  # every process: the evaluation is a collective
  if jax.process_index() != 0:
    return {"test_auc": split_reports.get("test", {}).get("auc"), "test_acc": split_reports.get("test", {}).get("acc"),
            "val_auc": best["val_auc"], "best_epoch": best["epoch"] + 1}
  reports.write_json_atomic(f"{workdir}/metrics_final.json", split_reports)
  reports.plot_learning_curves(reports.read_metrics(f"{workdir}/metrics.jsonl"),
                               f"{workdir}/plots/learning_curves.png")
  num_params, quantum_params = count_params(state.params)
  test = split_reports.get("test", {})
  extra = {k: test.get(k) for k in ("precision_macro", "recall_macro", "f1_macro", "balanced_accuracy")}
  no_val = selection_split(trainer.dataset) == "train"
  reports.write_summary(
      workdir, test_auc=test.get("auc"), test_acc=test.get("acc"), val_auc=None if no_val else best["val_auc"],
      train_auc_selected=best["val_auc"] if no_val else None,
      best_epoch=best["epoch"] + 1, num_params=num_params, quantum_params=quantum_params,
      n_qubits=(getattr(trainer.model, "n_qubits", 4 if "quanv" in config.model else 0) if quantum_params else 0),
      wall_time_s=wall_time_s, images_per_s=images_per_s, dataset=config.dataset, model=config.model,
      seed=config.seed, num_epochs=config.num_epochs, selection_split=selection_split(trainer.dataset),
      selected_checkpoint=selected,
      devices=jax.device_count(), platform=jax.default_backend(), circuits=trainer.circuit_resources(state),
      **{f"test_{k}": v for k, v in extra.items()}, **gate_off,
      **({"checkpoint_recovery": recovered} if recovered else {}),
      **({"epochs_trained": epochs_trained, "early_stopping_patience": config.early_stopping_patience}
         if config.get("early_stopping_patience") else {}),
      provenance=provenance.provenance(config.to_dict(), NON_RESULT_KEYS))
  return reports.read_json(f"{workdir}/{reports.SUMMARY_FILENAME}")


def describe_selection(summary: dict) -> str:
  """How the reported checkpoint was chosen, for one line of output."""
  if summary.get("selected_checkpoint", "best_val_auc") == "best_val_auc":
    return f"best val AUC {summary['val_auc']:.4f} at epoch {summary['best_epoch']}"
  if summary.get("selection_split") == "train":
    return f"no validation split: last epoch {summary['best_epoch']}, train AUC {summary['train_auc_selected']:.4f}"
  return f"validation AUC never finite: latest epoch {summary['best_epoch']}"


def config_run_name(config: ml_collections.ConfigDict) -> str:
  """Run name used after the '@' in MedMNIST's prediction file names."""
  return f"{config.model}-seed{config.seed}"


def restore_selected(ckpts: checkpointing.RunCheckpoints, target: TrainState, dataset: data.Dataset):
  """(state, metadata, how) of the checkpoint a run reports, or None when it has no checkpoint.

  `how` is "best_val_auc" (the MedMNIST protocol), or "latest" when the split scheme has no
  validation split, or when no epoch had a finite validation AUC (e.g. a validation split holding
  one class), which is logged.
  """
  if selection_split(dataset) == "val":
    restored = restore_state(ckpts.restore_best, target)
    if restored is not None:
      return (*restored, "best_val_auc")
    logging.warning("No epoch had a finite validation AUC (does the validation split hold a single class?): "
                    "the latest checkpoint is reported instead of the best.")
  restored = restore_state(ckpts.restore_latest, target)
  return None if restored is None else (*restored, "latest")


def build_run(config: ml_collections.ConfigDict) -> tuple[data.Dataset, "Trainer", TrainState]:
  """(dataset, trainer, fresh state) of `config`: checks the data files, model, circuit and optimizer.

  Raises:
    ConfigError: a config value that cannot run (the message names it and the choices).
    DatasetNotFoundError, ChecksumError: missing or corrupt data files.
  """
  try:
    dataset = load_config_dataset(config)
    trainer = Trainer(config, dataset)
    return dataset, trainer, trainer.init_state()
  except (data.DatasetNotFoundError, data.ChecksumError, data.FolderDatasetError):
    raise
  except (ValueError, KeyError, AttributeError) as e:
    raise ConfigError(f"invalid config: {e}") from e


def with_resolved_model(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` with `model_resolved` = models.resolved_options(model, **model_options)."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config[RESOLVED_MODEL_KEY] = resolved_options(config.model, **config.model_options)
  return config


def improves(auc: float, best_auc: float, split: str) -> bool:
  """The selection rule of every training loop: an epoch becomes the reported one when its AUC on the
  selection split beats the best so far (NaN never does), or always when selecting on "train" (no
  validation split: the last epoch is reported)."""
  return split == "train" or auc > best_auc


def _check(config: ml_collections.ConfigDict):
  """(config with resolved model, trainer, fresh state); every config error surfaces here, before the
  workdir is touched."""
  if config.compilation_cache:
    runtime.enable_compilation_cache()
  dataset, trainer, state = build_run(config)
  config = with_resolved_model(config)
  if dataset.files is not None:
    with config.unlocked():
      config[DATA_DIGEST_KEY] = dataset.files["content_sha256"]
  return config, trainer, state


def _claim(config: ml_collections.ConfigDict, trainer: "Trainer", state: TrainState, workdir: str, overwrite: bool):
  """Makes `workdir` the run's (`checkpointing.prepare_workdir`) and logs what will be trained."""
  if jax.process_index() == 0:  # Multi-host: one process owns the workdir's files.
    checkpointing.prepare_workdir(workdir, config.to_dict(), overwrite=overwrite, ignore_keys=NON_RESULT_KEYS,
                                  later_keys=LATER_KEYS, renamed_keys=RENAMED_KEYS)
  multihost_utils.sync_global_devices("workdir ready")
  num_params, quantum_params = count_params(state.params)
  logging.info("%s on %s: %d parameters (%d quantum), %d train images, %d steps/epoch, %d devices",
               config.model, config.dataset, num_params, quantum_params, len(trainer.splits["train"]),
               trainer.steps_per_epoch, jax.device_count())


def _resume(ckpts: checkpointing.RunCheckpoints, trainer: Trainer, state: TrainState, workdir: str):
  """(state, meta) to continue from: the newest intact checkpoint's, or the fresh state with meta of
  epoch -1. meta = {"epoch": last finished, "best": {"val_auc", "epoch"}, "wall_time_s", "rates":
  images/s per epoch, "recovered": damaged checkpoints set aside so far, each with the epoch resumed after}."""
  restored = restore_state(ckpts.restore_latest, state)
  if restored is None:
    return state, {"epoch": -1, "best": {"val_auc": -math.inf, "epoch": -1}, "wall_time_s": 0.0, "rates": [],
                   "recovered": []}
  state, meta = restored
  meta = {**meta, "recovered": meta.get("recovered", []) + [
      {**damage, "resumed_after_epoch": meta["epoch"] + 1} for damage in ckpts.damaged]}
  logging.info("Resuming %s after epoch %d (best %s so far).", workdir, meta["epoch"] + 1, meta["best"])
  return parallel.put_replicated(state, trainer.mesh), meta


def _epoch_record(trainer: Trainer, state: TrainState, epoch: int, epoch_metrics: dict, initial_angles) -> dict:
  """One epoch's JSON-lines record: training metrics, loss/AUC/ACC on the selection split, head
  diagnostics, circuit-angle shift and residual gate."""
  select = selection_split(trainer.dataset)
  report, out = trainer.evaluate(state, select)
  return {"epoch": epoch, "step": (epoch + 1) * trainer.steps_per_epoch, **epoch_metrics,
          f"{select}_loss": report["loss"], f"{select}_auc": report["auc"], f"{select}_acc": report["acc"],
          **summarize_probe(out["probe"]),
          **angle_shift([a - b for a, b in zip(quantum_leaves(state.params), initial_angles)]),
          **residual_gate(state.params)}


class _Saver:
  """Checkpoints every `checkpoint_every_epochs` and at the end; a best epoch between two checkpoints
  is kept on the device (a copy of its state) and saved with the next one."""

  def __init__(self, ckpts: checkpointing.RunCheckpoints, config: ml_collections.ConfigDict):
    self.ckpts, self.config, self.pending_best = ckpts, config, None

  def after_epoch(self, epoch: int, state: TrainState, meta: dict, improved: bool, val_auc: float | None,
                  last: bool = False) -> None:
    """Saves what `epoch` leaves to save; `last` (e.g. stopping early) saves as the final epoch does."""
    if (epoch + 1) % self.config.checkpoint_every_epochs == 0 or epoch == self.config.num_epochs - 1 or last:
      if self.pending_best is not None and not improved:  # best epoch since the last checkpoint
        self.ckpts.save(**self.pending_best, latest=False)
      self.pending_best = None
      self.ckpts.save(epoch, state, meta, val_auc=val_auc)
    elif improved and val_auc is not None:
      self.pending_best = {"epoch": epoch, "state": jax.tree.map(jnp.copy, state), "metadata": meta,
                           "val_auc": val_auc}


def patience_left(config: ml_collections.ConfigDict, best_epoch: int, last_epoch: int) -> bool:
  """Whether training goes on after `last_epoch` (0-based): always without `early_stopping_patience`,
  else while fewer than that many epochs have passed since the best validation AUC (`best_epoch`)."""
  patience = config.get("early_stopping_patience")
  return patience is None or last_epoch - best_epoch < patience


def _progress_logger(trainer: Trainer, bar, epoch: int):
  """progress(step, images/s, loss): the log line and progress bar of a training step."""
  config = trainer.config

  def progress(step, rate, loss):
    eta = (trainer.total_steps - step) * config.batch_size / rate if rate == rate and rate > 0 else float("nan")
    logging.info("epoch %d step %d/%d loss %.4f  %.1f images/s  ETA %.0f s", epoch + 1, step, trainer.total_steps,
                 loss, rate, eta)
    bar.update(step - bar.n)
    bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.4f}", images_per_s=f"{rate:.1f}", refresh=False)
  return progress


def _train_epochs(trainer: Trainer, state: TrainState, ckpts, workdir: str, meta: dict, initial_angles):
  """Trains the epochs after `meta["epoch"]`, checkpointing as it goes; returns (state, meta)."""
  config, select = trainer.config, selection_split(trainer.dataset)
  start_epoch, run_start = meta["epoch"] + 1, time.time() - meta["wall_time_s"]
  best, rates = meta["best"], list(meta["rates"])
  metrics_path = f"{workdir}/metrics.jsonl" if jax.process_index() == 0 else os.devnull
  if jax.process_index() == 0:
    reports.drop_metrics_after(metrics_path, start_epoch - 1)  # epochs about to be redone
  events_dir = f"{workdir}/tensorboard" if jax.process_index() == 0 else None
  bar = runtime.progress_bar(trainer.total_steps, initial=start_epoch * trainer.steps_per_epoch, unit="step",
                             desc=f"{config.model} {config.dataset}", enabled=config.get("progress", True))
  saver = _Saver(ckpts, config)
  with reports.MetricsWriter(metrics_path, events_dir) as log, bar:
    for epoch in range(start_epoch, config.num_epochs):
      if not patience_left(config, best["epoch"], epoch - 1):  # a run that stopped early, resumed
        break
      state, epoch_metrics = trainer.train_epoch(state, epoch, log, _progress_logger(trainer, bar, epoch))
      malloc.release()  # QCNN_JAX_MALLOC=keep: training's freed buffers back before evaluation's (see malloc.release)
      record = _epoch_record(trainer, state, epoch, epoch_metrics, initial_angles)
      log.write(record, group="epoch")
      rates.append(epoch_metrics["images_per_s"])
      auc = record[f"{select}_auc"]
      improved = improves(auc, best["val_auc"], select)
      if improved:
        best = {"val_auc": auc, "epoch": epoch}
      meta = {"epoch": epoch, "best": best, "wall_time_s": time.time() - run_start, "rates": list(rates),
              "recovered": meta["recovered"]}
      stop = not patience_left(config, best["epoch"], epoch)
      saver.after_epoch(epoch, state, meta, improved, auc if select == "val" else None, last=stop)
      malloc.release()  # and evaluation's before the next epoch's training
      logging.info("epoch %d/%d: train loss %.4f, %s AUC %.4f ACC %.4f (best %.4f at epoch %d)", epoch + 1,
                   config.num_epochs, epoch_metrics["train_loss"], select, auc, record[f"{select}_acc"],
                   best["val_auc"], best["epoch"] + 1)
      if stop:
        logging.info("stopping early: no better %s AUC in the %d epochs since epoch %d", select,
                     config.early_stopping_patience, best["epoch"] + 1)
  return state, meta


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, overwrite: bool = False) -> dict:
  """Trains (or resumes) a run in `workdir`, then evaluates the best-validation checkpoint.

  Args:
    config: see `experiments/configs/medmnist.py` for every key.
    workdir: run directory; created, resumed, or refused if it holds another config.
    overwrite: move a different run in `workdir` aside instead of refusing.

  Returns:
    The summary dict also written to `{workdir}/summary.json`.
  """
  config, trainer, state = _check(config)
  with _workdir_lock(workdir):
    _claim(config, trainer, state, workdir, overwrite)
    initial_angles = quantum_leaves(state.params)  # deterministic from the seed: also right on resume
    with checkpointing.RunCheckpoints(workdir) as ckpts:
      state, meta = _resume(ckpts, trainer, state, workdir)
      state, meta = _train_epochs(trainer, state, ckpts, workdir, meta, initial_angles)
      best = meta["best"]
      best_state, best_meta, selected = restore_selected(ckpts, state, trainer.dataset)
    if selected == "latest":
      no_val = selection_split(trainer.dataset) == "train"
      best = {"val_auc": best["val_auc"] if no_val else float("nan"), "epoch": best_meta["epoch"]}
    finite_rates = [r for r in meta["rates"] if r == r]
    return finish_run(trainer, parallel.put_replicated(best_state, trainer.mesh), workdir, best, meta["wall_time_s"],
                      float(np.median(finite_rates)) if finite_rates else float("nan"), selected,
                      meta.get("recovered"), meta["epoch"] + 1)


def _workdir_lock(workdir: str):
  """The workdir's lock (`lock.hold`), held by process 0 of a multi-host run."""
  return lock.hold(workdir) if jax.process_index() == 0 else contextlib.nullcontext()


def load_run(workdir: str, checkpoint: str = "best") -> tuple[Trainer, TrainState, dict, str]:
  """(trainer, state, metadata, how it was selected) of the checkpoint a finished or partial run
  reports (`restore_selected`), or with `checkpoint="latest"` of its newest intact checkpoint, for
  evaluating, exporting or extracting from it.

  Raises:
    FileNotFoundError: `workdir` holds no run or no checkpoint.
    checkpointing.CheckpointDamagedError: the checkpoint asked for is damaged, with no intact copy.
  """
  config_path = os.path.join(workdir, checkpointing.CONFIG_FILENAME)
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{workdir} holds no run ({checkpointing.CONFIG_FILENAME} missing).")
  stored = reports.read_json(config_path)
  config = ml_collections.ConfigDict({RENAMED_KEYS.get(k, k): v for k, v in stored.items()})
  trainer = Trainer(config, load_config_dataset(config))
  with checkpointing.RunCheckpoints(workdir) as ckpts:
    if checkpoint == "latest":
      latest = restore_state(ckpts.restore_latest, trainer.init_state())
      restored = None if latest is None else (*latest, "latest")
    else:
      restored = restore_selected(ckpts, trainer.init_state(), trainer.dataset)
  if restored is None:
    raise FileNotFoundError(f"{workdir} holds no checkpoint; train it first with experiments.train.")
  state, meta, selected = restored
  return trainer, parallel.put_replicated(state, trainer.mesh), meta, selected


def evaluate_workdir(workdir: str, split: str | None = None, checkpoint: str = "best") -> tuple[dict, dict]:
  """Re-evaluates the best (or, with `checkpoint="latest"`, the newest intact) checkpoint of a
  finished or partial run and rewrites its reports, holding the workdir's lock.

  Returns:
    ({split: classification report}, ``gate_off_report`` when the test split is evaluated).
  """
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"{workdir} holds no run (no such folder).")
  with _workdir_lock(workdir):
    trainer, state, meta, selected = load_run(workdir, checkpoint)
    splits = [split] if split else list(trainer.dataset.splits)
    results = {}
    for name in splits:
      report, out = trainer.evaluate(state, name)
      write_split_reports(trainer, workdir, name, report, out, config_run_name(trainer.config))
      results[name] = report
    gate_off = gate_off_report(trainer, state) if split in (None, "test") else {}
    reports.write_json_atomic(f"{workdir}/metrics_eval.json",
                              {"epoch": meta["epoch"], "checkpoint": selected, **results, **gate_off})
  return results, gate_off
