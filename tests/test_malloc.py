"""glibc malloc settings: when the scripts re-execute, and with what."""

import os
import subprocess
import sys

import pytest

from qcnn_jax import malloc

KEEP = ":".join(malloc.SETTINGS["keep"])


@pytest.fixture
def thp(tmp_path, monkeypatch):
  """Points the kernel's transparent-huge-page mode at a file the test writes; clears the settings."""
  mode = tmp_path / "enabled"
  mode.write_text("always [madvise] never\n")
  monkeypatch.setattr(malloc, "_THP_MODE", str(mode))
  monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  monkeypatch.delenv(malloc.ENV, raising=False)
  monkeypatch.setattr(malloc.platform, "libc_ver", lambda: ("glibc", "2.36"))
  return mode


def test_system_is_the_default_and_unknown_settings_name_the_choices(thp, monkeypatch):
  assert malloc.requested() == "system" and malloc.wanted() is None
  monkeypatch.setenv(malloc.ENV, "")
  assert malloc.requested() == "system"
  monkeypatch.setenv(malloc.ENV, "keep")
  assert malloc.wanted() == KEEP
  monkeypatch.setenv(malloc.ENV, "jemalloc")
  with pytest.raises(malloc.UnknownSetting, match="one of keep, huge, system"):
    malloc.wanted()


@pytest.mark.parametrize("mode, wanted", [("always [madvise] never", True), ("[always] madvise never", True),
                                          ("always madvise [never]", False)])
def test_huge_pages_are_wanted_only_where_the_kernel_gives_them(thp, monkeypatch, mode, wanted):
  thp.write_text(mode + "\n")
  monkeypatch.setenv(malloc.ENV, "huge")
  assert (malloc.wanted() == "glibc.malloc.hugetlb=1") is wanted


@pytest.mark.parametrize("libc, setting, wanted", [(("glibc", "2.36"), "keep", True), (("glibc", "2.31"), "huge", False),
                                                    (("glibc", "2.25"), "keep", False), (("", ""), "keep", False)])
def test_settings_are_wanted_only_where_glibc_has_their_tunables(thp, monkeypatch, libc, setting, wanted):
  monkeypatch.setattr(malloc.platform, "libc_ver", lambda: libc)
  monkeypatch.setenv(malloc.ENV, setting)
  assert (malloc.wanted() is not None) is wanted


def test_no_reexecution_once_the_tunables_are_there_or_for_system(thp, monkeypatch):
  monkeypatch.setenv(malloc.ENV, "keep")
  monkeypatch.setenv("GLIBC_TUNABLES", f"glibc.malloc.tcache_count=0:{KEEP}")
  assert malloc.active() == "keep" and malloc.wanted() is None
  monkeypatch.setenv(malloc.ENV, "system")
  assert malloc.wanted() is None and malloc.active() == "keep"  # system leaves GLIBC_TUNABLES as it is
  monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
  assert malloc.active() == "huge"
  monkeypatch.delenv("GLIBC_TUNABLES")
  assert malloc.active() == "system" and malloc.wanted() is None


def test_reexecution_keeps_interpreter_arguments_and_other_tunables(thp, monkeypatch):
  monkeypatch.setenv(malloc.ENV, "keep")
  monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4")
  monkeypatch.setattr(sys, "orig_argv", ["python3", "-m", "experiments.train", "--workdir=w"])
  calls = []
  monkeypatch.setattr(os, "execve", lambda *args: calls.append(args))
  malloc.configure()
  (path, argv, env), = calls
  assert path == sys.executable and argv == [sys.executable, "-m", "experiments.train", "--workdir=w"]
  assert env["GLIBC_TUNABLES"] == f"glibc.malloc.tcache_count=0:{KEEP}"  # the user's arena_max replaced
  assert env["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize("argv, started", [(["python", "-m", "experiments.train", "--x"], True),
                                           (["python", "-u", "-m", "experiments"], True),
                                           (["python", "-m", "experimentsfoo.train"], False),
                                           (["python", "-m", "pytest", "experiments"], False),
                                           (["python", "script.py", "-m", "experiments.train"], True),
                                           (["python", "-c", "pass"], False), (["python", "-m"], False)])
def test_scripts_are_recognised_by_their_module(monkeypatch, argv, started):
  monkeypatch.setattr(sys, "orig_argv", argv)
  assert malloc.started_as_module("experiments") is started


def test_importing_the_studies_package_reexecutes_only_a_script(thp, monkeypatch):
  monkeypatch.setenv(malloc.ENV, "keep")
  import importlib  # pylint: disable=g-import-not-at-top
  import experiments  # pylint: disable=g-import-not-at-top
  calls = []
  monkeypatch.setattr(os, "execve", lambda *args: calls.append(args))
  monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "pytest", "tests"])
  importlib.reload(experiments)
  assert not calls
  monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "experiments.train", "--workdir=w"])
  importlib.reload(experiments)
  (_, argv, env), = calls
  assert argv[1:] == ["-m", "experiments.train", "--workdir=w"] and env["GLIBC_TUNABLES"] == KEEP


def _clean_env(**extra) -> dict:
  return {**{k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", malloc.ENV)}, **extra}


def test_a_process_reexecutes_once_and_a_script_still_runs():
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(os, "environ", _clean_env())
    if not malloc.available("keep"):
      pytest.skip("not glibc here")
  code = ("import os; from qcnn_jax import malloc; print('start', flush=True); malloc.configure(); "
          "print(os.environ['GLIBC_TUNABLES'], malloc.active())")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                        env=_clean_env(QCNN_JAX_MALLOC="keep"))
  assert done.stdout.split() == ["start", "start", KEEP, "keep"]
  script = subprocess.run([sys.executable, "-m", "experiments.benchmarks.speed", "--helpshort"], capture_output=True,
                          text=True, check=False, env=_clean_env(QCNN_JAX_MALLOC="keep"))
  assert "--[no]check" in script.stdout and "Traceback" not in script.stderr, script.stderr  # absl's help exits 1


def test_a_script_with_an_unknown_setting_stops_with_one_message():
  done = subprocess.run([sys.executable, "-m", "experiments.benchmarks.speed", "--check"], capture_output=True,
                        text=True, check=False, env=_clean_env(QCNN_JAX_MALLOC="tcmalloc"))
  assert done.returncode == 1 and "Traceback" not in done.stderr
  assert "QCNN_JAX_MALLOC='tcmalloc' is not a malloc setting; use one of keep, huge, system" in done.stderr


_FREED_PAGES = """
import ctypes, sys
from qcnn_jax import malloc
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
rss = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])  # KiB
size = 256 << 20
buffer = libc.malloc(ctypes.c_size_t(size))
ctypes.memset(buffer, 1, size)
libc.free(ctypes.c_void_p(buffer))
before = rss()
print(malloc.release(), before - rss())
"""


@pytest.mark.parametrize("setting", ["keep", "system"])
def test_release_returns_a_freed_buffer_kept_by_keep_and_does_nothing_otherwise(setting):
  """Under keep a freed 256 MiB buffer stays resident until `release`; other settings unmap it at free."""
  if not malloc.available("keep") or not os.path.exists("/proc/self/status"):
    pytest.skip("needs glibc and /proc")
  env = _clean_env(GLIBC_TUNABLES=KEEP) if setting == "keep" else _clean_env()
  done = subprocess.run([sys.executable, "-c", _FREED_PAGES], capture_output=True, text=True, check=True, env=env)
  released, kib = done.stdout.split()
  if setting == "keep":
    assert released == "True" and int(kib) > 200 * 1024
  else:
    assert released == "False" and abs(int(kib)) < 50 * 1024
