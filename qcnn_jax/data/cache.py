"""Prepared TFDS data that heals: checked before use, rebuilt from its source when damaged.

TFDS writes a prepared dataset into a temporary folder and renames it into place when complete, so a
kill mid-prepare leaves the previous copy or none. After that rename `prepare` records a digest of the
folder (`qcnn_jax.integrity`); each later use compares file sizes with it (and contents, for copies
up to `HASH_LIMIT_BYTES`) and each split's record count with TFDS's own record before anything is read.
A damaged copy is rebuilt from the source file with one warning line; without a source it stays where
it is and one error names both paths.
"""

from collections.abc import Callable
import logging
import os
import shutil

from array_record.python import array_record_module

from qcnn_jax import integrity
from qcnn_jax.data import sources

HASH_LIMIT_BYTES = 256 * 2**20  # larger prepared copies are checked by sizes and record counts only


def _size(folder: str) -> int:
  return sum(os.path.getsize(os.path.join(root, n)) for root, _, names in os.walk(folder) for n in names)


def _record_count_damage(builder) -> integrity.Damage | None:
  """The first prepared shard whose record count differs from TFDS's record of it, or None."""
  for split in builder.info.splits.values():
    for path, expected in zip(split.filepaths, split.shard_lengths):
      name = os.path.basename(os.fspath(path))
      if not os.path.isfile(path):
        return integrity.Damage(name, "missing")
      try:
        reader = array_record_module.ArrayRecordReader(os.fspath(path))
        count = reader.num_records()
        reader.close()
      except (RuntimeError, OSError, ValueError) as e:
        return integrity.Damage(name, f"unreadable ({integrity.first_line(e)})")
      if count != expected:
        return integrity.Damage(name, f"{count} records, {expected} recorded")
  return None


def find_damage(builder, folder: str | os.PathLike | None = None) -> integrity.Damage | None:
  """How the prepared copy of `builder` differs from its records (the digest of `folder`, by default
  the builder's data folder, and TFDS's record counts), or None when intact."""
  folder = os.fspath(folder or builder.data_dir)
  return (integrity.find_damage(folder, hashes=_size(folder) <= HASH_LIMIT_BYTES)
          or _record_count_damage(builder))


def discard(folder: str | os.PathLike, damage: integrity.Damage, source) -> None:
  """Removes a damaged prepared copy (derived data) with the one warning line saying it is rebuilt from `source`."""
  logging.warning("prepared data %s is damaged (%s): rebuilding it from %s", folder, damage, source)
  shutil.rmtree(folder)


def _record_digest(folder: str) -> None:
  """Records the digest of an intact copy prepared without one; a read-only copy stays unrecorded."""
  try:
    integrity.write_digest(folder)
  except OSError as e:
    logging.info("prepared data %s left without digest (%s)", folder, e)


def prepare(builder, locate_source: Callable[[], str], build: Callable[[], None] | None = None) -> None:
  """Makes sure `builder`'s prepared copy exists and is intact, building or rebuilding it from its source.

  Args:
    builder: a TFDS builder writing array_record files.
    locate_source: returns the source file's path (verifying it), or raises `DatasetNotFoundError`.
    build: prepares the data (default `builder.download_and_prepare`).

  Raises:
    DatasetNotFoundError: the prepared copy is damaged and its source cannot be found (both named).
  """
  build = build or builder.download_and_prepare
  folder = os.fspath(builder.data_dir)
  if builder.is_prepared():
    damage = find_damage(builder)
    if damage is None:
      if not integrity.has_digest(folder):  # prepared before digests were recorded
        _record_digest(folder)
      return
    try:
      source = locate_source()
    except sources.DatasetNotFoundError as e:
      raise sources.DatasetNotFoundError(
          f"the prepared data in {folder} is damaged ({damage}) and cannot be rebuilt: {e}") from e
    discard(folder, damage, source)
  build()
  integrity.write_digest(folder)
