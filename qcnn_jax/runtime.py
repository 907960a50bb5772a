"""Process-level JAX settings shared by scripts, tests and benchmarks."""

import logging
import os
import sys

import jax
import tqdm

DEFAULT_CACHE_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "qcnn_jax", "jax_compilation_cache"
)


def enable_compilation_cache(cache_dir: str | None = None) -> str:
  """Turns on JAX's persistent compilation cache so reruns skip XLA compilation.

  Args:
    cache_dir: directory for compiled executables; defaults to ``$QCNN_JAX_CACHE_DIR`` or
      ``~/.cache/qcnn_jax/jax_compilation_cache``.

  Returns:
    The directory in use.
  """
  cache_dir = cache_dir or os.environ.get("QCNN_JAX_CACHE_DIR") or DEFAULT_CACHE_DIR
  os.makedirs(cache_dir, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", cache_dir)
  # Cache every executable that took noticeable time to build (the QCNN gradients do).
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return cache_dir


class _LibraryInfoFilter(logging.Filter):
  """Drops INFO (and lower) records emitted from inside the given libraries' source trees."""

  def __init__(self, libraries: tuple[str, ...]):
    super().__init__()
    self._markers = tuple(f"{os.sep}{name}{os.sep}" for name in libraries)

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno > logging.INFO or not any(m in record.pathname for m in self._markers)


def quiet_library_logs(libraries: tuple[str, ...] = ("orbax", "tensorflow_datasets", "jax", "grain", "qiskit")) -> None:
  """Hides the per-operation INFO logs of orbax, TFDS, JAX, grain and qiskit (warnings still show),
  so that a training log shows the run's own progress lines."""
  for handler in logging.getLogger().handlers + logging.getLogger("absl").handlers:
    handler.addFilter(_LibraryInfoFilter(libraries))


def progress_bar(total: int, *, enabled: bool = True, **kwargs) -> tqdm.tqdm:
  """A tqdm bar on stderr, shown only when `enabled` and stderr is a terminal (logs stay as they are).

  Its ETA is the remaining work at the average pace since the bar started (smoothing 0), so time
  spent between updates (evaluation, checkpoints, reports) counts in it.
  """
  return tqdm.tqdm(total=total, disable=not (enabled and sys.stderr.isatty()), smoothing=0.0, dynamic_ncols=True,
                   **kwargs)
