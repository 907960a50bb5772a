"""Huge pages for glibc's malloc: when the scripts re-execute, and how."""

import os
import subprocess
import sys

import pytest

from qcnn_jax import hugepages


@pytest.fixture
def thp(tmp_path, monkeypatch):
  """Points the kernel's transparent-huge-page mode at a file the test writes; clears the settings."""
  mode = tmp_path / "enabled"
  monkeypatch.setattr(hugepages, "_THP_MODE", str(mode))
  monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  monkeypatch.setenv("QCNN_JAX_HUGE_PAGES", "1")
  monkeypatch.setattr(hugepages.platform, "libc_ver", lambda: ("glibc", "2.36"))
  return mode


@pytest.mark.parametrize("mode, wanted", [("always [madvise] never", True), ("[always] madvise never", True),
                                          ("always madvise [never]", False)])
def test_huge_pages_are_wanted_only_where_the_kernel_gives_them(thp, mode, wanted):
  thp.write_text(mode + "\n")
  assert hugepages.wanted() is wanted


def test_no_reexecution_unless_asked_for_and_possible(thp, monkeypatch):
  thp.write_text("always [madvise] never\n")
  monkeypatch.setenv("GLIBC_TUNABLES", f"glibc.malloc.arena_max=2:{hugepages.TUNABLE}")
  assert hugepages.active() and not hugepages.wanted()
  monkeypatch.delenv("GLIBC_TUNABLES")
  for off in ("0", ""):
    monkeypatch.setenv("QCNN_JAX_HUGE_PAGES", off)
    assert not hugepages.wanted()
  monkeypatch.delenv("QCNN_JAX_HUGE_PAGES")
  assert not hugepages.wanted()  # opt-in
  monkeypatch.setenv("QCNN_JAX_HUGE_PAGES", "1")
  monkeypatch.setattr(hugepages, "_THP_MODE", str(thp) + ".missing")
  assert not hugepages.wanted()
  monkeypatch.setattr(hugepages, "_THP_MODE", str(thp))
  monkeypatch.setattr(hugepages.platform, "libc_ver", lambda: ("", ""))
  assert not hugepages.wanted()


def test_reexecution_keeps_interpreter_arguments_and_other_tunables(thp, monkeypatch):
  thp.write_text("always [madvise] never\n")
  monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
  monkeypatch.setattr(sys, "orig_argv", ["python3", "-m", "experiments.train", "--workdir=w"])
  calls = []
  monkeypatch.setattr(os, "execve", lambda *args: calls.append(args))
  hugepages.use_huge_pages()
  (path, argv, env), = calls
  assert path == sys.executable and argv == [sys.executable, "-m", "experiments.train", "--workdir=w"]
  assert env["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{hugepages.TUNABLE}"
  assert env["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize("argv, started", [(["python", "-m", "experiments.train", "--x"], True),
                                           (["python", "-u", "-m", "experiments"], True),
                                           (["python", "-m", "experimentsfoo.train"], False),
                                           (["python", "-m", "pytest", "experiments"], False),
                                           (["python", "script.py", "-m", "experiments.train"], True),
                                           (["python", "-c", "pass"], False), (["python", "-m"], False)])
def test_scripts_are_recognised_by_their_module(monkeypatch, argv, started):
  monkeypatch.setattr(sys, "orig_argv", argv)
  assert hugepages.started_as_module("experiments") is started


def test_importing_the_studies_package_reexecutes_only_a_script(thp, monkeypatch):
  import importlib  # pylint: disable=g-import-not-at-top
  import experiments  # pylint: disable=g-import-not-at-top
  thp.write_text("always [madvise] never\n")
  calls = []
  monkeypatch.setattr(os, "execve", lambda *args: calls.append(args))
  monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "pytest", "tests"])
  importlib.reload(experiments)
  assert not calls
  monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "experiments.train", "--workdir=w"])
  importlib.reload(experiments)
  (_, argv, env), = calls
  assert argv[1:] == ["-m", "experiments.train", "--workdir=w"] and env["GLIBC_TUNABLES"] == hugepages.TUNABLE


def test_a_process_reexecutes_once_and_a_script_still_runs_where_the_kernel_has_huge_pages():
  env = {**{k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}, "QCNN_JAX_HUGE_PAGES": "1"}
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(os, "environ", env)
    if not hugepages.available():
      pytest.skip("no transparent huge pages (or not glibc) here")
  code = ("import os; from qcnn_jax import hugepages; print('start', flush=True); hugepages.use_huge_pages(); "
          "print(os.environ['GLIBC_TUNABLES'])")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
  assert done.stdout.split() == ["start", "start", hugepages.TUNABLE]
  script = subprocess.run([sys.executable, "-m", "experiments.benchmarks.speed", "--helpshort"], capture_output=True,
                          text=True, check=False, env=env)
  assert "--[no]check" in script.stdout and "Traceback" not in script.stderr, script.stderr  # absl's help exits 1
