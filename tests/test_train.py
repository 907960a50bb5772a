"""Training loop end to end on synthetic BreastMNIST-shaped data: reports, resume, guards, sharding."""

import io
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.configs import medmnist as medmnist_config
from qcnn_jax import data, models, parallel
from qcnn_jax.evaluation import reports
from qcnn_jax.training import checkpointing, train
from qcnn_jax.data import medical_mnist, sources

SPLITS = {"train": 128, "val": 32, "test": 48}


@pytest.fixture(scope="module")
def synthetic_breast(tmp_path_factory):
  """A learnable BreastMNIST look-alike (bright = class 1) registered under the real flag."""
  rng = np.random.default_rng(0)
  arrays = {}
  for split, n in SPLITS.items():
    labels = rng.integers(0, 2, (n, 1), dtype=np.uint8)
    base = np.where(labels[:, :, None] == 1, 170, 80)
    arrays[f"{split}_images"] = np.clip(base + rng.normal(0, 30, (n, 28, 28)), 0, 255).astype(np.uint8)
    arrays[f"{split}_labels"] = labels
  folder = tmp_path_factory.mktemp("src")
  np.savez(folder / "breastmnist.npz", **arrays)
  patched = dict(sources.INFO["breastmnist"], MD5=sources.md5sum(folder / "breastmnist.npz"), n_samples=SPLITS)
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(sources.INFO, "breastmnist", patched)
    yield folder


def tiny_config(src: pathlib.Path, tfds_dir: pathlib.Path, **overrides):
  config = medmnist_config.get_config()
  config.dataset = "breastmnist"
  config.data_dir = str(src)
  config.tfds_dir = str(tfds_dir)
  config.allow_download = False
  config.model = "resnet50_qcnn"
  config.model_options = {"width": 4, "n_qubits": 4, "stem": "cifar"}
  config.num_epochs = 2
  config.batch_size = 16
  config.eval_batch_size = 16
  config.learning_rate = 1e-2
  config.log_every_steps = 4
  config.num_threads = 0
  config.compilation_cache = False  # conftest already enabled it
  for key, value in overrides.items():
    config[key] = value
  return config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, synthetic_breast):
  """A residual hybrid's run: its gate, circuit diagnostics and gate-off report are all recorded."""
  tmp_path = tmp_path_factory.mktemp("finished")
  config = tiny_config(synthetic_breast, tmp_path / "tfds", model="resnet50_qcnn_residual")
  workdir = tmp_path / "run_a"
  summary = train.train_and_evaluate(config, str(workdir))
  return config, workdir, summary


def epoch_records(workdir: pathlib.Path) -> list[dict]:
  return [r for r in reports.read_metrics(workdir / "metrics.jsonl") if "train_loss" in r]


def test_two_epochs_improve_the_loss_and_write_every_report(finished_run, tmp_path, synthetic_breast):
  config, workdir, summary = finished_run
  epochs = epoch_records(workdir)
  assert [r["epoch"] for r in epochs] == [0, 1]
  assert epochs[1]["train_loss"] < epochs[0]["train_loss"]
  for key in ("test_auc", "test_acc", "val_auc", "best_epoch", "num_params", "quantum_params", "n_qubits",
              "wall_time_s", "images_per_s"):
    assert key in summary, key
  assert summary["n_qubits"] == 4 and 0 < summary["quantum_params"] < summary["num_params"]
  assert summary["selected_checkpoint"] == "best_val_auc" and summary["selection_split"] == "val"
  best = max(range(2), key=lambda e: epochs[e]["val_auc"])  # the reported epoch is the best-validation one
  assert summary["best_epoch"] == best + 1 and summary["val_auc"] == epochs[best]["val_auc"], summary
  assert summary["test_auc"] > 0.9, summary  # the classes are separable
  assert json.loads((workdir / "config.json").read_text())["model"] == "resnet50_qcnn_residual"
  names = sorted(p.name for p in (workdir / "predictions").iterdir())
  assert [n.split("_[AUC]")[0] for n in names] == ["breastmnist_test", "breastmnist_train", "breastmnist_val"]
  index, scores = reports.read_predictions_csv(next((workdir / "predictions").glob("breastmnist_test_*")))
  np.testing.assert_array_equal(index, np.arange(SPLITS["test"]))
  assert scores.shape == (SPLITS["test"], 2)
  for plot in ("learning_curves.png", "roc_test.png", "confusion_test.png"):
    assert (workdir / "plots" / plot).stat().st_size > 1000
  # Evaluating the saved best checkpoint again reproduces the test metrics.
  again, gate_off = train.evaluate_workdir(str(workdir), "test")
  assert again["test"]["auc"] == pytest.approx(summary["test_auc"], abs=1e-6)
  assert again["test"]["acc"] == pytest.approx(summary["test_acc"], abs=1e-6)
  # The residual head's gate of the reported epoch, and its linear path's test metrics (gate at 0).
  assert summary["residual_gate"] == epochs[summary["best_epoch"] - 1]["residual_gate"] != 0
  assert gate_off == {k: summary[k] for k in ("residual_gate", "test_auc_gate_off", "test_acc_gate_off",
                                              "test_balanced_accuracy_gate_off")}


def read_event_scalars(folder: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value)]} of TensorBoard event files, parsed from their record framing (uint64
  length, CRC, Event proto, CRC) independently of the writer."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  scalars = {}
  for path in sorted(folder.glob("events.out.tfevents.*")):
    data, offset = path.read_bytes(), 0
    while offset < len(data):
      length = int.from_bytes(data[offset:offset + 8], "little")
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 12 + length + 4
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


def test_runs_stream_their_scalars_to_tensorboard(finished_run):
  config, workdir, _ = finished_run
  scalars = read_event_scalars(workdir / "tensorboard")
  steps = [r for r in reports.read_metrics(workdir / "metrics.jsonl") if "loss" in r]
  assert [step for step, _ in scalars["train/loss"]] == [r["step"] for r in steps]
  np.testing.assert_allclose([v for _, v in scalars["train/loss"]], [r["loss"] for r in steps], rtol=1e-6)
  assert scalars["train/learning_rate"][0][1] == pytest.approx(config.learning_rate)
  assert "train/block_learning_rate" in scalars and "train/images_per_s" in scalars
  epochs = epoch_records(workdir)
  assert [step for step, _ in scalars["epoch/val_auc"]] == [r["step"] for r in epochs]
  np.testing.assert_allclose([v for _, v in scalars["epoch/val_auc"]], [r["val_auc"] for r in epochs], rtol=1e-6)
  for tag in ("epoch/grad_norm_quantum", "epoch/saturated", "epoch/train_loss"):
    assert len(scalars[tag]) == 2, tag


class FakeTerminal(io.StringIO):
  def isatty(self):
    return True


@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar_on_a_terminal_only_when_asked(tmp_path, synthetic_breast, monkeypatch, progress):
  terminal = FakeTerminal()
  monkeypatch.setattr(sys, "stderr", terminal)
  config = tiny_config(synthetic_breast, tmp_path / "tfds", num_epochs=1, progress=progress)
  train.train_and_evaluate(config, str(tmp_path / "run"))
  shown = terminal.getvalue()
  assert ("resnet50_qcnn breastmnist" in shown and "8/8" in shown) is progress  # 128 images / batch 16


def run_killed_in_epoch(config, workdir: pathlib.Path, kill_epoch: int, monkeypatch) -> None:
  """Runs `train_and_evaluate` until a simulated kill at the start of epoch `kill_epoch`."""
  original = train.Trainer.train_epoch

  def killed(self, state, epoch, log, progress):
    if epoch == kill_epoch:
      raise KeyboardInterrupt("simulated kill")
    return original(self, state, epoch, log, progress)

  monkeypatch.setattr(train.Trainer, "train_epoch", killed)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, str(workdir))
  monkeypatch.setattr(train.Trainer, "train_epoch", original)


def test_resume_after_a_kill_ends_like_an_uninterrupted_run(finished_run, tmp_path, synthetic_breast, monkeypatch):
  config, workdir_a, summary_a = finished_run
  workdir_b = tmp_path / "run_b"
  run_killed_in_epoch(config, workdir_b, 1, monkeypatch)
  summary_b = train.train_and_evaluate(config, str(workdir_b))
  for key in ("test_auc", "test_acc", "val_auc", "best_epoch"):
    assert summary_b[key] == summary_a[key], key
  assert [r["train_loss"] for r in epoch_records(workdir_b)][-1] == epoch_records(workdir_a)[-1]["train_loss"]


def test_resumed_run_keeps_one_record_per_epoch(tmp_path, synthetic_breast, monkeypatch):
  """Epochs after the last checkpoint are redone on resume; their old records are dropped."""
  config = tiny_config(synthetic_breast, tmp_path / "tfds", num_epochs=3, checkpoint_every_epochs=2)
  workdir = tmp_path / "sparse_resume"
  run_killed_in_epoch(config, workdir, 2, monkeypatch)
  assert [r["epoch"] for r in epoch_records(workdir)] == [0, 1]  # checkpoint after epoch 1
  (workdir / "metrics.jsonl").open("a").write('{"epoch": 2, "step": 99, "loss": 1.0}\n{"epoch": 2, "st')
  train.train_and_evaluate(config, str(workdir))
  assert [r["epoch"] for r in epoch_records(workdir)] == [0, 1, 2]
  steps = [r["step"] for r in reports.read_metrics(workdir / "metrics.jsonl") if "loss" in r]
  assert steps == sorted(set(steps)) and 99 not in steps


def test_other_config_in_workdir_is_refused_unless_overwrite(finished_run, synthetic_breast):
  config, workdir, _ = finished_run
  other = tiny_config(synthetic_breast, pathlib.Path(config.tfds_dir), learning_rate=3e-3)
  with pytest.raises(ValueError, match="learning_rate.*--overwrite"):
    train.train_and_evaluate(other, str(workdir))
  assert json.loads((workdir / "config.json").read_text())["learning_rate"] == config.learning_rate


def test_a_run_stores_its_model_options_so_a_changed_default_is_not_taken_for_it(finished_run):
  config, workdir, _ = finished_run
  path = workdir / "config.json"
  written = path.read_text()
  resolved = json.loads(written)["model_resolved"]
  assert resolved == models.resolved_options("resnet50_qcnn_residual", width=4, n_qubits=4, stem="cifar")
  assert resolved["width"] == 4 and resolved["residual"] is True and resolved["conv_unit"] == "su4"
  # The same config resumes (a finished run: nothing to do) ...
  assert train.train_and_evaluate(config, str(workdir))["test_auc"] is not None
  # ... but not a workdir whose model then ran with another default (here: the legacy head scale).
  path.write_text(json.dumps(dict(json.loads(written), model_resolved=dict(resolved, angle_scale=1.5708))))
  try:
    with pytest.raises(ValueError, match="model_resolved.angle_scale.*--overwrite"):
      train.train_and_evaluate(config, str(workdir))
  finally:
    path.write_text(written)


@pytest.mark.parametrize("key,value,message", [
    ("dataset", "breastmnst", "Unknown dataset 'breastmnst'"),
    ("dataset", "organmnist3d", "3D sets are not supported"),
    ("model", "resnet51", "unknown model 'resnet51'"),
    ("schedule", "cosine", "Unknown schedule 'cosine'"),
    ("optimizer", "lamb", "Unknown optimizer 'lamb'"),
    ("class_weights", "inverse", "class_weights 'inverse' not in"),
    ("model_options", {"width": 4, "n_qubits": 4, "stem": "cifar", "conv_unit": "su5"}, "conv_unit 'su5'"),
])
def test_invalid_config_is_refused_before_the_workdir_is_touched(tmp_path, synthetic_breast, key, value, message):
  config = tiny_config(synthetic_breast, tmp_path / "tfds", **{key: value})
  with pytest.raises(train.ConfigError, match=message):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_missing_data_is_refused_before_the_workdir_is_touched(tmp_path, synthetic_breast):
  config = tiny_config(tmp_path / "empty", tmp_path / "tfds", dataset="pneumoniamnist")
  with pytest.raises(data.DatasetNotFoundError):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_validation_auc_never_finite_reports_the_latest_checkpoint(tmp_path, synthetic_breast, monkeypatch):
  """A validation split with one class has no AUC: the run ends on its latest checkpoint and says so."""
  arrays = dict(np.load(synthetic_breast / "breastmnist.npz"))
  arrays["val_labels"] = np.zeros_like(arrays["val_labels"])
  folder = tmp_path / "one_class_val"
  folder.mkdir()
  np.savez(folder / "breastmnist.npz", **arrays)
  monkeypatch.setitem(sources.INFO, "breastmnist",
                      dict(sources.INFO["breastmnist"], MD5=sources.md5sum(folder / "breastmnist.npz")))
  summary = train.train_and_evaluate(tiny_config(folder, tmp_path / "tfds"), str(tmp_path / "run"))
  assert summary["selected_checkpoint"] == "latest" and summary["best_epoch"] == 2
  assert summary["val_auc"] is None or summary["val_auc"] != summary["val_auc"]
  again, _ = train.evaluate_workdir(str(tmp_path / "run"), "test")  # the latest checkpoint is the reported one
  assert again["test"]["auc"] == pytest.approx(summary["test_auc"], abs=1e-6)
  assert train.describe_selection(summary) == "validation AUC never finite: latest epoch 2"


def test_split_without_validation_reports_its_last_epoch_not_a_val_auc(tmp_path, monkeypatch):
  """Hassan et al.'s 80/20 Medical MNIST split has no validation split: nothing is called val AUC."""
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(6), 10)
  images = np.clip(labels[:, None, None] * 40 + rng.normal(0, 10, (60, 64, 64)), 0, 255).astype(np.uint8)
  np.savez(tmp_path / "medical_mnist_64.npz", images=images, labels=labels,
           class_names=np.array(medical_mnist.CLASS_NAMES))
  monkeypatch.setattr(medical_mnist, "CLASS_COUNTS", (10,) * 6)
  config = tiny_config(tmp_path, tmp_path / "tfds", dataset="medical_mnist", size=64, split_scheme="80_20",
                       model="qcnn", model_options={"n_qubits": 4})
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert (summary["selection_split"], summary["selected_checkpoint"], summary["best_epoch"]) == ("train", "latest", 2)
  last = [r for r in reports.read_metrics(tmp_path / "run" / "metrics.jsonl") if "train_loss" in r][-1]
  assert summary["val_auc"] is None and summary["train_auc_selected"] == last["train_auc"]
  assert train.describe_selection(summary).startswith("no validation split: last epoch 2, train AUC")


def test_selection_is_described_as_it_was_made():
  assert train.describe_selection({"selected_checkpoint": "best_val_auc", "val_auc": 0.91234, "best_epoch": 7}) == (
      "best val AUC 0.9123 at epoch 7")
  no_val = {"selected_checkpoint": "latest", "selection_split": "train", "val_auc": None,
            "train_auc_selected": 0.99, "best_epoch": 2}  # Hassan et al.'s 80/20 split
  assert train.describe_selection(no_val) == "no validation split: last epoch 2, train AUC 0.9900"


def test_hybrid_fine_tuned_from_a_classical_run_starts_as_that_run(tmp_path, synthetic_breast):
  """--config.init_from: the residual hybrid (g = 0) gets the run's backbone and final layer, so its
  first predictions are the classical run's; a backbone of another width is refused."""
  classical = tiny_config(synthetic_breast, tmp_path / "tfds", model="resnet50", num_epochs=1,
                          model_options={"width": 4, "stem": "cifar"})
  train.train_and_evaluate(classical, str(tmp_path / "resnet50"))
  source = train.Trainer(classical, train.load_config_dataset(classical))
  with checkpointing.RunCheckpoints(str(tmp_path / "resnet50")) as ckpts:
    source_state, _ = ckpts.restore_best(source.init_state())
  hybrid = tiny_config(synthetic_breast, tmp_path / "tfds", init_from=str(tmp_path / "resnet50"), num_epochs=1,
                       model="resnet50_qcnn_residual")
  _, trainer, state = train.build_run(hybrid)
  np.testing.assert_allclose(trainer.predict(state, "test")["logits"], source.predict(source_state, "test")["logits"],
                             atol=1e-5)
  train.train_and_evaluate(hybrid, str(tmp_path / "hybrid"))  # and it trains end to end from there
  assert json.loads((tmp_path / "hybrid" / "config.json").read_text())["init_from"] == str(tmp_path / "resnet50")
  wider = tiny_config(synthetic_breast, tmp_path / "tfds", init_from=str(tmp_path / "resnet50"),
                      model_options={"width": 8, "n_qubits": 4, "stem": "cifar"})
  with pytest.raises(train.ConfigError, match="backbone does not fit"):
    train.build_run(wider)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, synthetic_breast):
  config = tiny_config(synthetic_breast, tmp_path / "tfds", learning_rate=float("nan"), num_epochs=1)
  with pytest.raises(FloatingPointError, match="Non-finite loss or gradient at step 1"):
    train.train_and_evaluate(config, str(tmp_path / "nan_run"))
  assert checkpointing.RunCheckpoints(str(tmp_path / "nan_run")).latest_epoch() is None


def test_data_parallel_step_equals_single_device(tmp_path, synthetic_breast):
  assert jax.device_count() == 4, "conftest sets --xla_force_host_platform_device_count=4"
  # SGD: Adam's first steps turn float noise in near-zero gradients into full-size updates.
  # ResNet-18: see the note in qcnn_jax/parallel.py on ResNet-50's layer4 gradients on XLA:CPU.
  config = tiny_config(synthetic_breast, tmp_path / "tfds", optimizer="sgd", learning_rate=0.05,
                       model="resnet18", model_options={"width": 4, "stem": "cifar"})
  dataset = train.load_config_dataset(config)
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    trainer = train.Trainer(config, dataset, mesh=parallel.data_mesh(devices))
    state = trainer.init_state()
    batch = next(data.pipeline.train_batches(dataset.splits["train"], batch_size=16, seed=0, epoch=0,
                                             prep=trainer.prep, num_threads=0))
    for _ in range(2):
      state, step_metrics = trainer._train_step(state, parallel.put_batch(
          {k: batch[k] for k in ("image", "label")}, trainer.mesh))
    results.append((jax.device_get(state.params), float(step_metrics["loss"])))
  (params_1, loss_1), (params_4, loss_4) = results
  assert loss_1 == pytest.approx(loss_4, rel=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(params_1), jax.tree_util.tree_leaves(params_4)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_batch_not_divisible_by_devices_is_a_clear_error(tmp_path, synthetic_breast):
  config = tiny_config(synthetic_breast, tmp_path / "tfds", batch_size=18)
  with pytest.raises(ValueError, match="not divisible by the 4 devices"):
    train.Trainer(config, train.load_config_dataset(config))


def optimizer_config(**overrides):
  config = medmnist_config.get_config()
  for key, value in overrides.items():
    config[key] = value
  return config


def test_the_compared_block_gets_its_own_learning_rate_whether_quantum_or_classical():
  params = {"head": {"quantum_conv": np.ones(3, np.float32), "logit_scale": np.ones(1, np.float32),
                     "twin_0": {"hidden": {"kernel": np.ones(2, np.float32)}},
                     "product_0": {"quantum_theta": np.ones(2, np.float32)}},
            "backbone": {"kernel": np.ones(2, np.float32)}}
  grads = jax.tree_util.tree_map(np.ones_like, params)
  config = optimizer_config(optimizer="sgd", momentum=0.0, learning_rate=0.1, block_learning_rate=0.01,
                            schedule="constant")
  tx = train.create_optimizer(config, params, total_steps=10)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["head"]["quantum_conv"], -0.01)
  np.testing.assert_allclose(updates["head"]["logit_scale"], -0.1)  # classical scalar of a quantum head
  np.testing.assert_allclose(updates["backbone"]["kernel"], -0.1)
  # A twin's block trains like the circuit it replaces (role, not name, picks the rate).
  np.testing.assert_allclose(updates["head"]["twin_0"]["hidden"]["kernel"], -0.01)
  np.testing.assert_allclose(updates["head"]["product_0"]["quantum_theta"], -0.01)
  assert train.count_params(params) == (10, 5)
  # Unit rates then scale_by_role give the same step (the vmapped learning-rate search of training.frozen).
  unit = train.create_optimizer(config, params, 10, rates={"block": 1.0, "rest": 1.0})
  scaled = train.scale_by_role(unit.update(grads, unit.init(params), params)[0], train.role_labels(params),
                               {"block": 0.01, "rest": 0.1})
  jax.tree.map(np.testing.assert_allclose, scaled, updates)
  frozen = train.create_optimizer(optimizer_config(optimizer="adam", block_learning_rate=0.0), params, 10)
  updates, _ = frozen.update(grads, frozen.init(params), params)  # 0 freezes the circuit (ablation)
  np.testing.assert_array_equal(updates["head"]["quantum_conv"], 0.0)
  assert np.all(updates["backbone"]["kernel"] < 0)


def test_schedules_and_clipping():
  multistep = train.learning_rate_schedule(optimizer_config(), 1e-3, total_steps=100)
  np.testing.assert_allclose([multistep(0), multistep(49), multistep(50), multistep(75)], [1e-3, 1e-3, 1e-4, 1e-5],
                             rtol=1e-6)
  cosine = train.learning_rate_schedule(optimizer_config(schedule="warmup_cosine", warmup_fraction=0.1), 1.0, 100)
  assert float(cosine(0)) == 0.0 and float(cosine(10)) == pytest.approx(1.0) and float(cosine(100)) < 1e-6
  params = {"kernel": np.ones(4, np.float32)}
  config = optimizer_config(optimizer="sgd", momentum=0.0, learning_rate=1.0, schedule="constant", grad_clip_norm=1.0)
  tx = train.create_optimizer(config, params, total_steps=1)
  updates, _ = tx.update({"kernel": np.full(4, 10.0, np.float32)}, tx.init(params), params)
  np.testing.assert_allclose(np.linalg.norm(updates["kernel"]), 1.0, rtol=1e-6)
  with pytest.raises(ValueError, match="Unknown optimizer"):
    train.create_optimizer(optimizer_config(optimizer="lion"), params, total_steps=1)


@pytest.mark.parametrize("task,logits,labels,expected", [
    ("binary-class", [[0.0]], [[1]], np.log(2.0)),
    ("multi-class", [[0.0, 0.0, 0.0]], [[2]], np.log(3.0)),
    ("multi-label, binary-class", [[0.0, 100.0]], [[1, 1]], np.log(2.0) / 2),
])
def test_losses_by_task(task, logits, labels, expected):
  loss = train.per_example_loss(np.asarray(logits, np.float32), np.asarray(labels), task)
  np.testing.assert_allclose(loss, [expected], rtol=1e-5)


def test_balanced_class_weights_give_every_class_the_same_total_weight():
  binary = train.class_weights(np.array([[0], [0], [0], [1]]), "binary-class", 1, "balanced")
  np.testing.assert_allclose(binary, [[4 / 6], [2.0]], rtol=1e-6)  # N / (2 * N_class)
  multi_label = train.class_weights(np.array([[0, 1], [1, 1], [0, 1], [0, 0]]), "multi-label, binary-class", 2,
                                    "balanced")
  np.testing.assert_allclose(multi_label, [[4 / 6, 2.0], [2.0, 4 / 6]], rtol=1e-6)
  labels = np.array([[0], [0], [0], [1], [2], [2]])
  multi = train.class_weights(labels, "multi-class", 3, "balanced")
  np.testing.assert_allclose(np.bincount(labels[:, 0], weights=multi[labels[:, 0]]), [2.0, 2.0, 2.0], rtol=1e-6)
  assert train.class_weights(labels, "multi-class", 3, None) is None


@pytest.mark.parametrize("task,labels,weights,scale", [
    ("binary-class", [[1], [0]], [[0.5], [3.0]], [3.0, 0.5]),
    ("multi-label, binary-class", [[1, 0]], [[0.5, 2.0], [3.0, 4.0]], [(3.0 + 2.0) / 2]),
    ("multi-class", [[2], [0]], [1.0, 5.0, 0.25], [0.25, 1.0]),
])
def test_class_weights_scale_each_examples_loss_under_jit(task, labels, weights, scale):
  logits = np.zeros((len(labels), 3 if task == "multi-class" else len(labels[0])), np.float32)
  labels = np.asarray(labels)
  plain = train.per_example_loss(logits, labels, task)
  weighted = jax.jit(lambda x, y: train.per_example_loss(x, y, task, np.asarray(weights, np.float32)))(logits, labels)
  np.testing.assert_allclose(weighted, np.asarray(plain) * scale, rtol=1e-6)


def test_trainer_weights_its_loss_by_the_training_labels_classes(tmp_path, synthetic_breast):
  config = tiny_config(synthetic_breast, tmp_path / "tfds", class_weights="balanced", model="resnet18",
                       model_options={"width": 4, "stem": "cifar"})
  dataset = train.load_config_dataset(config)
  trainer = train.Trainer(config, dataset, mesh=parallel.data_mesh(jax.devices()[:1]))
  labels = data.pipeline.column(trainer.splits["train"], "label")
  np.testing.assert_allclose(trainer.class_weights[:, 0] * np.bincount(labels[:, 0]), len(labels) / 2, rtol=1e-5)
  state = trainer.init_state()
  batch = next(data.pipeline.train_batches(dataset.splits["train"], batch_size=16, seed=0, epoch=0,
                                           prep=trainer.prep, num_threads=0))
  logits, _ = trainer.model.apply({"params": state.params, "batch_stats": state.batch_stats}, batch["image"],
                                  train=True, mutable=["batch_stats"])
  unweighted = np.asarray(train.per_example_loss(logits, batch["label"], dataset.task))
  expected = np.mean(unweighted * trainer.class_weights[batch["label"][:, 0], 0])
  _, step_metrics = trainer._train_step(state, parallel.put_batch({k: batch[k] for k in ("image", "label")},
                                                                  trainer.mesh))
  assert float(step_metrics["loss"]) == pytest.approx(expected, rel=1e-5)
  assert abs(expected - unweighted.mean()) > 1e-3  # the weights change this batch's loss


def test_checkpoints_every_few_epochs_still_keep_the_best_epoch(tmp_path, synthetic_breast, monkeypatch):
  """With checkpoint_every_epochs > 1 a best epoch between checkpoints is saved with the next one."""
  original = train.Trainer.evaluate
  val_aucs = {}

  def scripted_val_auc(self, state, split):  # validation AUC 0.9 after epoch 0, then 0.5: best is epoch 0
    report, out = original(self, state, split)
    if split == "val":
      calls = val_aucs.setdefault(id(self), [])
      report["auc"] = (0.9, 0.5)[len(calls)] if len(calls) < 2 else report["auc"]
      calls.append(report["auc"])
    return report, out

  monkeypatch.setattr(train.Trainer, "evaluate", scripted_val_auc)
  summaries = {}
  for every in (1, 5):
    config = tiny_config(synthetic_breast, tmp_path / "tfds", checkpoint_every_epochs=every)
    summaries[every] = train.train_and_evaluate(config, str(tmp_path / f"every_{every}"))
  assert summaries[5]["best_epoch"] == summaries[1]["best_epoch"] == 1
  for key in ("test_auc", "test_acc", "val_auc"):
    assert summaries[5][key] == summaries[1][key], key
  checkpoints = tmp_path / "every_5" / "checkpoints"
  assert sorted(p.name for p in (checkpoints / "latest").iterdir()) == ["1"]
  assert sorted(p.name for p in (checkpoints / "best").iterdir()) == ["0"]
  assert sorted(p.name for p in (tmp_path / "every_1" / "checkpoints" / "latest").iterdir()) == ["0", "1"]


def test_model_without_batch_norm_trains(tmp_path, synthetic_breast):
  """The QCNN alone has no batch_stats: the train step must keep the state's tree structure."""
  config = tiny_config(synthetic_breast, tmp_path / "tfds", model="qcnn", num_epochs=1)
  config.model_options = {"n_qubits": 4}
  summary = train.train_and_evaluate(config, str(tmp_path / "qcnn_run"))
  again, _ = train.evaluate_workdir(str(tmp_path / "qcnn_run"), "test")
  assert summary["quantum_params"] > 0 and again["test"]["auc"] == pytest.approx(summary["test_auc"], abs=1e-6)


def test_hybrid_epochs_record_whether_the_circuit_trains(finished_run):
  _, workdir, _ = finished_run
  for record in epoch_records(workdir):
    assert 0.0 <= record["saturated"] <= 1.0
    assert -1.0 - 1e-6 <= record["readout_min"] <= record["readout_max"] <= 1.0 + 1e-6
    assert record["grad_norm_quantum"] > 0 and record["grad_norm_classical"] > 0
    assert 0 < record["angle_shift_rms"] <= record["angle_shift_max"]
  # The residual head's gate starts at 0 and moves (its gradient is the circuit's logit, not 0).
  gates = [r["residual_gate"] for r in epoch_records(workdir)]
  assert all(g != 0.0 for g in gates) and len(set(gates)) == len(gates)


def test_every_model_option_can_be_set_from_the_command_line():
  """`--config.model_options.<option>` needs a placeholder for each option a model accepts, except
  `input_range` (a tuple matching the pipeline's normalisation; ml_collections cannot override a
  None tuple placeholder from the command line)."""
  settable = set(medmnist_config.get_config().model_options)
  for name, (_, options) in models.MODELS.items():
    missing = set(options) - set(models.DATA_OPTIONS) - {"input_range"} - settable
    assert not missing, (name, missing)


def test_a_checkpoint_with_the_dropped_rng_field_still_restores(tmp_path):
  """Checkpoints written while TrainState had an (unused) rng field resume into today's state."""
  params = {"w": jnp.arange(3.0)}
  tx = optax.adam(1e-2)
  legacy = train._StateWithRng.create(apply_fn=None, params=params, tx=tx, batch_stats={},  # pylint: disable=protected-access
                                      rng=jax.random.PRNGKey(7))
  legacy = legacy.apply_gradients(grads={"w": jnp.ones(3)})
  with checkpointing.RunCheckpoints(str(tmp_path)) as ckpts:
    ckpts.save(0, legacy, {"epoch": 0}, val_auc=0.5)
  fresh = train.TrainState.create(apply_fn=None, params={"w": jnp.zeros(3)}, tx=tx, batch_stats={})
  with checkpointing.RunCheckpoints(str(tmp_path)) as ckpts:
    restored, meta = train.restore_state(ckpts.restore_latest, fresh)
  assert not hasattr(restored, "rng") and meta["epoch"] == 0 and int(restored.step) == 1
  np.testing.assert_array_equal(restored.params["w"], legacy.params["w"])
  np.testing.assert_array_equal(restored.opt_state[0].mu["w"], legacy.opt_state[0].mu["w"])


def test_early_stopping_ends_after_its_patience_and_a_resumed_run_stops_at_the_same_epoch(
    tmp_path, synthetic_breast, monkeypatch):
  """Validation AUC improves only at epoch 0: patience 1 trains epochs 0-1 of 4 and reports epoch 0; a run
  killed at epoch 1 and resumed stops at the same epoch with the same result; patience 0 is refused."""
  original = train.improves
  monkeypatch.setattr(train, "improves", lambda auc, best, split: best == -np.inf and original(auc, best, split))
  config = tiny_config(synthetic_breast, tmp_path / "tfds", model="resnet18", model_options={"width": 4, "stem": "cifar"},
                       num_epochs=4, early_stopping_patience=1)
  summary = train.train_and_evaluate(config, str(tmp_path / "whole"))
  assert [r["epoch"] for r in epoch_records(tmp_path / "whole")] == [0, 1]
  assert (summary["epochs_trained"], summary["best_epoch"], summary["early_stopping_patience"]) == (2, 1, 1)
  assert sorted(p.name for p in (tmp_path / "whole" / "checkpoints" / "latest").iterdir()) == ["0", "1"]

  run_killed_in_epoch(config, tmp_path / "resumed", 1, monkeypatch)
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  for key in ("test_auc", "test_acc", "val_auc", "best_epoch", "epochs_trained"):
    assert resumed[key] == summary[key], key
  assert train.train_and_evaluate(config, str(tmp_path / "resumed"))["epochs_trained"] == 2  # nothing more to train

  with pytest.raises(train.ConfigError, match="early_stopping_patience 0 must be at least 1"):
    train.train_and_evaluate(tiny_config(synthetic_breast, tmp_path / "tfds", early_stopping_patience=0),
                             str(tmp_path / "zero"))
