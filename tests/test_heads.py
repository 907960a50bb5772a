"""Heads on frozen features: physics of the blocks, twins, vmapped seeds, the study and its report."""

import csv
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pennylane as qml
import pytest

from experiments.configs import heads as heads_config
from qcnn_jax.data import features
from qcnn_jax.studies import frozen_heads
from qcnn_jax.training import frozen
from qcnn_jax.models import heads
from qcnn_jax.models.quantum import qcnn as qcnn_lib

DIM = 12


def feature_set(task="binary-class", num_outputs=1, seed=0, sizes=(("train", 96), ("val", 40), ("test", 48))):
  """Learnable synthetic features: class c shifts the first features."""
  rng = np.random.default_rng(seed)
  parts = {}
  for split, n in sizes:
    classes = max(2, num_outputs)
    labels = rng.integers(0, classes, (n, 1))
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    x[:, :classes] += 4.0 * np.eye(classes)[labels[:, 0]]
    parts[split] = (np.maximum(x, 0.0), labels)
  meta = {"dataset": "breastmnist", "task": task, "label_names": [str(i) for i in range(max(2, num_outputs))],
          "num_outputs": num_outputs, "size": 28, "source_model": "resnet50", "source_seed": 0, "source_epoch": 1,
          "source_val_auc": 1.0}
  return features.FeatureSet({s: p[0] for s, p in parts.items()}, {s: p[1] for s, p in parts.items()},
                             {s: rng.permutation(len(p[0])) for s, p in parts.items()}, meta)  # stored order != index


def head_config(**head) -> ml_collections.ConfigDict:
  config = heads_config.get_config().base
  config.unlock()
  config.num_epochs, config.batch_size, config.design = 3, 16, "test"
  config.head.update({"n_qubits": 4, **head})
  return config


def test_product_block_matches_a_pennylane_circuit():
  angles = np.random.default_rng(0).uniform(-math.pi, math.pi, (3, 4)).astype(np.float32)
  block = heads.ProductBlock(4, angle_init_std=1.0)
  params = block.init(jax.random.key(1), angles)
  values = np.asarray(block.apply(params, angles))
  theta, lam = (np.asarray(params["params"][k]) for k in ("quantum_theta", "quantum_lambda"))
  dev = qml.device("default.qubit", wires=4)

  @qml.qnode(dev)
  def circuit(x):
    for w in range(4):
      qml.RY(x[w], wires=w)
      qml.RZ(lam[w], wires=w)
      qml.RY(theta[w], wires=w)
    return [qml.expval(qml.PauliZ(w)) for w in range(4)]

  expected = np.array([circuit(a) for a in angles.astype(np.float64)])
  np.testing.assert_allclose(values, expected, atol=1e-5)


@pytest.mark.parametrize("num_outputs,readout", [(1, "auto"), (6, "auto"), (6, "expvals")])
def test_twin_matches_the_quantum_block_in_size_inputs_and_outputs(num_outputs, readout):
  x = jnp.ones((2, DIM))
  sizes = {}
  for kind in ("quantum", "classical"):
    head = heads.FeatureHead(num_outputs, kind=kind, n_qubits=4, readout=readout, execution="statevector")
    params = head.init(jax.random.key(0), x)["params"]
    block = params["qcnn_0" if kind == "quantum" else "twin_0"]
    sizes[kind] = sum(p.size for p in jax.tree.leaves(block))
    assert head.apply({"params": params}, x).shape == (2, num_outputs)
  spec = heads.FeatureHead(num_outputs, n_qubits=4, readout=readout).circuit_spec()
  # One hidden unit more or less changes the twin by n_in + 1 + n_out parameters.
  assert abs(sizes["classical"] - sizes["quantum"]) <= (spec.n_features + 1 + spec.output_size) / 2
  assert sizes["quantum"] == qcnn_lib.n_params(spec)


def _single_qubit_part(block):
  """A circuit block with its gates on two or more wires left out (applied gate by gate)."""
  def apply(wires):
    with qml.queuing.AnnotatedQueue() as queue:
      block(wires)
    for op in queue.queue:
      if len(op.wires) == 1:
        qml.apply(op)
  return apply


@pytest.mark.parametrize("num_outputs", [1, 5])
def test_unentangled_block_is_the_circuit_without_its_entangling_gates(num_outputs):
  head = heads.FeatureHead(num_outputs, kind="unentangled", n_qubits=4)
  spec = head.circuit_spec()
  angles = np.random.default_rng(0).uniform(-math.pi, math.pi, (2, 4)).astype(np.float32)
  block = heads.UnentangledBlock(spec)
  params = block.init(jax.random.key(1), angles)
  conv = np.asarray(params["params"]["quantum_conv"], np.float64)
  assert set(params["params"]) == {"quantum_conv"} and conv.shape == qcnn_lib.param_shapes(spec)["conv"]
  conv_blocks, pool_blocks = qcnn_lib.gate_blocks(spec, conv, np.zeros(qcnn_lib.param_shapes(spec)["pool"]))

  @qml.qnode(qml.device("default.qubit", wires=4))
  def circuit(x):
    return qcnn_lib.qcnn_circuit(spec, x, [_single_qubit_part(b) for b in conv_blocks],
                                 [_single_qubit_part(b) for b in pool_blocks])

  expected = np.stack([np.asarray(qcnn_lib.postprocess(spec, circuit(a))) for a in angles.astype(np.float64)])
  np.testing.assert_allclose(block.apply(params, angles), expected, atol=1e-5)
  # No entangling gate, no route from the other qubits' angles to the readout qubits.
  jac = jax.jacobian(lambda a: block.apply(params, a[None])[0])(jnp.asarray(angles[0]))
  others = [w for w in range(4) if w not in qcnn_lib.readout_wires(spec)]
  assert float(jnp.abs(jac[:, np.asarray(others)]).max()) == 0.0
  assert float(jnp.abs(jac).max()) > 1e-3
  # In the head it trains at the block rate and its readout is the in-path head's.
  head_params = head.init(jax.random.key(0), jnp.ones((2, DIM)))["params"]
  quantum = heads.FeatureHead(num_outputs, n_qubits=4).init(jax.random.key(0), jnp.ones((2, DIM)))["params"]
  assert set(head_params) == {"reduce", "unentangled_0", *set(quantum) - {"qcnn_0"}}
  assert heads.is_probed("unentangled_0")


def _centred_logit_jacobian_rank(head, x) -> int:
  """Rank of d logits / d features at one example, the common shift (invisible to softmax) removed."""
  params = head.init(jax.random.key(4), x)["params"]
  jac = np.asarray(jax.jit(jax.jacobian(lambda f: head.apply({"params": params}, f[None])[0]))(x[0]), np.float64)
  singular = np.linalg.svd(jac - jac.mean(axis=0), compute_uv=False)
  return int(np.sum(singular > 1e-5 * singular[0]))  # float32 rounding is ~1e-7 of the largest


def test_multi_class_twins_at_full_rank_have_k_hidden_units_and_rank_k_minus_one_logits():
  classes, x = 5, jax.random.normal(jax.random.key(0), (1, DIM))
  # No LayerNorm on the 4 pre-angles here: it would leave them 4 − 2 degrees of freedom (8 qubits keep 6).
  options = dict(n_qubits=4, calibrate=True, angle_scale=math.pi, execution="statevector")
  spec = heads.FeatureHead(classes, **options).circuit_spec()
  assert qcnn_lib.n_params(spec) == 17 and spec.output_size == classes  # 4 -> 3 qubits, 5 of 8 outcomes
  matched = heads.FeatureHead(classes, kind="classical", **options)
  full = heads.FeatureHead(classes, kind="classical", twin_full_rank=True, **options)
  widths = {name: h.init(jax.random.key(0), x)["params"]["twin_0"]["hidden"]["kernel"].shape[1]
            for name, h in (("matched", matched), ("full", full))}
  assert widths == {"matched": 1, "full": classes}  # round((17 - 5) / (4 + 1 + 5)) = 1
  assert heads.twin_width(34, 8, 5) == 2 and heads.twin_width(34, 8, 5, min_width=5) == 5  # RetinaMNIST, 8 qubits
  ranks = {name: _centred_logit_jacobian_rank(h, x) for name, h in (
      ("matched", matched), ("full", full), ("quantum", heads.FeatureHead(classes, **options)))}
  assert ranks == {"matched": 1, "full": classes - 1, "quantum": classes - 1}
  binary = heads.FeatureHead(1, kind="classical", twin_full_rank=True, **options)
  assert binary.init(jax.random.key(0), x)["params"]["twin_0"]["hidden"]["kernel"].shape[1] == heads.twin_width(
      qcnn_lib.n_params(binary.circuit_spec()), 4, 1)  # binary twins keep the matched width


def test_residual_head_starts_as_its_linear_path_and_calibration_sets_the_prior():
  x = jax.random.normal(jax.random.key(0), (5, DIM))
  prior = heads.prior_logits(np.array([[1], [1], [1], [0]]), "binary-class", 1)
  assert prior == pytest.approx((math.log(3.0),))
  head = heads.FeatureHead(1, n_qubits=4, residual=True, calibrate=True, prior=prior, execution="statevector")
  params = head.init(jax.random.key(1), x)["params"]
  linear = x @ params["linear"]["kernel"] + params["linear"]["bias"]
  np.testing.assert_allclose(head.apply({"params": params}, x), linear, atol=1e-6)
  np.testing.assert_allclose(params["linear"]["bias"], prior, atol=1e-7)
  # The prior sits in the linear path only: the gated branch's bias starts at 0, so g scales what the
  # circuit computes and "gate off" is not a threshold shift.
  np.testing.assert_array_equal(params["logit_bias"], 0.0)
  in_path = heads.FeatureHead(1, n_qubits=4, calibrate=True, prior=prior, execution="statevector")
  np.testing.assert_allclose(in_path.init(jax.random.key(1), x)["params"]["logit_bias"], prior, atol=1e-7)


@pytest.mark.parametrize("gate_init,moves", [(None, False), (0.1, True)])
def test_a_gate_from_zero_gives_the_circuit_no_gradient(gate_init, moves):
  x = jax.random.normal(jax.random.key(0), (6, DIM))
  head = heads.FeatureHead(1, n_qubits=4, residual=True, gate_init=gate_init, calibrate=True, prior=(0.3,),
                           execution="statevector")
  params = head.init(jax.random.key(1), x)["params"]
  grads = jax.grad(lambda p: head.apply({"params": p}, x).sum())(params)
  circuit = float(optax_global_norm(grads["qcnn_0"]))
  assert (circuit > 1e-4) if moves else (circuit == 0.0)
  assert float(grads["residual_gate"][0]) != 0.0  # g itself always has a gradient


def optax_global_norm(tree) -> jax.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree)))


def test_bottleneck_norm_makes_the_angles_independent_of_the_feature_scale():
  x = jax.random.normal(jax.random.key(0), (5, DIM))
  head = heads.FeatureHead(1, n_qubits=4, bottleneck_norm=True, calibrate=True, execution="statevector")
  params = head.init(jax.random.key(1), x)["params"]
  assert "bottleneck_norm" in params and "norm" not in params
  params["reduce"]["bias"] = jnp.zeros_like(params["reduce"]["bias"])  # Dense(c·x) = c·Dense(x) without bias
  # LayerNorm's epsilon (1e-6) makes the scale invariance approximate.
  np.testing.assert_allclose(head.apply({"params": params}, 1000.0 * x), head.apply({"params": params}, x), atol=1e-4)
  _, probe = heads.apply_probed(head, {"params": params}, x)
  normed = np.asarray(jax.vmap(lambda row: (row - row.mean()) / jnp.sqrt(row.var() + 1e-6))(
      x @ params["reduce"]["kernel"]))
  scale, bias = np.asarray(params["bottleneck_norm"]["scale"]), np.asarray(params["bottleneck_norm"]["bias"])
  expected = np.mean(np.abs(np.tanh(normed * scale + bias)) > heads.SATURATION, axis=-1)
  np.testing.assert_allclose(probe["saturated"], expected)  # saturation is read where tanh reads


@pytest.mark.parametrize("kind", ["quantum", "classical"])
def test_gate_init_adds_the_head_logits_to_the_linear_path_from_the_start(kind):
  x = jax.random.normal(jax.random.key(0), (5, DIM))
  options = dict(kind=kind, n_qubits=4, calibrate=True, prior=(0.7,), execution="statevector")
  params = heads.FeatureHead(1, residual=True, gate_init=1.0, **options).init(jax.random.key(1), x)["params"]
  assert params["residual_gate"] == pytest.approx([1.0])
  alone = {k: v for k, v in params.items() if k not in ("linear", "residual_gate")}
  head_logits = heads.FeatureHead(1, **options).apply({"params": alone}, x)
  linear = x @ params["linear"]["kernel"] + params["linear"]["bias"]
  assert float(jnp.abs(head_logits - params["logit_bias"]).max()) > 1e-3  # the head's logits vary with x
  got = heads.FeatureHead(1, residual=True, gate_init=1.0, **options).apply({"params": params}, x)
  np.testing.assert_allclose(got, linear + head_logits, atol=1e-5)
  np.testing.assert_allclose(heads.FeatureHead(1, residual=True, gate_init=1.0, **options).apply(
      {"params": heads.gate_off(params)}, x), linear, atol=1e-5)
  with pytest.raises(ValueError, match="gate_init needs residual=True"):
    heads.FeatureHead(1, gate_init=1.0, **options).init(jax.random.key(1), x)


def test_small_angle_initialisation_starts_near_zero():
  head = heads.FeatureHead(1, n_qubits=4, angle_init_std=0.1, execution="statevector")
  conv = head.init(jax.random.key(0), jnp.ones((1, DIM)))["params"]["qcnn_0"]["quantum_conv"]
  assert float(jnp.abs(conv).max()) < 0.5 and float(jnp.std(conv)) > 0.02


@pytest.mark.parametrize("head", [{"kind": "quantum", "norm": True, "calibrate": True}, {"kind": "classical"}])
def test_seed_of_a_vmapped_run_equals_that_seed_alone(head):
  fs = feature_set()
  config = head_config(**head)
  together = frozen.train_seeds(config, fs, [0, 3])
  alone = frozen.train_seeds(config, fs, [3])[0]
  assert together[1].seed == alone.seed == 3
  assert together[1].best_epoch == alone.best_epoch
  np.testing.assert_allclose(together[1].logits["test"], alone.logits["test"], atol=1e-5)
  assert [r["val_auc"] for r in together[1].records] == pytest.approx([r["val_auc"] for r in alone.records], abs=1e-6)
  assert not np.allclose(together[0].logits["test"], together[1].logits["test"])


def test_a_run_of_a_vmapped_rate_search_equals_a_run_at_those_rates_alone():
  fs = feature_set()
  config = head_config(kind="quantum", bottleneck_norm=True, calibrate=True)
  rates = [{"block": 3e-2, "rest": 1e-3}, {"block": 1e-3, "rest": 1e-2}]
  together = frozen.train_seeds(config, fs, [1, 1], rates)
  config.learning_rate, config.block_learning_rate = 1e-2, 1e-3
  alone = frozen.train_seeds(config, fs, [1])[0]
  assert together[1].rates == alone.rates == rates[1]
  np.testing.assert_allclose(together[1].logits["test"], alone.logits["test"], atol=1e-5)
  assert not np.allclose(together[0].logits["test"], together[1].logits["test"], atol=1e-3)


def test_standardized_features_have_the_training_splits_zero_mean_and_unit_std(tmp_path):
  fs = feature_set()
  fs.features["train"][:, 5] = 0.0  # a ReLU channel dead on every training example
  scaled = fs.standardized()
  np.testing.assert_allclose(scaled.features["train"].mean(axis=0), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.delete(scaled.features["train"].std(axis=0), 5), 1.0, atol=1e-4)
  assert np.all(np.isfinite(scaled.features["test"])) and not np.allclose(scaled.features["test"].mean(axis=0), 0.0)
  mean, std = fs.train_statistics()
  np.testing.assert_allclose(scaled.features["val"], (fs.features["val"] - mean) / std, rtol=1e-6)
  with np.load(fs.save(str(tmp_path / "f.npz"))) as stored:  # kept with the features
    np.testing.assert_array_equal(stored["train_mean"], mean)
    np.testing.assert_array_equal(stored["train_std"], std)
  config = head_config(kind="linear", calibrate=True)
  config.standardize = True
  on_raw = frozen.train_seeds(config, fs, [0])[0]
  config.standardize = False
  np.testing.assert_allclose(frozen.train_seeds(config, scaled, [0])[0].logits["test"], on_raw.logits["test"],
                             atol=1e-5)


def test_training_learns_selects_the_best_epoch_and_reports_diagnostics():
  fs = feature_set(task="multi-class", num_outputs=3)
  config = head_config(kind="quantum", norm=True, angle_scale=math.pi, angle_init_std=0.1, calibrate=True)
  config.num_epochs, config.learning_rate, config.block_learning_rate = 10, 1e-2, 5e-2
  result = frozen.train_seeds(config, fs, [0])[0]
  aucs = [r["val_auc"] for r in result.records]
  assert result.best_epoch == int(np.argmax(aucs)) and result.val_auc == max(aucs)
  assert result.reports["test"]["auc"] > 0.8
  last = result.records[-1]
  assert 0.0 <= last["saturated"] <= 1.0 and -1.0 <= last["readout_min"] <= last["readout_max"] <= 1.0
  assert last["angle_shift_rms"] > 0 and last["grad_norm_quantum"] > 0 and last["grad_norm_classical"] > 0
  assert result.records[0]["train_loss"] > result.records[-1]["train_loss"]
  # The reported epoch's validation loss (softmax cross-entropy) and mean |Δθ| of the circuit angles.
  logits, labels = result.logits["val"], fs.labels["val"][:, 0]
  log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  assert result.val_loss == pytest.approx(-log_p[np.arange(len(labels)), labels].mean(), rel=1e-4)
  assert result.val_loss == result.records[result.best_epoch]["val_loss"]
  reported = result.records[result.best_epoch]
  assert 0 < result.angle_shift <= reported["angle_shift_rms"] <= reported["angle_shift_max"]  # mean ≤ rms ≤ max


def test_residual_runs_record_each_seeds_gate():
  config = head_config(kind="quantum", norm=True, angle_scale=math.pi, calibrate=True, residual=True, gate_init=0.5)
  results = frozen.train_seeds(config, feature_set(), [0, 1])
  gates = [[r["residual_gate"] for r in result.records] for result in results]
  assert all(g != 0.5 for seed in gates for g in seed) and gates[0] != gates[1]
  for result in results:  # the reported epoch's gate, and its test metrics with g = 0
    assert result.gate_off["residual_gate"] == result.records[result.best_epoch]["residual_gate"]
    assert set(result.gate_off) == {"residual_gate", "test_auc_gate_off", "test_acc_gate_off",
                                    "test_balanced_accuracy_gate_off"}
  assert frozen.train_seeds(head_config(kind="quantum", calibrate=True), feature_set(), [0])[0].gate_off == {}


def test_feature_file_round_trip(tmp_path):
  fs = feature_set()
  loaded = features.load(fs.save(str(tmp_path / "f.npz")))
  assert loaded.meta == fs.meta and loaded.fc is None
  for split in fs.features:
    np.testing.assert_array_equal(loaded.features[split], fs.features[split])
    np.testing.assert_array_equal(loaded.labels[split], fs.labels[split])
  with pytest.raises(FileNotFoundError, match="extract_features"):
    features.load(str(tmp_path / "missing.npz"))


def test_study_trains_each_design_with_its_twin_and_reports_paired_intervals(tmp_path):
  path = feature_set().save(str(tmp_path / "features.npz"))
  study = heads_config.get_config()
  study.features = ml_collections.ConfigDict({"breastmnist": path})
  study.base.num_epochs, study.base.batch_size, study.base.head.n_qubits = 2, 16, 4
  study.designs = ml_collections.ConfigDict({"calibrated": {"head": heads_config.CALIBRATED},
                                             "residual": {"head": {**heads_config.CALIBRATED, "residual": True,
                                                                   "gate_init": 0.5}},
                                             "linear": {"head": {"kind": "linear"}}})
  study.seeds = (0, 1, 2)
  study.bootstrap.num_resamples = 200
  root = str(tmp_path / "study")
  frozen_heads.train_study(study, root)
  csv_path, md_path = frozen_heads.write_report(study, root)
  rows = {r["model"]: r for r in csv.DictReader(open(csv_path))}
  assert set(rows) == {"calibrated", "calibrated_twin", "residual", "residual_twin", "linear"}
  assert rows["calibrated_twin"]["kind"] == "classical" and rows["calibrated_twin"]["twin_of"] == "calibrated"
  assert all(rows[m]["n_seeds"] == "3" for m in rows)
  text = open(md_path).read()
  assert "| calibrated | calibrated_twin | 3 |" in text and "Does the quantum head help?" in text
  row = next(line for line in text.splitlines() if line.startswith("| calibrated | calibrated_twin |")).split("|")
  assert row[4].split()[0] == row[5].split()[0]  # both bootstraps start from the same mean difference
  summary = frozen_heads.reports.read_json(f"{root}/breastmnist/calibrated/seed1/summary.json")
  assert summary["kind"] == "quantum" and summary["seed"] == 1 and summary["quantum_params"] > 0
  assert "test_auc_gate_off" not in summary
  assert summary["angle_shift"] > 0 and summary["val_loss"] > 0
  assert "angle_shift" not in frozen_heads.reports.read_json(f"{root}/breastmnist/calibrated_twin/seed1/summary.json")
  gated = [frozen_heads.reports.read_json(f"{root}/breastmnist/residual/seed{s}/summary.json") for s in (0, 1, 2)]
  effect = next(line for line in text.splitlines() if line.startswith("| residual | 3 |")).split("|")
  assert float(effect[5]) == pytest.approx(np.mean([g["test_auc_gate_off"] for g in gated]), abs=1e-4)
  assert float(effect[6].split()[0]) == pytest.approx(np.mean([g["test_auc"] - g["test_auc_gate_off"] for g in gated]),
                                                     abs=1e-4)
  assert "| residual_twin | 3 |" in text and "| calibrated | 3 |" not in text


def test_learning_rates_are_chosen_by_validation_on_the_same_grid_for_every_design(tmp_path):
  study = heads_config.get_config()
  study.features = ml_collections.ConfigDict({
      "breastmnist": feature_set().save(str(tmp_path / "a.npz")),
      "breastmnist@b2": feature_set(seed=1).save(str(tmp_path / "b.npz"))})
  study.base.num_epochs, study.base.batch_size, study.base.head.n_qubits = 2, 16, 4
  study.base.block_learning_rate = None
  study.designs = ml_collections.ConfigDict({"inpath": {"head": {"bottleneck_norm": True, "calibrate": True}},
                                             "linear": {"head": {"kind": "linear"}}})
  study.lr_search = ml_collections.ConfigDict({"block": (1e-3, 3e-2), "head": (1e-4, 1e-2), "seeds": (0, 1),
                                               "on": {"breastmnist@b2": "breastmnist"}})
  study.seeds = (0, 1, 2)
  study.bootstrap.num_resamples = 200
  root = str(tmp_path / "study")
  frozen_heads.train_study(study, root)
  searches = {d: frozen_heads.reports.read_json(f"{root}/breastmnist/{d}/lr_search.json")
              for d in ("inpath", "inpath_twin", "linear")}
  assert [len(searches[d]["grid"]) for d in searches] == [4, 4, 2]  # a linear head has no block rate
  for search in searches.values():
    best = max(search["grid"], key=lambda p: p["val_auc_mean"])
    assert search["chosen"] == best["rates"] and search["seeds"] == [0, 1]
    assert all(len(p["val_auc"]) == 2 and "test_auc" not in p for p in search["grid"])
  assert not list((tmp_path / "study" / "breastmnist@b2").glob("*/lr_search.json"))  # reused, not searched
  for key in ("breastmnist", "breastmnist@b2"):
    summary = frozen_heads.reports.read_json(f"{root}/{key}/inpath_twin/seed2/summary.json")
    assert (summary["lr_block"], summary["lr_head"]) == (searches["inpath_twin"]["chosen"]["block"],
                                                         searches["inpath_twin"]["chosen"]["rest"])
  csv_path, md_path = frozen_heads.write_report(study, root)
  rows = [r for r in csv.DictReader(open(csv_path)) if r["model"] == "linear"]
  assert [float(r["lr_head"]) for r in rows] == [searches["linear"]["chosen"]["rest"]] * 2
  text = open(md_path).read()
  assert "## breastmnist over 2 backbones" in text and "| inpath | inpath_twin | 2 |" in text
  assert (tmp_path / "study" / frozen_heads.FOREST_FILE).stat().st_size > 1000
  answer = next(line for line in text.splitlines() if line.startswith("| breastmnist | inpath |")).split("|")
  assert float(answer[6]) == pytest.approx(float(rows[0]["test_auc_mean"]), abs=1e-4)  # the linear head's AUC
  assert answer[5].strip().startswith(("+", "-")) and answer[7].strip().startswith(("+", "-"))
  records = str(tmp_path / "records")  # the committed record rebuilds the same report
  frozen_heads.record_runs(root, records)
  test_csv = next((tmp_path / "study" / "breastmnist" / "linear" / "seed0" / "predictions").glob("*_test_*")).name
  assert sorted(p.name for p in (tmp_path / "records" / "breastmnist" / "linear" / "seed0").rglob("*")) == sorted([
      "config.json", "predictions", test_csv + ".gz", "summary.json"])
  again_csv, again_md = frozen_heads.write_report(study, records, str(tmp_path / "again"))
  assert open(again_csv).read() == open(csv_path).read() and open(again_md).read() == text


def test_a_bounded_rate_search_extends_past_the_edge_and_keeps_the_whole_search(tmp_path, monkeypatch):
  study = heads_config.get_config()
  study.features = ml_collections.ConfigDict({"breastmnist": feature_set().save(str(tmp_path / "f.npz"))})
  study.designs = ml_collections.ConfigDict({"inpath": {"head": {"bottleneck_norm": True, "calibrate": True}}})
  study.lr_search = ml_collections.ConfigDict({"block": (1e-3, 1e-2, 1e-1), "head": (1e-3, 1e-2, 1e-1),
                                               "seeds": (0, 1), "bounds": (1e-4, 1.0)})
  calls = []

  def fake_train_seeds(config, feature_set, seeds, rates, subsets=None):  # validation AUC peaks at block 1.0, head 1e-2
    assert subsets is None  # the whole training split
    calls.append(len(seeds))
    auc = lambda r: 0.9 - 0.01 * (np.log10(r["block"]) ** 2 + (np.log10(r["rest"]) + 2) ** 2)
    return [frozen.SeedResult(s, [], 0, auc(r), {}, {}, 0, 0, {}, r) for s, r in zip(seeds, rates)]

  monkeypatch.setattr(frozen_heads.frozen, "train_seeds", fake_train_seeds)
  root = str(tmp_path / "study")
  assert frozen_heads.search_rates(study, root, "breastmnist", "inpath_twin") == {"block": 1.0, "rest": 1e-2}
  search = frozen_heads.reports.read_json(f"{root}/breastmnist/inpath_twin/lr_search.json")
  assert search["axes"] == {"block": [1e-3, 1e-2, 1e-1, 1.0], "head": [1e-3, 1e-2, 1e-1]}
  assert search["edges"] == {"block": "at bound", "head": "interior"} and search["bounds"] == [1e-4, 1.0]
  assert len(search["grid"]) == 12 and calls == [9 * 2, 3 * 2]  # the 3 x 3 grid, then one new block rate
  assert frozen_heads.search_rates(study, root, "breastmnist", "inpath_twin", search=False) == search["chosen"]
  assert len(calls) == 2  # read back, not searched again


def _fake_run(fs, rng, val_auc: float, seed: int, separation: float, angle_shift, rates) -> frozen.SeedResult:
  """A finished run's result without training: logits with the given class separation."""
  logits = {s: (separation * (2.0 * fs.labels[s] - 1.0) + rng.normal(size=fs.labels[s].shape)).astype(np.float32)
            for s in ("val", "test")}
  report = lambda s: frozen.metrics.classification_report(fs.labels[s], logits[s], fs.task, ["0", "1"])
  return frozen.SeedResult(seed, [], 0, val_auc, {s: report(s) for s in logits}, logits, 10, 0,
                           {"compile_s": 0.0, "train_s": 0.0}, rates, {}, 0.5, angle_shift)


def test_a_saturated_set_reports_the_epoch_of_lowest_validation_loss():
  config = head_config(kind="linear")
  config.num_epochs, config.select_epoch_by = 6, "loss"
  run = frozen.train_seeds(config, feature_set(), [0])[0]
  losses = [r["val_loss"] for r in run.records]
  assert run.best_epoch == int(np.argmin(losses)) and run.val_auc == run.records[run.best_epoch]["val_auc"]
  assert run.val_loss == min(losses)
  assert run.best_epoch != int(np.argmax([r["val_auc"] for r in run.records]))  # AUC (saturated) would pick another


def test_a_report_puts_each_backbone_beside_the_published_resnet50():
  meta = {"dataset": "breastmnist", "source_test_auc": 0.8712, "source_test_acc": 0.8333,
          "source_config_sha256": "ab" * 32, "source_git_commit": "cd" * 20}
  assert frozen_heads._backbone_words(meta) == (  # pylint: disable=protected-access
      " Backbone test AUC / ACC 0.871 / 0.833 (published ResNet-50 (28): 0.857 / 0.812); run config sha256 "
      "abababababab, commit cdcdcdcdcdcd.")
  assert frozen_heads._backbone_words({"dataset": "breastmnist"}) == ""  # pylint: disable=protected-access


def test_interval_words_claim_no_more_than_the_interval():
  assert frozen_heads.verdict(0.001, 0.02) == "ahead" and frozen_heads.verdict(-0.03, -0.001) == "behind"
  assert frozen_heads.verdict(-0.009, 0.004) == "not distinguishable at ±0.01"
  assert frozen_heads.verdict(-0.011, 0.004).startswith("undecided")


def test_family_report_compares_family_bests_with_two_level_intervals_and_holm(tmp_path):
  base = feature_set()
  other = features.FeatureSet({s: x + 0.5 for s, x in base.features.items()}, base.labels, base.index, base.meta)
  study = heads_config.get_config()
  study.features = ml_collections.ConfigDict({"breastmnist": base.save(str(tmp_path / "a.npz")),
                                              "breastmnist@b2": other.save(str(tmp_path / "b.npz"))})
  study.base.head.n_qubits = 4
  q = {"bottleneck_norm": True, "calibrate": True}
  study.designs = ml_collections.ConfigDict({
      "q_a": {"head": q}, "q_b": {"head": q, "overrides": {"standardize": True}},
      "q_a_control": {"head": {**q, "kind": "unentangled"}}, "q_b_control": {"head": {**q, "kind": "unentangled"}},
      "linear_std": {"head": {"kind": "linear"}, "overrides": {"standardize": True}},
      "linear_raw": {"head": {"kind": "linear"}}})
  study.seeds, study.families = (0, 1, 2), True
  study.bootstrap.num_resamples = 200
  # Validation AUCs where each family's best is not the quantum choice's own twin or the standardised
  # linear head: the old report would have compared q_b with q_b_twin and with linear_std.
  val = {"q_a": 0.80, "q_b": 0.85, "q_a_twin": 0.90, "q_b_twin": 0.70, "q_a_control": 0.60, "q_b_control": 0.65,
         "linear_std": 0.70, "linear_raw": 0.75}
  root, rng = str(tmp_path / "study"), np.random.default_rng(0)
  for key in study.features:
    fs = features.load(study.features[key])
    for design, auc in val.items():
      for seed in study.seeds:
        config = frozen_heads.run_config(study, key, design)
        circuit = design.startswith("q_") and not design.endswith("_twin")
        frozen.write_run(_fake_run(fs, rng, auc, seed, 1.0 + 0.3 * (design == "q_b"), 0.01 if circuit else None,
                                   frozen.base_rates(config)),
                         frozen_heads.run_dir(root, key, design, seed), config, fs, 1.0)
  csv_path, md_path = frozen_heads.write_report(study, root)
  rows = list(csv.DictReader(open(tmp_path / "study" / frozen_heads.HEADLINE_FILE)))
  headline = [r for r in rows if r["table"] == "headline"]
  assert [(r["features"], r["design"], r["other"]) for r in headline] == [
      (group, "q_b", other) for group in ("breastmnist", "breastmnist@b2", "breastmnist over 2 backbones")
      for other in ("q_a_twin", "q_b_control", "linear_raw")]
  assert {(r["design"], r["other"]) for r in rows if r["table"] == "own"} == {
      ("q_a", "q_a_twin"), ("q_a", "q_a_control"), ("q_b", "q_b_twin"), ("q_b", "q_b_control")}
  adjusted, differs = frozen_heads.stats.holm([float(r["p"]) for r in headline], 0.05)
  np.testing.assert_allclose([float(r["p_holm"]) for r in headline], adjusted, rtol=1e-6)
  assert [r["differs"] == "True" for r in headline] == differs.tolist()
  # The pooled row: backbones as outer units, each backbone's seeds paired, the shared test set resampled.
  pooled = next(r for r in headline if r["features"].endswith("backbones") and r["other"] == "linear_raw")
  scores = lambda key, design: [frozen_heads.reports.read_predictions_csv(frozen_heads.run_folders.RunFolder(
      frozen_heads.run_dir(root, key, design, s)).test_predictions())[1] for s in study.seeds]
  labels = base.labels["test"][np.argsort(base.index["test"])]
  direct = frozen_heads.stats.two_level_bootstrap(labels, [scores(k, "q_b") for k in study.features],
                                                  [scores(k, "linear_raw") for k in study.features], base.task,
                                                  num_resamples=200, seed=0)
  assert (pooled["units"], pooled["unit_level"]) == ("2", "backbones")
  np.testing.assert_allclose([float(pooled[k]) for k in ("delta_auc", "low", "high", "p")],
                             [direct.estimate, direct.low, direct.high, direct.p_value], rtol=1e-6)
  assert float(pooled["angle_shift"]) == pytest.approx(0.01) and pooled["other_angle_shift"] == "nan"
  text = open(md_path).read()
  assert "Family best against family best" in text and "| breastmnist over 2 backbones | val_auc | q_b (0.01)" in text
  # The answer's sentences are written from these rows: each interval worded by what it supports.
  sentence = next(line for line in text.splitlines() if line.startswith("ΔAUC = quantum − other"))
  words = frozen_heads.verdict(float(pooled["low"]), float(pooled["high"]))
  assert "On breastmnist over 2 backbones, the quantum family's best (q_b): " in sentence
  assert (f"against the linear family's best {float(pooled['delta_auc']):+.4f} [{float(pooled['low']):+.4f}, "
          f"{float(pooled['high']):+.4f}], {words}") in sentence
  design_rows = {r["model"]: r for r in csv.DictReader(open(csv_path)) if r["dataset"] == "breastmnist"}
  assert {m: design_rows[m]["family"] for m in ("q_a", "q_a_twin", "q_a_control", "linear_raw")} == {
      "q_a": "quantum", "q_a_twin": "twin", "q_a_control": "control", "linear_raw": "linear"}
  assert float(design_rows["q_a"]["angle_shift_mean"]) == pytest.approx(0.01)
