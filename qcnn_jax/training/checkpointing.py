"""Checkpoints of a training run (orbax) and the workdir guard.

A workdir holds::

  config.json                  the resolved config of the run (``prepare_workdir``)
  checkpoints/latest/<epoch>/  the last ``keep_latest`` epochs, for resuming
  checkpoints/best/<epoch>/    the epoch with the highest validation AUC, for evaluation

Each ``<epoch>`` directory holds two orbax items: ``state``, the train-state pytree, and ``meta``,
small JSON metadata (epoch, validation AUC, best so far, data-iterator position, ...), and a
``digest.json`` (`qcnn_jax.integrity`) with every file's size and SHA-256. Checkpoints are verified
against their digests when opened and read; a damaged one is moved to ``checkpoints/damaged/`` with
one warning line, and the newest intact one is used instead.
"""

from collections.abc import Collection, Mapping
import errno
import logging
import math
import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp

from qcnn_jax import integrity
from qcnn_jax.evaluation import reports
from qcnn_jax.training import lock

CONFIG_FILENAME = "config.json"
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
BEST = "best"
DAMAGED = "damaged"


class CheckpointDamagedError(RuntimeError):
  """No intact checkpoint is left where one is needed."""


class DiskFullError(OSError):
  """A checkpoint could not be written: the disk is full."""


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
  rename and the step's digest. A process killed mid-save therefore leaves the previous checkpoints
  intact; the temporary directory is invisible to restore and removed when the run restarts. A save
  that finds the disk full removes its partial step and raises `DiskFullError`.

  Opening verifies every step against its digest; restoring also sets aside a step without digest
  that cannot be read. Each damaged step is reported in one warning line and listed in `damaged`.
  """

  def __init__(self, workdir: str | os.PathLike, keep_latest: int = 2):
    """Opens (or creates) ``{workdir}/checkpoints``; keeps ``keep_latest`` recent epochs and 1 best."""
    self._root = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
    self.damaged: list[dict[str, str]] = []  # {"checkpoint", "problem", "set_aside_as"} of each damaged step
    self._verified: set[tuple[str, int]] = set()  # steps checked against their digest, or saved, by this object
    for which in (LATEST, BEST):
      for epoch in _step_numbers(os.path.join(self._root, which)):
        damage = integrity.find_damage(self._step_dir(which, epoch))
        if damage is not None:
          self._set_aside(which, epoch, str(damage), reload=False)
        elif integrity.has_digest(self._step_dir(which, epoch)):
          self._verified.add((which, epoch))
    self._managers = {
        LATEST: _manager(os.path.join(self._root, LATEST), keep_latest, best_by_val_auc=False),
        BEST: _manager(os.path.join(self._root, BEST), 1, best_by_val_auc=True),
    }
    self._heal_best()

  def _step_dir(self, which: str, epoch: int) -> str:
    return os.path.join(self._root, which, str(epoch))

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

    Raises:
      DiskFullError: the disk filled up; the step being written is removed, earlier ones are intact.
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
      self._save(BEST, epoch, args, state, metrics={"val_auc": best_val_auc})
    if latest:
      self._save(LATEST, epoch, args, state)
    return is_best

  def _save(self, which: str, epoch: int, args: ocp.args.Composite, state: Any,
            metrics: Mapping[str, float] | None = None):
    manager = self._managers[which]
    if epoch in manager.all_steps():  # the epoch is being redone after a resume
      manager.delete(epoch)
    try:
      manager.save(epoch, args=args, metrics=metrics, force=True)
      integrity.write_digest(self._step_dir(which, epoch))
      self._verified.add((which, epoch))
    except Exception as e:  # orbax and tensorstore report a full disk in several exception types
      if not integrity.is_disk_full(e):
        raise
      raise self._disk_full(which, epoch, state) from e

  def _disk_full(self, which: str, epoch: int, state: Any) -> DiskFullError:
    """Removes the partial step `which/epoch` and describes the failure, naming the space needed."""
    folder = os.path.join(self._root, which)
    for name in os.listdir(folder):
      if name == str(epoch) or name.startswith(f"{epoch}.orbax-checkpoint-tmp"):
        shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    self._managers[which].reload()
    needed = sum(getattr(x, "nbytes", 0) for x in jax.tree.leaves(state)) / 2**20
    free = shutil.disk_usage(folder).free / 2**20
    resume = self.latest_epoch()
    return DiskFullError(
        errno.ENOSPC,
        f"no space left on the device while saving checkpoint {which}/{epoch} in {folder} (a checkpoint of "
        f"this run takes about {needed:.0f} MiB, {free:.0f} MiB are free): free some space there (or move the "
        "workdir to another disk), then rerun the same command; it resumes "
        + ("from the start" if resume is None else f"after epoch {resume + 1}") + ". Earlier checkpoints are intact.")

  def restore_latest(self, target: Any) -> tuple[Any, dict[str, Any]] | None:
    """``(state, metadata)`` of the newest intact checkpoint (latest, else best), or None if there is none.

    Args:
      target: a pytree like the saved state, either freshly initialised or abstract
        (``jax.eval_shape``); the restored state has its tree structure (flax struct classes,
        optax states), shapes, dtypes and, for concrete arrays, shardings. None reads the arrays
        as they were saved.

    Raises:
      CheckpointDamagedError: checkpoints were saved, but every one is damaged.
    """
    steps = [(LATEST, e) for e in self._managers[LATEST].all_steps()] + [
        (BEST, e) for e in self._managers[BEST].all_steps()]
    for which, epoch in sorted(steps, key=lambda s: (-s[1], s[0] == BEST)):
      restored = self._restore_intact(which, epoch, target)
      if restored is not None:
        if self.damaged:
          logging.warning("continuing from checkpoint %s/%d, the newest intact one", which, epoch)
        return restored
    if self.damaged:
      raise CheckpointDamagedError(
          f"no intact checkpoint is left in {self._root} (damaged: {self._damage_list()}; set aside in "
          f"{os.path.join(self._root, DAMAGED)}): rerun with --overwrite to start the run afresh.")
    return None

  def restore_best(self, target: Any) -> tuple[Any, dict[str, Any]] | None:
    """``(state, metadata)`` of the best-validation-AUC checkpoint, or None if none was saved; a
    damaged best is replaced by the latest checkpoint of the same epoch when that is intact.

    Raises:
      CheckpointDamagedError: the best checkpoint is damaged and no intact copy of its epoch exists.
    """
    for epoch in self._managers[BEST].all_steps():
      restored = self._restore_intact(BEST, epoch, target)
      if restored is not None:
        return restored
    lost = self._damaged_epochs(BEST)
    if not lost:
      return None
    if max(lost) in self._managers[LATEST].all_steps():
      restored = self._restore_intact(LATEST, max(lost), target)
      if restored is not None:
        return restored
    raise CheckpointDamagedError(
        f"the best checkpoint of {os.path.dirname(self._root)} is damaged ({self._damage_list()}; set aside in "
        f"{os.path.join(self._root, DAMAGED)}) and no intact copy of its epoch is left: evaluate the latest "
        "checkpoint instead (--checkpoint=latest), or retrain the run in a new workdir.")

  def _heal_best(self) -> None:
    """Saves the latest checkpoint of a damaged best's epoch as the best again, so a resumed run keeps
    choosing its best against the right validation AUC."""
    lost = self._damaged_epochs(BEST)
    if not lost or self._managers[BEST].all_steps() or max(lost) not in self._managers[LATEST].all_steps():
      return
    restored = self._restore_intact(LATEST, max(lost), None)
    if restored is not None:
      state, meta = restored
      args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
      self._save(BEST, max(lost), args, state, metrics={"val_auc": meta["val_auc"]})
      logging.warning("best checkpoint (epoch %d) restored from its intact copy latest/%d", max(lost), max(lost))

  def _damaged_epochs(self, which: str) -> list[int]:
    return [int(d["checkpoint"].split("/")[1]) for d in self.damaged if d["checkpoint"].startswith(f"{which}/")]

  def _restore_intact(self, which: str, epoch: int, target: Any) -> tuple[Any, dict[str, Any]] | None:
    """`_restore` of a step, or None after setting it aside when it is damaged: it differs from its
    digest, or (without digest) it cannot be read even without a target (a read that fails only for
    `target`, e.g. another tree structure, is not damage and raises). A step this object already
    verified or wrote is not hashed again."""
    verified = (which, epoch) in self._verified
    damage = None if verified else integrity.find_damage(self._step_dir(which, epoch))
    if damage is None:
      try:
        return self._restore(which, epoch, target)
      except Exception as e:  # orbax and tensorstore report unreadable data in several exception types
        if (verified or integrity.has_digest(self._step_dir(which, epoch)) or target is None
            or self._readable(which, epoch)):
          raise
        damage = f"cannot be read: {integrity.first_line(e)}"
    self._set_aside(which, epoch, str(damage))
    return None

  def _readable(self, which: str, epoch: int) -> bool:
    try:
      self._restore(which, epoch, None)
      return True
    except Exception:  # pylint: disable=broad-except
      return False

  def _restore(self, which: str, epoch: int, target: Any) -> tuple[Any, dict[str, Any]]:
    restored = self._managers[which].restore(
        epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    return restored.state, restored.meta

  def _set_aside(self, which: str, epoch: int, problem: str, reload: bool = True) -> None:
    """Moves a damaged step to ``checkpoints/damaged/`` and reports it in one warning line."""
    moved = integrity.set_aside(self._step_dir(which, epoch), os.path.join(self._root, DAMAGED), f"{which}-{epoch}")
    self.damaged.append({"checkpoint": f"{which}/{epoch}", "problem": problem,
                         "set_aside_as": os.path.relpath(moved, os.path.dirname(self._root))})
    logging.warning("checkpoint %s/%d of %s is damaged (%s): moved to %s", which, epoch,
                    os.path.dirname(self._root), problem, moved)
    if reload:
      self._managers[which].reload()

  def _damage_list(self) -> str:
    return "; ".join(f"{d['checkpoint']}: {d['problem']}" for d in self.damaged)

  def close(self) -> None:
    """Waits for pending work and releases both managers."""
    for manager in self._managers.values():
      manager.close()

  def __enter__(self) -> "RunCheckpoints":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def _step_numbers(folder: str) -> list[int]:
  """The finished step numbers (digit-named folders) in `folder`."""
  return sorted(int(n) for n in os.listdir(folder) if n.isdigit()) if os.path.isdir(folder) else []


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


def _contents(workdir: str) -> list[str]:
  """Names in `workdir` other than its lock file."""
  return sorted(n for n in os.listdir(workdir) if n != lock.LOCK_FILENAME)


def _move_aside(workdir: str) -> str:
  """Moves the contents of `workdir` (its lock file stays) to a free `{workdir}.old-YYYYmmdd-HHMMSS[-n]`
  and returns that path."""
  target = integrity.free_path(f"{workdir}.old")
  os.makedirs(target)
  for name in _contents(workdir):
    os.rename(os.path.join(workdir, name), os.path.join(target, name))
  return target


def _same_run(workdir: str, config: dict, ignore_keys, later_keys, renamed_keys) -> bool:
  """For a non-empty `workdir`: True when it holds a run of `config` (to resume); False when it holds
  a start of another config without checkpoint (its files other than config.json are moved aside);
  otherwise raises WorkdirConflictError (see `prepare_workdir`)."""
  config_path = os.path.join(workdir, CONFIG_FILENAME)
  if not os.path.exists(config_path):
    raise WorkdirConflictError(
        f"workdir {workdir} is not empty and holds no {CONFIG_FILENAME} "
        f"(found: {', '.join(_contents(workdir)[:5])}). Pass --overwrite to move it aside and start "
        "fresh, or use a new --workdir.")
  differences = config_differences(reports.read_json(config_path), config, ignore_keys, later_keys, renamed_keys)
  if not differences:
    return True
  if has_checkpoint(workdir):
    listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in differences.items())
    raise WorkdirConflictError(
        f"workdir {workdir} holds a run with a different config (differing keys: {listed}). "
        "Pass --overwrite to move the old run aside and start fresh, or use a new --workdir.")
  if _contents(workdir) != [CONFIG_FILENAME]:
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
    ``overwrite``; then the old workdir's contents are moved to ``{workdir}.old-<timestamp>``
    (nothing is deleted; the workdir's lock file stays) and a fresh run is started; returns False.

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
  if os.path.isdir(workdir) and _contents(workdir):
    if overwrite:
      logging.warning("moved the old contents of %s to %s", workdir, _move_aside(workdir))
    elif _same_run(workdir, config, ignore_keys, later_keys, renamed_keys):
      return True
  os.makedirs(workdir, exist_ok=True)
  reports.write_json_atomic(os.path.join(workdir, CONFIG_FILENAME), config)
  return False
