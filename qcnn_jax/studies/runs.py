"""One run folder type for every study: a live workdir or its committed record.

A folder holds a finished run when its `summary.json` exists (written last) and its `config.json`
was made with the config the study expects (`training.checkpointing.config_differences`, up to the
keys that do not change results); a record copies the small files of a workdir (predictions and
metrics.jsonl gzip-compressed, no machine paths), so either can stand for the run. Seed folders are named `seed{k}`
everywhere.
"""

from collections.abc import Mapping
import dataclasses
import functools
import glob
import json
import logging
import os
from typing import Any

from qcnn_jax.evaluation import reports
from qcnn_jax.training import checkpointing, train

COMPRESSED = ".gz"  # the suffix `reports.copy_files` gives compressed copies
# Config keys that may hold a machine's path and do not change results: a record keeps them empty.
PATH_KEYS = ("data_dir", "tfds_dir")


@functools.lru_cache(maxsize=65536)
def _made_with(config_path: str, identity: tuple, expected: str) -> bool:
  """Whether the config.json at `config_path` (with that file `identity`) was made with the config
  `expected` (canonical JSON); cached, as a report asks about each run several times."""
  del identity  # part of the cache key only
  differences = checkpointing.config_differences(reports.read_json(config_path), json.loads(expected),
                                                 train.NON_RESULT_KEYS, train.LATER_KEYS, train.RENAMED_KEYS)
  if differences:
    logging.warning("%s ignored: made with another config (%s)", os.path.dirname(config_path), sorted(differences))
  return not differences


def seed_dir(seed: int) -> str:
  """The folder name of a seed's run."""
  return f"seed{seed}"


def drop_machine_paths(record_dir: str) -> None:
  """Empties the `PATH_KEYS` of a record's config.json (records travel between machines)."""
  path = os.path.join(record_dir, checkpointing.CONFIG_FILENAME)
  config = reports.read_json(path)
  if any(config.get(k) for k in PATH_KEYS):
    reports.write_json_atomic(path, {**config, **{k: None for k in PATH_KEYS if k in config}})


@dataclasses.dataclass(frozen=True)
class RunFolder:
  """A run's folder (workdir or record)."""
  path: str

  def file(self, name: str) -> str | None:
    """Path of `name` in the folder, or of its compressed copy; None when neither exists."""
    for candidate in (name, name + COMPRESSED):
      if os.path.exists(os.path.join(self.path, candidate)):
        return os.path.join(self.path, candidate)
    return None

  def summary(self) -> dict[str, Any] | None:
    path = os.path.join(self.path, reports.SUMMARY_FILENAME)
    return reports.read_json(path) if os.path.exists(path) else None

  def finished(self, config: Mapping[str, Any] | None) -> bool:
    """True when the folder holds a finished run made with `config` (a nested dict as written to
    config.json; None accepts any config)."""
    if not os.path.exists(os.path.join(self.path, reports.SUMMARY_FILENAME)):
      return False
    config_path = os.path.join(self.path, checkpointing.CONFIG_FILENAME)
    if not os.path.exists(config_path):
      logging.warning("%s ignored: no %s to tell which config made it", self.path, checkpointing.CONFIG_FILENAME)
      return False
    if config is None:
      return True
    st = os.stat(config_path)  # identity of config.json: atomic writes make a new inode
    return _made_with(config_path, (st.st_ino, st.st_mtime_ns, st.st_size),
                      json.dumps(reports.to_jsonable(config), sort_keys=True))

  def test_predictions(self) -> str:
    """The test predictions CSV (or its compressed copy) of a finished run: the only one, or among
    several the one named with the summary's test AUC and ACC (MedMNIST's file names carry them).

    Raises:
      FileNotFoundError: none, or several and none (or more than one) named with the summary's metrics.
    """
    found = sorted(p for suffix in ("", COMPRESSED)
                   for p in glob.glob(os.path.join(glob.escape(self.path), "predictions", f"*_test_*@*.csv{suffix}")))
    if not found:
      raise FileNotFoundError(f"no test predictions CSV in {self.path}/predictions")
    candidates = found
    if len(found) > 1:
      summary = self.summary() or {}
      tag = f"_[AUC]{summary.get('test_auc', float('nan')):.3f}_[ACC]{summary.get('test_acc', float('nan')):.3f}@"
      found = [p for p in found if tag in os.path.basename(p)]
    if len(found) != 1:
      raise FileNotFoundError(f"{self.path}: several test predictions files and not one named with its summary's "
                              f"metrics: {[os.path.basename(p) for p in candidates]}; remove the stale ones")
    return found[0]
