"""Content digests of folders, damage found from them, and damaged copies set aside.

A finished folder (a checkpoint step, a prepared dataset) gets a ``digest.json`` listing each file's
size in bytes and SHA-256; `find_damage` compares the folder with it before anything is read, and
`set_aside` renames a damaged folder out of the way (nothing is deleted). Disk-full failures, which
libraries report in several ways, are recognised by `is_disk_full`.
"""

import dataclasses
import errno
import hashlib
import json
import os
import time

from qcnn_jax.evaluation import reports

DIGEST_FILENAME = "digest.json"


@dataclasses.dataclass(frozen=True)
class Damage:
  """What is wrong with a folder: the first file that differs from its record, and how."""
  file: str
  reason: str

  def __str__(self) -> str:
    return f"{self.file}: {self.reason}"


def _files(folder: str) -> list[str]:
  """Paths of every file under `folder` relative to it, sorted, the digest itself left out."""
  found = []
  for root, _, names in os.walk(folder):
    found += [os.path.relpath(os.path.join(root, n), folder) for n in names]
  return sorted(f for f in found if f != DIGEST_FILENAME)


def sha256(path: str | os.PathLike) -> str:
  """Hex SHA-256 of the file at `path`."""
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def folder_digest(folder: str | os.PathLike) -> dict[str, dict]:
  """{relative path: {"bytes": size, "sha256": hex digest}} of every file under `folder`."""
  folder = os.fspath(folder)
  return {f: {"bytes": os.path.getsize(os.path.join(folder, f)), "sha256": sha256(os.path.join(folder, f))}
          for f in _files(folder)}


def write_digest(folder: str | os.PathLike) -> None:
  """Records `folder_digest(folder)` in `{folder}/digest.json` (written atomically, last)."""
  reports.write_json_atomic(os.path.join(folder, DIGEST_FILENAME),
                            {"algorithm": "sha256", "files": folder_digest(folder)})


def has_digest(folder: str | os.PathLike) -> bool:
  """Whether `folder` holds a recorded digest."""
  return os.path.isfile(os.path.join(folder, DIGEST_FILENAME))


def find_damage(folder: str | os.PathLike, hashes: bool = True) -> Damage | None:
  """The first way `folder` differs from its recorded digest, or None (also when none is recorded).

  Sizes are compared first (a truncated file costs no reading), then, with `hashes`, contents.
  """
  path = os.path.join(folder, DIGEST_FILENAME)
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      recorded = json.load(f)["files"]
  except (OSError, ValueError, KeyError) as e:
    return Damage(DIGEST_FILENAME, f"unreadable ({e})")
  for name, entry in recorded.items():
    file = os.path.join(folder, name)
    if not os.path.isfile(file):
      return Damage(name, "missing")
    size = os.path.getsize(file)
    if size != entry["bytes"]:
      return Damage(name, f"{size} bytes, {entry['bytes']} recorded")
  for name, entry in recorded.items() if hashes else ():
    if sha256(os.path.join(folder, name)) != entry["sha256"]:
      return Damage(name, "content differs from its recorded SHA-256")
  return None


def free_path(base: str) -> str:
  """`{base}-YYYYmmdd-HHMMSS`, or with `-1`, `-2`, ... appended, whichever does not exist yet."""
  base = f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"
  target, n = base, 0
  while os.path.lexists(target):
    n += 1
    target = f"{base}-{n}"
  return target


def set_aside(path: str | os.PathLike, into: str | os.PathLike, label: str) -> str:
  """Renames `path` to a free `{into}/{label}-YYYYmmdd-HHMMSS[-n]` (`into` created) and returns it."""
  os.makedirs(into, exist_ok=True)
  target = free_path(os.path.join(into, label))
  os.rename(path, target)
  return target


def is_disk_full(error: BaseException | None) -> bool:
  """Whether `error` (or an error it was raised from) is a full disk: ENOSPC or its message."""
  while error is not None:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
      return True
    if "No space left on device" in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


def first_line(error: BaseException, limit: int = 200) -> str:
  """The first non-empty line of `error`'s message, cut to `limit` characters."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
  return lines[0] if len(lines[0]) <= limit else lines[0][:limit - 3] + "..."
