"""glibc malloc settings for XLA:CPU's per-step buffers, applied by re-executing the process.

XLA:CPU allocates each execution's temporary buffer afresh and frees it after (0.99 GB for a
ResNet-50 train step at 28 px, batch 32; 3.7 GB at batch 128). glibc serves such a request with a
fresh ``mmap`` and returns it with ``munmap``, so every step faults its buffer in again, 4 KiB at a
time: 241,000 page faults per step at batch 32, each a zeroed page from the kernel. ``mmap_max=0``
alone does not stop it: a thread's own arena grows in heaps of at most 64 MiB and falls back to
``mmap`` for anything larger. Settings (``$QCNN_JAX_MALLOC``; docs/performance.md has the numbers):

* ``system`` (default): the process's ``GLIBC_TUNABLES`` left as they are.
* ``keep``: one arena (``arena_max=1``), no mmaps (``mmap_max=0``) and no automatic trimming, so a
  freed buffer stays mapped and later steps reuse its pages; the trainer calls `release` between
  training and evaluation. Train steps ran 1.16-1.34x faster, but the heap still grows within a
  phase: three-epoch BreastMNIST runs at batch 128 peaked at 8.8-12.2 GiB (16.2 GiB without
  `release`) against 5.6-5.7 GiB. For machines with the memory to spare.
* ``huge``: transparent huge pages for glibc's mmaps (``hugetlb=1``, glibc >= 2.35, the kernel's THP on
  "always" or "madvise"): a few thousand faults per step, but the first step after an evaluation pass
  waited seconds longer in training.

glibc reads ``GLIBC_TUNABLES`` only when a process starts, so `configure` re-executes the process
once with the chosen tunables added. Standard library only: it runs before the heavy imports.
"""

import ctypes
import os
import platform
import sys

ENV = "QCNN_JAX_MALLOC"
DEFAULT = "system"
SETTINGS = {
    "keep": ("glibc.malloc.arena_max=1", "glibc.malloc.mmap_max=0", "glibc.malloc.trim_threshold=68719476736"),
    "huge": ("glibc.malloc.hugetlb=1",),
    "system": (),
}
_MIN_GLIBC = {"keep": (2, 26), "huge": (2, 35), "system": (0, 0)}
_THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"


class UnknownSetting(ValueError):
  """``$QCNN_JAX_MALLOC`` names no setting."""


def requested() -> str:
  """The setting ``$QCNN_JAX_MALLOC`` asks for (`DEFAULT` when unset or empty); raises
  `UnknownSetting` naming the choices otherwise."""
  name = os.environ.get(ENV) or DEFAULT
  if name not in SETTINGS:
    raise UnknownSetting(f"{ENV}={name!r} is not a malloc setting; use one of {', '.join(SETTINGS)} "
                         f"(unset means {DEFAULT!r}; see qcnn_jax/malloc.py).")
  return name


def _tunables() -> list[str]:
  return [t for t in os.environ.get("GLIBC_TUNABLES", "").split(":") if t]


def active() -> str:
  """The setting this process's glibc started with: ``keep`` or ``huge`` when all of its tunables are
  in ``GLIBC_TUNABLES``, else ``system``."""
  present = set(_tunables())
  return next((name for name, tunables in SETTINGS.items() if tunables and present.issuperset(tunables)), "system")


def available(name: str) -> bool:
  """True where setting `name` can take effect: glibc recent enough, and for ``huge`` the kernel's
  transparent huge pages on "always" or "madvise"."""
  libc, version = platform.libc_ver()
  if libc != "glibc" or tuple(int(p) for p in version.split(".")[:2]) < _MIN_GLIBC[name]:
    return False
  if name != "huge":
    return True
  try:
    with open(_THP_MODE) as f:
      mode = f.read()
  except OSError:
    return False
  return "[always]" in mode or "[madvise]" in mode


def wanted() -> str | None:
  """The ``GLIBC_TUNABLES`` value `configure` would re-execute with, or None: where the requested
  setting is available and some of its tunables are missing (other tunables kept, same keys replaced)."""
  name, present = requested(), _tunables()
  if set(SETTINGS[name]) <= set(present) or not available(name):
    return None
  keys = {t.split("=")[0] for t in SETTINGS[name]}
  return ":".join([t for t in present if t.split("=")[0] not in keys] + list(SETTINGS[name]))


def configure() -> None:
  """Re-executes this process (same interpreter, arguments and environment) with the requested
  setting's tunables where `wanted`; otherwise returns. Call it before anything else in a script."""
  tunables = wanted()
  if tunables is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, "GLIBC_TUNABLES": tunables})


def started_as_module(package: str) -> bool:
  """True when this process was started as ``python [options] -m <package>.<module>`` (or the
  package itself)."""
  argv = sys.orig_argv[1:]
  if "-m" not in argv or argv.index("-m") + 1 >= len(argv):
    return False
  name = argv[argv.index("-m") + 1]
  return name == package or name.startswith(package + ".")


def release() -> bool:
  """Under ``keep``, returns the heap's free pages to the kernel (glibc's ``malloc_trim(0)``, which
  also releases free pages inside the heap, not only at its top); a no-op under other settings.
  Call it between phases whose buffers differ (after an epoch's training, after its evaluation),
  not between steps.
  Returns whether it trimmed."""
  if active() != "keep":
    return False
  return bool(ctypes.CDLL(None).malloc_trim(0))
