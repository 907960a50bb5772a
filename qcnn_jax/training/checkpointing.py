"""Checkpoints of a training run (orbax) and the workdir guard.

A workdir holds::

  config.json                  the resolved config of the run (``prepare_workdir``)
  checkpoints/latest/<epoch>/  the last ``keep_latest`` epochs, for resuming
  checkpoints/best/<epoch>/    the epoch with the highest validation AUC, for evaluation

Each ``<epoch>`` directory holds two orbax items: ``state``, the train-state pytree, and ``meta``,
small JSON metadata (epoch, validation AUC, best so far, data-iterator position, ...).
"""

from collections.abc import Collection, Mapping
import logging
import math
import os
import time
from typing import Any

import orbax.checkpoint as ocp

from qcnn_jax.evaluation import reports

CONFIG_FILENAME = "config.json"
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
BEST = "best"


def _val_auc(metrics: Mapping[str, float]) -> float:
  return metrics["val_auc"]


def _manager(directory: str, keep: int, best_by_val_auc: bool) -> ocp.CheckpointManager:
  """A synchronous manager keeping the ``keep`` newest steps, or the ``keep`` best by val AUC."""
  if best_by_val_auc:
    # best_fn makes orbax store the metrics and answer best_step(); the policy decides deletions.
    tracking = dict(best_fn=_val_auc, best_mode="max", preservation_policy=ocp.checkpoint_managers.BestN(
        get_metric_fn=_val_auc, n=keep, keep_checkpoints_without_metrics=False))
  else:
    tracking = dict(preservation_policy=ocp.checkpoint_managers.LatestN(n=keep))
  options = ocp.CheckpointManagerOptions(
      enable_async_checkpointing=False,  # save() returns once the step directory is final
      cleanup_tmp_directories=True,  # remove half-written steps left by a killed process
      **tracking,
  )
  return ocp.CheckpointManager(directory, options=options)


class RunCheckpoints:
  """The ``latest`` and ``best``-by-validation-AUC checkpoints of one run.

  Saving is synchronous and atomic: orbax writes each step into a ``<epoch>.orbax-checkpoint-tmp``
  directory and renames it to ``<epoch>`` only when complete, and ``save`` returns after the
  rename. A process killed mid-save therefore leaves the previous checkpoints intact; the
  temporary directory is invisible to restore and removed when the run restarts.
  """

  def __init__(self, workdir: str | os.PathLike, keep_latest: int = 2):
    """Opens (or creates) ``{workdir}/checkpoints``; keeps ``keep_latest`` recent epochs and 1 best."""
    root = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
    self._managers = {
        LATEST: _manager(os.path.join(root, LATEST), keep_latest, best_by_val_auc=False),
        BEST: _manager(os.path.join(root, BEST), 1, best_by_val_auc=True),
    }

  def latest_epoch(self) -> int | None:
    """Epoch of the newest checkpoint, or None before the first save."""
    return self._managers[LATEST].latest_step()

  def best_epoch(self) -> int | None:
    """Epoch with the highest validation AUC saved so far, or None."""
    return self._managers[BEST].best_step()

  def best_val_auc(self) -> float | None:
    """The highest validation AUC saved so far, or None."""
    epoch = self.best_epoch()
    return None if epoch is None else _val_auc(self._managers[BEST].metrics(epoch))

  def save(self, epoch: int, state: Any, metadata: Mapping[str, Any] | None = None, *,
           val_auc: float | None = None, latest: bool = True) -> bool:
    """Saves ``state`` as the latest checkpoint, and as the best one if ``val_auc`` beats the best.

    Args:
      epoch: completed epoch (the checkpoint's step number).
      state: pytree of arrays (params, batch_stats, opt_state, step, rng; dict or flax struct).
      metadata: extra JSON-serialisable values (e.g. the data-iterator position); stored with
        ``epoch``, ``val_auc``, ``best_epoch`` and ``best_val_auc`` (after this save).
      val_auc: validation AUC of this epoch; NaN or None never becomes best, and ties keep the
        earlier epoch.
      latest: also save it as the latest checkpoint; False only offers it as the best (a run that
        checkpoints every few epochs saves a best epoch that fell between its checkpoints).

    Returns:
      Whether this epoch became the best checkpoint.
    """
    best_val_auc = self.best_val_auc()
    is_best = val_auc is not None and math.isfinite(val_auc) and (best_val_auc is None or val_auc > best_val_auc)
    if is_best:
      best_val_auc = float(val_auc)
    meta = reports.to_jsonable({**(metadata or {}), "epoch": epoch, "val_auc": val_auc,
                                "best_epoch": epoch if is_best else self.best_epoch(),
                                "best_val_auc": best_val_auc})
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    # Best first: a kill between the two saves then repeats this epoch rather than losing its best.
    if is_best:
      self._save(BEST, epoch, args, metrics={"val_auc": best_val_auc})
    if latest:
      self._save(LATEST, epoch, args)
    return is_best

  def _save(self, which: str, epoch: int, args: ocp.args.Composite, metrics: Mapping[str, float] | None = None):
    manager = self._managers[which]
    if epoch in manager.all_steps():  # the epoch is being redone after a resume
      manager.delete(epoch)
    manager.save(epoch, args=args, metrics=metrics, force=True)

  def restore_latest(self, target: Any) -> tuple[Any, dict[str, Any]] | None:
    """``(state, metadata)`` of the newest checkpoint, or None if there is none.

    Args:
      target: a pytree like the saved state, either freshly initialised or abstract
        (``jax.eval_shape``); the restored state has its tree structure (flax struct classes,
        optax states), shapes, dtypes and, for concrete arrays, shardings.
    """
    return self._restore(LATEST, self.latest_epoch(), target)

  def restore_best(self, target: Any) -> tuple[Any, dict[str, Any]] | None:
    """``(state, metadata)`` of the best-validation-AUC checkpoint, or None; ``target`` as above."""
    return self._restore(BEST, self.best_epoch(), target)

  def _restore(self, which: str, epoch: int | None, target: Any) -> tuple[Any, dict[str, Any]] | None:
    if epoch is None:
      return None
    restored = self._managers[which].restore(
        epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    return restored.state, restored.meta

  def close(self) -> None:
    """Waits for pending work and releases both managers."""
    for manager in self._managers.values():
      manager.close()

  def __enter__(self) -> "RunCheckpoints":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


class WorkdirConflictError(ValueError):
  """The workdir holds a different run."""


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """Nested dict -> {"a.b.c": value}."""
  flat = {}
  for key, value in config.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f"{name}."))
    else:
      flat[name] = value
  return flat


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], ignore_keys: Collection[str] = (),
                       later_keys: Collection[str] = (),
                       renamed_keys: Mapping[str, str] | None = None) -> dict[str, tuple[Any, Any]]:
  """Differing entries of two (nested) configs: ``{"a.b": (old, new)}``.

  A missing key equals None (an unset placeholder), so adding an option that defaults to None
  keeps earlier runs resumable and their records valid. ``ignore_keys`` are dotted names whose value (or whole sub-config) does not affect results,
  e.g. ``"log_every_steps"`` or ``"data.num_workers"``. ``later_keys`` are top-level keys added to
  configs after ``old`` may have been written: compared only when ``old`` has them.
  ``renamed_keys`` maps a top-level key of older configs to its current name (read under that name).
  """
  old = {(renamed_keys or {}).get(k, k): v for k, v in old.items()}
  ignore_keys = tuple(ignore_keys) + tuple(k for k in later_keys if k not in old)
  old, new = _flatten(old), _flatten(new)
  differences = {}
  for key in sorted(old.keys() | new.keys()):
    if any(key == ignored or key.startswith(f"{ignored}.") for ignored in ignore_keys):
      continue
    before, after = old.get(key), new.get(key)
    if before != after:
      differences[key] = (before, after)
  return differences


def has_checkpoint(workdir: str | os.PathLike) -> bool:
  """Whether ``workdir`` holds a finished checkpoint (a run that can resume), not just its config."""
  latest = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR, LATEST)
  return os.path.isdir(latest) and any(name.isdigit() for name in os.listdir(latest))


def _move_aside(workdir: str) -> str:
  """Renames ``workdir`` to a free ``{workdir}.old-YYYYmmdd-HHMMSS[-n]`` and returns that path."""
  base = f"{workdir}.old-{time.strftime('%Y%m%d-%H%M%S')}"
  target, n = base, 0
  while os.path.lexists(target):
    n += 1
    target = f"{base}-{n}"
  os.rename(workdir, target)
  return target


def _same_run(workdir: str, config: dict, ignore_keys, later_keys, renamed_keys) -> bool:
  """For a non-empty `workdir`: True when it holds a run of `config` (to resume); False when it holds
  a start of another config without checkpoint (its files other than config.json are moved aside);
  otherwise raises WorkdirConflictError (see `prepare_workdir`)."""
  config_path = os.path.join(workdir, CONFIG_FILENAME)
  if not os.path.exists(config_path):
    raise WorkdirConflictError(
        f"workdir {workdir} is not empty and holds no {CONFIG_FILENAME} "
        f"(found: {', '.join(sorted(os.listdir(workdir))[:5])}). Pass --overwrite to move it aside and start "
        "fresh, or use a new --workdir.")
  differences = config_differences(reports.read_json(config_path), config, ignore_keys, later_keys, renamed_keys)
  if not differences:
    return True
  if has_checkpoint(workdir):
    listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in differences.items())
    raise WorkdirConflictError(
        f"workdir {workdir} holds a run with a different config (differing keys: {listed}). "
        "Pass --overwrite to move the old run aside and start fresh, or use a new --workdir.")
  if set(os.listdir(workdir)) != {CONFIG_FILENAME}:
    logging.warning("moved the old contents of %s (a start without checkpoint) to %s", workdir, _move_aside(workdir))
  return False


def prepare_workdir(workdir: str | os.PathLike, config: Mapping[str, Any], overwrite: bool = False,
                    ignore_keys: Collection[str] = (), later_keys: Collection[str] = (),
                    renamed_keys: Mapping[str, str] | None = None) -> bool:
  """Makes ``workdir`` ready for a run of ``config`` and tells whether to resume.

  * Missing or empty workdir: created, ``config.json`` written; returns False.
  * Workdir of a run with the same config (up to ``ignore_keys``): left as it is (its
    ``config.json`` included); returns True, and the caller resumes from its checkpoints.
  * Workdir whose config differs but that holds no checkpoint (a start that failed or was stopped
    before its first epoch ended): not a run yet, so it is replaced; anything besides its
    ``config.json`` is moved aside first (nothing is deleted); returns False.
  * Any other non-empty workdir: raises ``WorkdirConflictError`` naming the differing keys, unless
    ``overwrite``; then the old workdir is renamed to ``{workdir}.old-<timestamp>`` (nothing is
    deleted) and a fresh one is started; returns False.

  Call it from one process (before other hosts use the workdir).

  Args:
    workdir: run directory.
    config: the resolved config as a nested dict (e.g. ``ConfigDict.to_dict()``); JSON-serialisable.
    overwrite: move a conflicting (or any non-empty) workdir aside and start afresh.
    ignore_keys: dotted config keys that do not affect results (see ``config_differences``).
    later_keys: keys an older run's config may lack (see ``config_differences``).
    renamed_keys: older names of top-level keys (see ``config_differences``).

  Returns:
    True when an existing run with the same config is continued, False for a fresh start.
  """
  workdir = os.path.abspath(workdir)
  config = reports.to_jsonable(config)
  if os.path.isdir(workdir) and os.listdir(workdir):
    if overwrite:
      logging.warning("moved the old contents of %s to %s", workdir, _move_aside(workdir))
    elif _same_run(workdir, config, ignore_keys, later_keys, renamed_keys):
      return True
  os.makedirs(workdir, exist_ok=True)
  reports.write_json_atomic(os.path.join(workdir, CONFIG_FILENAME), config)
  return False
