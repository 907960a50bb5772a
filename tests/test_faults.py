"""Faults that must not cost a run: damaged checkpoints, a damaged data cache, two processes in one
workdir, a full disk, a kill during a save. Each ends in one line (no traceback), recovers from an
intact copy or the source where one exists, and loses nothing made earlier."""

import errno
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from qcnn_jax import data, integrity
from qcnn_jax.data import sources
from qcnn_jax.training import checkpointing, lock, train
from test_checkpointing import _assert_identical, _make_state

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _damage(step_dir: pathlib.Path) -> str:
  """Flips the last 3/4 of the bytes of every data file (`d/` folders) of an orbax step's state, as a
  failing disk might; returns the first one's path relative to the step."""
  files = sorted(p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d")
  for target in files:
    content = bytearray(target.read_bytes())
    for i in range(len(content) // 4, len(content)):
      content[i] ^= 0xFF
    target.write_bytes(bytes(content))
  return str(files[0].relative_to(step_dir))


def _three_epochs(workdir) -> None:
  """Checkpoints of epochs 1-3 with validation AUC 0.5, 0.7, 0.6: latest/2, latest/3 and best/2."""
  with checkpointing.RunCheckpoints(workdir) as ckpts:
    for epoch, auc in ((1, 0.5), (2, 0.7), (3, 0.6)):
      ckpts.save(epoch, _make_state(float(epoch)), {"epoch_seen": epoch}, val_auc=auc)


def _warnings(caplog) -> list[str]:
  """This project's warnings (TFDS and orbax log under their own names)."""
  return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "root"]


# --- checkpoints -----------------------------------------------------------------------------------------


def test_a_damaged_latest_checkpoint_is_set_aside_and_the_newest_intact_one_used(tmp_path, caplog):
  _three_epochs(tmp_path)
  latest = tmp_path / "checkpoints" / "latest"
  file = _damage(latest / "3")
  with caplog.at_level(logging.WARNING), checkpointing.RunCheckpoints(tmp_path) as ckpts:
    state, meta = ckpts.restore_latest(jax.eval_shape(_make_state))
    _assert_identical(state, _make_state(2.0))
    assert meta["epoch"] == 2
    assert [d["checkpoint"] for d in ckpts.damaged] == ["latest/3"]
  damaged, continuing = _warnings(caplog)
  assert "latest/3" in damaged and file in damaged and "SHA-256" in damaged and "moved to" in damaged
  assert "latest/2" in continuing
  assert sorted(os.listdir(latest)) == ["2"]
  (aside,) = os.listdir(tmp_path / "checkpoints" / "damaged")
  assert aside.startswith("latest-3-")  # set aside, not deleted


def test_a_damaged_checkpoint_without_digest_is_found_when_it_cannot_be_read(tmp_path, caplog):
  """Checkpoints written before digests existed: an unreadable one is damage, a wrong target is not."""
  _three_epochs(tmp_path)
  for step in (tmp_path / "checkpoints").glob("*/*"):
    (step / integrity.DIGEST_FILENAME).unlink()
  _damage(tmp_path / "checkpoints" / "latest" / "3")
  with caplog.at_level(logging.WARNING), checkpointing.RunCheckpoints(tmp_path) as ckpts:
    with pytest.raises(Exception):  # another tree: the caller's mistake, nothing is set aside
      ckpts.restore_best({"other": np.zeros(2)})
    assert ckpts.damaged == []
    state, _ = ckpts.restore_latest(jax.eval_shape(_make_state))
    _assert_identical(state, _make_state(2.0))
    assert "cannot be read" in ckpts.damaged[0]["problem"]


def test_a_damaged_best_comes_back_from_the_latest_copy_of_its_epoch(tmp_path, caplog):
  _three_epochs(tmp_path)
  _damage(tmp_path / "checkpoints" / "best" / "2")
  with caplog.at_level(logging.WARNING), checkpointing.RunCheckpoints(tmp_path) as ckpts:
    assert (ckpts.best_epoch(), ckpts.best_val_auc()) == (2, 0.7)  # healed: a resumed run keeps its best
    state, meta = ckpts.restore_best(jax.eval_shape(_make_state))
    _assert_identical(state, _make_state(2.0))
    assert not ckpts.save(4, _make_state(4.0), val_auc=0.65)  # 0.65 < 0.7: still not the best
  assert any("restored from its intact copy latest/2" in w for w in _warnings(caplog))


def test_a_damaged_best_without_copy_and_all_damaged_checkpoints_are_one_clear_error(tmp_path):
  _three_epochs(tmp_path)
  for step in ("best/2", "latest/2"):
    _damage(tmp_path / "checkpoints" / step)
  with checkpointing.RunCheckpoints(tmp_path) as ckpts:
    with pytest.raises(checkpointing.CheckpointDamagedError, match="--checkpoint=latest"):
      ckpts.restore_best(jax.eval_shape(_make_state))
    assert ckpts.restore_latest(jax.eval_shape(_make_state))[1]["epoch"] == 3
  _damage(tmp_path / "checkpoints" / "latest" / "3")
  with checkpointing.RunCheckpoints(tmp_path) as ckpts:
    with pytest.raises(checkpointing.CheckpointDamagedError, match="no intact checkpoint.*--overwrite"):
      ckpts.restore_latest(jax.eval_shape(_make_state))
  assert len(os.listdir(tmp_path / "checkpoints" / "damaged")) == 3


def test_a_full_disk_during_a_save_keeps_the_earlier_checkpoints_and_names_the_space(tmp_path, monkeypatch):
  _three_epochs(tmp_path)
  real_save = ocp.CheckpointManager.save

  def full(self, step, *args, **kwargs):  # writes part of the step, then the disk is full
    (pathlib.Path(self.directory) / f"{step}.orbax-checkpoint-tmp").mkdir()
    raise ValueError("Error writing local file: [OS error 28: No space left on device]")

  monkeypatch.setattr(ocp.CheckpointManager, "save", full)
  with checkpointing.RunCheckpoints(tmp_path) as ckpts:
    with pytest.raises(checkpointing.DiskFullError, match=r"no space left.*latest/4 in .*MiB.*after epoch 4"):
      ckpts.save(4, _make_state(4.0), val_auc=0.1)
  monkeypatch.setattr(ocp.CheckpointManager, "save", real_save)
  assert sorted(os.listdir(tmp_path / "checkpoints" / "latest")) == ["2", "3"]  # partial step removed
  with checkpointing.RunCheckpoints(tmp_path) as ckpts:
    _assert_identical(ckpts.restore_latest(jax.eval_shape(_make_state))[0], _make_state(3.0))
    assert ckpts.damaged == []


# --- prepared data ---------------------------------------------------------------------------------------


def _records(dataset: data.Dataset, split: str) -> list[tuple]:
  source = dataset.splits[split]
  return sorted((int(r["index"]), r["image"].tobytes(), tuple(r["label"])) for r in (source[i] for i in range(len(source))))


def test_a_damaged_data_cache_is_rebuilt_from_its_source_with_one_line(tmp_path, caplog):
  tfds_dir = str(tmp_path / "tfds")
  expected = _records(data.load_dataset("breastmnist", tfds_dir=tfds_dir, allow_download=False), "train")
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    data.load_dataset("breastmnist", tfds_dir=tfds_dir, allow_download=False)
  assert _warnings(caplog) == []  # an intact copy is used as it is
  (train_file,) = pathlib.Path(tfds_dir).rglob("*-train.array_record-*")
  train_file.write_bytes(train_file.read_bytes()[:train_file.stat().st_size // 2])  # an interrupted copy
  with caplog.at_level(logging.WARNING):
    rebuilt = data.load_dataset("breastmnist", tfds_dir=tfds_dir, allow_download=False)
  (line,) = _warnings(caplog)
  assert train_file.name in line and "damaged" in line and "rebuilding it from" in line and "breastmnist.npz" in line
  assert _records(rebuilt, "train") == expected


def test_a_damaged_data_cache_without_source_is_one_error_naming_both(tmp_path, monkeypatch):
  tfds_dir = str(tmp_path / "tfds")
  data.load_dataset("breastmnist", tfds_dir=tfds_dir, allow_download=False)
  (val_file,) = pathlib.Path(tfds_dir).rglob("*-val.array_record-*")
  val_file.write_bytes(b"\0" * val_file.stat().st_size)  # same size, other content
  monkeypatch.setattr(sources, "EMBEDDED_DIR", tmp_path / "no_source")
  monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "no_source"))
  with pytest.raises(data.DatasetNotFoundError, match=rf"{val_file.parent}.*damaged.*{val_file.name}.*breastmnist.npz"):
    data.load_dataset("breastmnist", tfds_dir=tfds_dir, data_dir=str(tmp_path / "no_source"), allow_download=False)
  assert val_file.exists()  # kept for the user to decide


def test_a_damaged_folder_dataset_cache_is_rebuilt_from_the_users_folder(tmp_path, caplog):
  _image_folder(tmp_path / "images")
  load = lambda: data.load_dataset("folder", size=16, data_dir=str(tmp_path / "images"), tfds_dir=str(tmp_path / "tfds"))
  expected = _records(load(), "train")
  (train_file,) = (tmp_path / "tfds").rglob("*-train.array_record-*")
  train_file.write_bytes(train_file.read_bytes()[:-100])
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    rebuilt = load()
  (line,) = _warnings(caplog)
  assert "damaged" in line and train_file.name in line and str(tmp_path / "images") in line
  assert _records(rebuilt, "train") == expected


def _image_folder(root: pathlib.Path, seed: int = 0) -> pathlib.Path:
  """Two class folders of ten random 20 x 20 PNGs each."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  for label in ("a", "b"):
    (root / label).mkdir(parents=True, exist_ok=True)
    for i in range(10):
      Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(root / label / f"{i}.png")
  return root


def test_a_run_on_a_folder_whose_images_changed_is_refused_not_resumed_on_them(tmp_path):
  from experiments.configs import medmnist as medmnist_config  # pylint: disable=g-import-not-at-top
  config = medmnist_config.get_config()
  config.update({"dataset": "folder", "data_dir": str(_image_folder(tmp_path / "images")), "size": 16,
                 "tfds_dir": str(tmp_path / "tfds"), "model": "resnet18", "num_epochs": 1, "batch_size": 8,
                 "eval_batch_size": 8, "progress": False, "compilation_cache": False, "num_threads": 0})
  config.model_options.width = 4
  train.train_and_evaluate(config, str(tmp_path / "run"))
  digest = json.loads((tmp_path / "run" / "config.json").read_text())[train.DATA_DIGEST_KEY]
  _image_folder(tmp_path / "images", seed=1)  # the same names, other images
  with pytest.raises(checkpointing.WorkdirConflictError, match=f"{train.DATA_DIGEST_KEY}: '{digest}' ->"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def test_a_prepare_killed_midway_leaves_no_cache_and_the_next_one_builds_it(tmp_path, monkeypatch):
  from qcnn_jax.data import medmnist  # pylint: disable=g-import-not-at-top
  real = medmnist.MedmnistV2._generate_examples

  def interrupted(self, path, split):
    for n, example in enumerate(real(self, path, split)):
      if n == 100:
        raise KeyboardInterrupt
      yield example

  monkeypatch.setattr(medmnist.MedmnistV2, "_generate_examples", interrupted)
  tfds_dir = str(tmp_path / "tfds")
  with pytest.raises(KeyboardInterrupt):
    data.load_dataset("breastmnist", tfds_dir=tfds_dir, allow_download=False)
  assert not list(pathlib.Path(tfds_dir).rglob("*.array_record-*"))  # only TFDS's temporary folder, if any
  monkeypatch.setattr(medmnist.MedmnistV2, "_generate_examples", real)
  assert data.load_dataset("breastmnist", tfds_dir=tfds_dir, allow_download=False).sizes["train"] == 546


# --- one process per workdir ---------------------------------------------------------------------------


def test_the_workdir_lock_refuses_a_second_holder_and_dies_with_its_process(tmp_path):
  with lock.hold(tmp_path):
    with pytest.raises(lock.FolderBusyError, match=rf"in use by process {os.getpid()} on .*started"):
      with lock.hold(tmp_path):
        pass
  holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
      import sys, time
      from qcnn_jax.training import lock
      with lock.hold({str(tmp_path)!r}):
        print("held", flush=True)
        time.sleep(60)
  """)], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(lock.FolderBusyError, match=f"process {holder.pid}"):
      with lock.hold(tmp_path):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  with lock.hold(tmp_path):  # the OS released the killed holder's lock: never stale
    pass


# --- commands end to end -------------------------------------------------------------------------------

# README command 1's config with a width-4 ResNet-18 (what is tested does not depend on the model; its
# compilation is the cheapest), 2 epochs.
FLAGS = ("--config=experiments/configs/quick.py", "--config.model=resnet18", "--config.model_options.width=4",
         "--config.num_epochs=2", "--config.progress=False")


def _command(module: str, workdir, *extra) -> list[str]:
  return [sys.executable, "-m", f"experiments.{module}", f"--workdir={workdir}", *extra]


def _run(args, **kwargs) -> subprocess.CompletedProcess:
  return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, **kwargs)


def _one_line(result: subprocess.CompletedProcess, rc: int, starts: str) -> str:
  """The command's single line holding `starts`, after checking its status and that no traceback was printed."""
  assert result.returncode == rc, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  (line,) = [l for l in (result.stdout + result.stderr).splitlines() if starts in l]
  return line


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """(config flags, finished workdir, summary) of an uninterrupted run of `FLAGS`."""
  tmp = tmp_path_factory.mktemp("faults")
  flags = FLAGS + (f"--config.tfds_dir={tmp / 'tfds'}",)
  workdir = tmp / "reference"
  _one_line(_run(_command("train", workdir, *flags)), 0, "test AUC")
  return flags, workdir, json.loads((workdir / "summary.json").read_text())


def _unfinished_copy(workdir: pathlib.Path, to: pathlib.Path) -> pathlib.Path:
  """A copy of a finished run as a crash before its summary would leave it."""
  shutil.copytree(workdir, to, ignore=shutil.ignore_patterns(lock.LOCK_FILENAME))
  (to / "summary.json").unlink()
  return to


def _same_result(summary: dict, reference: dict) -> None:
  for key in ("test_auc", "test_acc", "val_auc", "best_epoch"):
    assert summary[key] == reference[key], key


def test_a_run_whose_latest_checkpoint_is_damaged_resumes_from_the_previous_one(uninterrupted, tmp_path):
  flags, reference, expected = uninterrupted
  workdir = _unfinished_copy(reference, tmp_path / "run")
  damaged = [s for s in ("latest/1", "best/1") if (workdir / "checkpoints" / s).is_dir()]  # the last epoch's
  for step in damaged:
    _damage(workdir / "checkpoints" / step)
  result = _run(_command("train", workdir, *flags))
  _one_line(result, 0, "test AUC")
  lines = [l for l in result.stderr.splitlines() if "is damaged" in l]
  assert len(lines) == len(damaged) and all("moved to" in l for l in lines), result.stderr[-3000:]
  summary = json.loads((workdir / "summary.json").read_text())
  _same_result(summary, expected)  # epoch 2 retrained from epoch 1's checkpoint: the same run
  assert [d["checkpoint"] for d in summary["checkpoint_recovery"]] == damaged
  assert {d["resumed_after_epoch"] for d in summary["checkpoint_recovery"]} == {1}


def test_evaluate_on_a_damaged_best_names_the_checkpoint_and_the_fix(uninterrupted, tmp_path):
  _, reference, expected = uninterrupted
  workdir = tmp_path / "run"
  shutil.copytree(reference, workdir)
  best = expected["best_epoch"] - 1
  for step in (f"best/{best}", f"latest/{best}"):
    if (workdir / "checkpoints" / step).is_dir():
      _damage(workdir / "checkpoints" / step)
  line = _one_line(_run(_command("evaluate", workdir, "--split=test")), 1, "error:")
  assert f"best/{best}" in line and "--checkpoint=latest" in line
  result = _run(_command("evaluate", workdir, "--split=test", "--checkpoint=latest"))
  assert result.returncode == 0 and "test: AUC" in result.stdout, result.stderr[-3000:]


def test_a_second_run_in_a_busy_workdir_is_refused_and_touches_nothing(uninterrupted, tmp_path):
  flags, reference, _ = uninterrupted
  workdir = _unfinished_copy(reference, tmp_path / "run")
  with lock.hold(workdir):
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in workdir.rglob("*")}
    line = _one_line(_run(_command("train", workdir, *flags)), 2, "error:")
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in workdir.rglob("*")} == before
  assert f"in use by process {os.getpid()}" in line


_KILLED_IN_SAVE = textwrap.dedent("""
    import os, signal, sys
    import orbax.checkpoint as ocp
    from orbax.checkpoint._src.path import atomicity
    real_save, real_finalize = ocp.CheckpointManager.save, atomicity.AtomicRenameTemporaryPath.finalize
    armed = False

    def save(self, step, *args, **kwargs):  # arms the kill for the latest checkpoint of epoch 2
      global armed
      armed = step == 1 and str(self.directory).endswith("latest")
      return real_save(self, step, *args, **kwargs)

    async def finalize(self, *args, **kwargs):  # the step is written, not yet renamed into place
      if armed:
        os.kill(os.getpid(), signal.SIGKILL)
      return await real_finalize(self, *args, **kwargs)

    ocp.CheckpointManager.save, atomicity.AtomicRenameTemporaryPath.finalize = save, finalize
    sys.argv = ["train"] + sys.argv[1:]
    from experiments import cli, train
    cli.run(train.main)
""")


def test_a_run_killed_during_a_checkpoint_save_ends_like_an_uninterrupted_one(uninterrupted, tmp_path):
  flags, _, expected = uninterrupted
  workdir = tmp_path / "run"
  killed = _run([sys.executable, "-c", _KILLED_IN_SAVE, f"--workdir={workdir}", *flags])
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  assert not (workdir / "summary.json").exists()
  _one_line(_run(_command("train", workdir, *flags)), 0, "test AUC")
  _same_result(json.loads((workdir / "summary.json").read_text()), expected)
