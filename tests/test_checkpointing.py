"""qcnn_jax.training.checkpointing: orbax round trips, latest/best retention, killed saves, workdir guard."""

import json
import os
import subprocess
import sys
import textwrap

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qcnn_jax.training import checkpointing


@flax.struct.dataclass
class TrainState:
  params: dict
  batch_stats: dict
  opt_state: optax.OptState
  step: jax.Array
  rng: jax.Array


def _make_state(scale: float = 1.0, updates: int = 2) -> TrainState:
  """A small train state whose Adam moments are non-trivial after ``updates`` steps."""
  scale = float(scale)
  tx = optax.adam(1e-2)
  params = {"dense": {"kernel": jnp.arange(6.0).reshape(2, 3) * scale, "bias": jnp.ones(3, jnp.bfloat16)},
            "theta": jnp.linspace(0.0, 1.0, 4)}
  opt_state = tx.init(params)
  for _ in range(updates):
    grads = jax.tree.map(lambda p: jnp.ones_like(p) * scale, params)
    step_updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, step_updates)
  return TrainState(params=params, batch_stats={"mean": jnp.full((3,), scale)}, opt_state=opt_state,
                    step=jnp.asarray(updates, jnp.int32), rng=jax.random.split(jax.random.key(int(scale)))[0])


def _assert_identical(actual, expected):
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    assert a.dtype == e.dtype and a.shape == e.shape
    if jax.dtypes.issubdtype(e.dtype, jax.dtypes.prng_key):
      a, e = jax.random.key_data(a), jax.random.key_data(e)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_round_trip_is_exact(tmp_path):
  state = _make_state(3.0)
  with checkpointing.RunCheckpoints(tmp_path) as ckpt:
    assert ckpt.latest_epoch() is None and ckpt.best_val_auc() is None
    assert ckpt.restore_latest(state) is None and ckpt.restore_best(state) is None
    assert ckpt.save(1, state, {"data_position": {"epoch": 1, "index": 42}}, val_auc=np.float32(0.8))
  with checkpointing.RunCheckpoints(tmp_path) as ckpt:  # a new process
    for target in (jax.eval_shape(lambda: state), _make_state(1.0)):
      for restore in (ckpt.restore_latest, ckpt.restore_best):
        restored, meta = restore(target)
        assert isinstance(restored, TrainState)
        _assert_identical(restored, state)
        assert meta == {"data_position": {"epoch": 1, "index": 42}, "epoch": 1, "val_auc": pytest.approx(0.8),
                        "best_epoch": 1, "best_val_auc": pytest.approx(0.8)}


def test_latest_keeps_last_and_best_keeps_highest(tmp_path):
  val_aucs = [0.5, 0.7, float("nan"), 0.6, 0.7, None]  # NaN/None never best, the 0.7 tie keeps epoch 2
  with checkpointing.RunCheckpoints(tmp_path, keep_latest=2) as ckpt:
    became_best = [ckpt.save(epoch, _make_state(epoch, updates=1), val_auc=auc)
                   for epoch, auc in enumerate(val_aucs, start=1)]
  assert became_best == [True, True, False, False, False, False]
  assert sorted(os.listdir(tmp_path / "checkpoints" / "latest")) == ["5", "6"]
  assert sorted(os.listdir(tmp_path / "checkpoints" / "best")) == ["2"]
  with checkpointing.RunCheckpoints(tmp_path, keep_latest=2) as ckpt:
    assert (ckpt.latest_epoch(), ckpt.best_epoch(), ckpt.best_val_auc()) == (6, 2, 0.7)
    target = jax.eval_shape(_make_state)
    best, meta = ckpt.restore_best(target)
    _assert_identical(best, _make_state(2, updates=1))
    assert meta["epoch"] == 2
    latest, meta = ckpt.restore_latest(target)
    _assert_identical(latest, _make_state(6, updates=1))
    assert (meta["epoch"], meta["best_epoch"], meta["best_val_auc"]) == (6, 2, 0.7)


def test_redone_epoch_replaces_its_checkpoint(tmp_path):
  with checkpointing.RunCheckpoints(tmp_path) as ckpt:
    ckpt.save(1, _make_state(1.0), val_auc=0.6)
    ckpt.save(1, _make_state(2.0), val_auc=0.9)  # e.g. epoch 1 rerun after a resume
    assert (ckpt.latest_epoch(), ckpt.best_epoch(), ckpt.best_val_auc()) == (1, 1, 0.9)
    _assert_identical(ckpt.restore_best(_make_state())[0], _make_state(2.0))
    _assert_identical(ckpt.restore_latest(_make_state())[0], _make_state(2.0))


# Saves epoch 1, then is killed (os._exit, no clean-up) inside epoch 2's save, after orbax wrote
# every file of the step but before its atomic rename.
_KILLED_CHILD = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, os.path.dirname({test_file!r}))
    from orbax.checkpoint._src.path import atomicity
    import test_checkpointing as t
    from qcnn_jax.training import checkpointing

    ckpt = checkpointing.RunCheckpoints({workdir!r})
    ckpt.save(1, t._make_state(1.0), val_auc=0.5)

    async def killed(self, *args, **kwargs):
      os._exit(3)

    atomicity.AtomicRenameTemporaryPath.finalize = killed
    ckpt.save(2, t._make_state(2.0), val_auc=0.4)
""")


def test_save_killed_midway_keeps_previous_checkpoint(tmp_path):
  child = _KILLED_CHILD.format(test_file=os.path.abspath(__file__), workdir=str(tmp_path))
  result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
  assert result.returncode == 3, result.stderr[-2000:]
  latest_dir = tmp_path / "checkpoints" / "latest"
  assert sorted(os.listdir(latest_dir)) == ["1", "2.orbax-checkpoint-tmp"]  # half-done save left behind

  with checkpointing.RunCheckpoints(tmp_path) as ckpt:
    assert (ckpt.latest_epoch(), ckpt.best_epoch()) == (1, 1)
    restored, meta = ckpt.restore_latest(jax.eval_shape(_make_state))
    _assert_identical(restored, _make_state(1.0))
    assert meta["epoch"] == 1
    ckpt.save(2, _make_state(2.0), val_auc=0.4)  # the resumed run redoes epoch 2
  assert sorted(os.listdir(latest_dir)) == ["1", "2"]  # the stale temporary directory is gone


def test_prepare_workdir_new_and_same_config(tmp_path):
  workdir = tmp_path / "run"
  config = {"model": {"name": "qcnn", "widths": (8, 4)}, "lr": 0.01, "log_every_steps": 50}
  assert checkpointing.prepare_workdir(workdir, config) is False
  assert json.loads((workdir / "config.json").read_text()) == {
      "model": {"name": "qcnn", "widths": [8, 4]}, "lr": 0.01, "log_every_steps": 50}
  (workdir / "checkpoints").mkdir()
  resumed = dict(config, log_every_steps=10)  # only an ignorable key differs
  assert checkpointing.prepare_workdir(workdir, resumed, ignore_keys={"log_every_steps"}) is True
  assert json.loads((workdir / "config.json").read_text())["log_every_steps"] == 50  # left as it was

  empty = tmp_path / "empty"
  empty.mkdir()
  assert checkpointing.prepare_workdir(empty, config) is False
  assert (empty / "config.json").exists()


def test_prepare_workdir_different_config_raises_with_keys(tmp_path):
  workdir = tmp_path / "run"
  config = {"model": {"name": "qcnn", "depth": 2}, "lr": 0.01, "data": {"num_workers": 4}}
  checkpointing.prepare_workdir(workdir, config)
  (workdir / "checkpoints" / "latest" / "0").mkdir(parents=True)  # a run that finished an epoch
  changed = {"model": {"name": "qcnn", "depth": 3}, "lr": 0.01, "seed": 1, "data": {"num_workers": 8}}
  with pytest.raises(checkpointing.WorkdirConflictError) as error:
    checkpointing.prepare_workdir(workdir, changed, ignore_keys={"data"})
  message = str(error.value)
  assert "model.depth: 2 -> 3" in message and "seed: None -> 1" in message
  assert "num_workers" not in message and "lr" not in message
  assert "--overwrite" in message and "--workdir" in message
  assert checkpointing.config_differences(config, changed, ignore_keys={"data.num_workers"}) == {
      "model.depth": (2, 3), "seed": (None, 1)}


def test_prepare_workdir_without_checkpoint_is_not_a_run_yet(tmp_path):
  """A start that failed before its first checkpoint does not lock the workdir to its config."""
  workdir = tmp_path / "run"
  checkpointing.prepare_workdir(workdir, {"lr": 0.1})
  assert not checkpointing.has_checkpoint(workdir)
  assert checkpointing.prepare_workdir(workdir, {"lr": 0.2}) is False
  assert json.loads((workdir / "config.json").read_text()) == {"lr": 0.2}
  assert [p.name for p in tmp_path.iterdir()] == ["run"]  # only a config.json was replaced

  (workdir / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n')  # stopped mid-epoch: kept aside
  (workdir / "checkpoints" / "latest" / "3.orbax-checkpoint-tmp-1").mkdir(parents=True)  # unfinished save
  assert checkpointing.prepare_workdir(workdir, {"lr": 0.3}) is False
  assert os.listdir(workdir) == ["config.json"]
  (old,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
  assert (old / "metrics.jsonl").read_text().startswith('{"step": 1')

  (workdir / "checkpoints" / "latest" / "0").mkdir(parents=True)
  assert checkpointing.has_checkpoint(workdir)
  with pytest.raises(checkpointing.WorkdirConflictError, match="lr: 0.3 -> 0.4"):
    checkpointing.prepare_workdir(workdir, {"lr": 0.4})


def test_prepare_workdir_overwrite_moves_old_run_aside(tmp_path):
  workdir = tmp_path / "run"
  checkpointing.prepare_workdir(workdir, {"lr": 0.1})
  (workdir / "notes.txt").write_text("mine")
  assert checkpointing.prepare_workdir(workdir, {"lr": 0.2}, overwrite=True) is False
  assert os.listdir(workdir) == ["config.json"]
  assert json.loads((workdir / "config.json").read_text()) == {"lr": 0.2}
  (old,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
  assert (old / "notes.txt").read_text() == "mine"
  assert json.loads((old / "config.json").read_text()) == {"lr": 0.1}

  checkpointing.prepare_workdir(workdir, {"lr": 0.2}, overwrite=True)  # same second: a second, distinct name
  assert len([p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]) == 2

  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "data.bin").write_bytes(b"x")
  with pytest.raises(checkpointing.WorkdirConflictError, match="no config.json"):
    checkpointing.prepare_workdir(foreign, {"lr": 0.1})
  assert (foreign / "data.bin").exists()
