"""Where a run's numbers come from: the code's git commit, the versions of the numerical stack and a
hash of the config, stored in every `summary.json` (no machine path: records travel between
machines and into the repository)."""

from collections.abc import Collection, Mapping
import functools
import hashlib
from importlib import metadata
import json
import os
import subprocess
from typing import Any

PACKAGES = ("jax", "jaxlib", "flax", "optax", "pennylane", "numpy")


def config_hash(config: Mapping[str, Any], ignore_keys: Collection[str] = ()) -> str:
  """SHA-256 (hex) of the config as canonical JSON (sorted keys), without `ignore_keys` (keys that
  do not change results): equal hashes, equal runs."""
  kept = {k: v for k, v in config.items() if k not in ignore_keys}
  return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


@functools.cache
def git_commit() -> str | None:
  """Commit of the checkout this package runs from, with "+dirty" when tracked files differ from it;
  None outside a git checkout (an installed wheel) or without git."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    run = lambda *args: subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10,
                                       check=True).stdout.strip()
    commit = run("rev-parse", "HEAD")
    dirty = run("status", "--porcelain", "--untracked-files=no", "--", "qcnn_jax", "experiments")
  except (OSError, subprocess.SubprocessError):
    return None
  return commit + ("+dirty" if dirty else "")


@functools.cache
def versions() -> dict[str, str | None]:
  """Installed version of each package of `PACKAGES` (None where one is missing)."""
  found = {}
  for name in PACKAGES:
    try:
      found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      found[name] = None
  return found


def provenance(config: Mapping[str, Any], ignore_keys: Collection[str] = ()) -> dict[str, Any]:
  """{"git_commit", "versions", "config_sha256"} of a run made now with `config`."""
  return {"git_commit": git_commit(), "versions": versions(), "config_sha256": config_hash(config, ignore_keys)}
