"""Transparent huge pages for XLA:CPU's buffers: glibc's malloc tunable, set by re-executing (opt-in).

XLA:CPU maps each execution's temporary buffer afresh and unmaps it after (3.7 GB for a ResNet-50
train step at 28 px, batch 128): in 4 KiB pages that is about a million page faults per step, in
2 MiB pages a few thousand, and back-to-back steps ran 1.26-1.45x faster. But in training the first
step after each evaluation pass took 4.6-6.3 s longer with them, which cost more than the steps gained
on BreastMNIST (4 steps per epoch; docs/performance.md), so they are opt-in: ``QCNN_JAX_HUGE_PAGES=1``.
glibc reads ``GLIBC_TUNABLES`` only when a process starts, so `use_huge_pages` re-executes the
process with it. Standard library only: it runs before the heavy imports.
"""

import os
import platform
import sys

TUNABLE = "glibc.malloc.hugetlb=1"
_THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"


def active() -> bool:
  """True when this process's glibc malloc was started asking for transparent huge pages."""
  return TUNABLE in os.environ.get("GLIBC_TUNABLES", "").split(":")


def available() -> bool:
  """True on Linux with glibc where the kernel's transparent huge pages are on "always" or "madvise"."""
  if platform.libc_ver()[0] != "glibc":
    return False
  try:
    with open(_THP_MODE) as f:
      mode = f.read()
  except OSError:
    return False
  return "[always]" in mode or "[madvise]" in mode


def wanted() -> bool:
  """True when `use_huge_pages` would re-execute: ``$QCNN_JAX_HUGE_PAGES`` is "1", huge pages are
  `available` and not yet `active`."""
  return os.environ.get("QCNN_JAX_HUGE_PAGES") == "1" and not active() and available()


def use_huge_pages() -> None:
  """Re-executes this process (same interpreter, arguments and environment) with
  ``GLIBC_TUNABLES`` asking glibc's malloc for transparent huge pages, where `wanted`; otherwise
  returns. Call it before anything else in a script."""
  if not wanted():
    return
  tunables = [t for t in os.environ.get("GLIBC_TUNABLES", "").split(":") if t]
  env = {**os.environ, "GLIBC_TUNABLES": ":".join(tunables + [TUNABLE])}
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def started_as_module(package: str) -> bool:
  """True when this process was started as ``python [options] -m <package>.<module>`` (or the
  package itself)."""
  argv = sys.orig_argv[1:]
  if "-m" not in argv or argv.index("-m") + 1 >= len(argv):
    return False
  name = argv[argv.index("-m") + 1]
  return name == package or name.startswith(package + ".")
