"""The benchmark and diagnostic scripts run end to end, exit 0 and append their JSON rows."""

import json
import subprocess
import sys

import numpy as np
import pytest

from qcnn_jax import malloc


def run_script(module: str, *flags: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", module, *flags], capture_output=True, text=True, timeout=600)


def script_rows(tmp_path, module: str, *flags: str) -> list[dict]:
  """The JSON rows a benchmark script writes to --out, after checking it exits 0."""
  out = tmp_path / "rows.json"
  result = run_script(module, *flags, f"--out={out}")
  assert result.returncode == 0, result.stderr[-2000:]
  return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.slow
def test_train_step_benchmark_appends_one_row_per_model_and_size(tmp_path):
  out = tmp_path / "rows.json"
  out.write_text('{"earlier": true}\n')
  result = run_script("experiments.benchmarks.train_step", "--models=resnet50,qcnn", "--sizes=28", "--batch=4",
                      "--steps=1", "--width=4", f"--out={out}")
  assert result.returncode == 0, result.stderr[-2000:]
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  assert rows[0] == {"earlier": True}  # appended, not overwritten
  assert [(r["impl"], r["image_size"], r["batch"], r["dtype"]) for r in rows[1:]] == [
      ("resnet50", 28, 4, "float32"), ("qcnn", 28, 4, "float32")]
  assert all(r["images_per_s"] > 0 and r["compile_s"] > 0 and r["compile_s_warm"] > 0 and r["first_call_s"] > 0
             for r in rows[1:])


def test_qcnn_benchmark_times_jitted_rows_side_by_side():
  from experiments.benchmarks import qcnn as bench  # pylint: disable=import-outside-toplevel
  from qcnn_jax.models.quantum import QCNNSpec  # pylint: disable=import-outside-toplevel
  spec = QCNNSpec(4)
  params, features = bench.inputs(spec, 8)
  impls = ["project", "project_unfused", "pennylane_plain"]
  rows, outputs = bench.jitted_rows(spec, impls, params, features, repeats=3)
  assert set(rows) == set(outputs) == set(impls)
  for impl in impls[:2]:
    np.testing.assert_allclose(outputs[impl], outputs["pennylane_plain"], atol=1e-5)
  assert rows["pennylane_plain"]["grad_speedup_vs_plain"] == 1.0
  for row in rows.values():
    assert row["fwd_samples_per_s"] > 0 and row["grad_samples_per_s"] > 0 and row["compile_s"] > 0
    assert row["grad_speedup_vs_plain"] > 0
  # 8 qubits: 14 gates after the product-state preparation, the last 8 as one dense block, the other
  # 6 in 4 fused blocks (3-qubit fusion at every width); 12 qubits: 23 gates, the last 6 as a dense
  # block, the other 17 in 9 fused blocks.
  assert (bench.n_state_passes(QCNNSpec(8)), bench.n_state_passes(QCNNSpec(8), fused=False)) == (5, 7)
  assert (bench.n_state_passes(QCNNSpec(12)), bench.n_state_passes(QCNNSpec(12), fused=False)) == (10, 18)
  noisy, noisy_outputs = bench.jitted_rows(spec, ["project_density", "pennylane_mixed"], params, features, repeats=1,
                                           noise=bench.execution.Noise("depolarizing", 0.05))
  np.testing.assert_allclose(noisy_outputs["project_density"], noisy_outputs["pennylane_mixed"], atol=1e-5)
  assert noisy["pennylane_mixed"]["grad_speedup_vs_mixed"] == 1.0 and "grad_speedup_vs_plain" not in noisy["project_density"]


def test_gradient_variance_script_writes_a_row_per_width(tmp_path):
  out = tmp_path / "gradvar.json"
  result = run_script("experiments.gradient_variance", "--n_qubits=4", "--num_samples=8", f"--out={out}")
  assert result.returncode == 0, result.stderr[-2000:]
  (row,) = [json.loads(line) for line in out.read_text().splitlines()]
  assert row["n_qubits"] == 4 and 0 < row["var_all"] < 1 and row["var_first_conv"] > row["var_pool"]


def test_heads_benchmark_times_sequential_and_vmapped_seeds(tmp_path):
  out = tmp_path / "heads.json"
  result = run_script("experiments.benchmarks.heads", "--heads=linear", "--seeds=2", "--n_train=160", "--epochs=2",
                      "--dim=16", f"--out={out}")
  assert result.returncode == 0, result.stderr[-2000:]
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  assert [(r["head"], r["mode"], r["seeds"], r["n_train"]) for r in rows] == [
      ("linear", "sequential", 2, 160), ("linear", "vmapped", 2, 160)]
  assert all(r["wall_s"] >= r["compile_s"] > 0 for r in rows)
  assert rows[1]["max_logit_diff"] < 1e-5 and rows[1]["speedup"] > 0


def test_known_errors_end_in_one_message_and_a_status_not_a_traceback(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "notes.txt").write_text("a user's file")
  result = run_script("experiments.train", "--config=experiments/configs/quick.py", f"--workdir={workdir}")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert "error: workdir" in result.stderr and "--overwrite" in result.stderr
  assert (workdir / "notes.txt").read_text() == "a user's file"
  typo = run_script("experiments.train", "--config=experiments/configs/quick.py", f"--workdir={tmp_path / 'typo'}",
                    "--config.schedule=cosine")
  assert typo.returncode == 2 and "Traceback" not in typo.stderr
  assert "error: invalid config: Unknown schedule 'cosine'; choose constant" in typo.stderr
  assert not (tmp_path / "typo").exists()  # nothing written: the corrected command starts cleanly
  missing = run_script("experiments.extract_features", f"--workdir={tmp_path / 'none'}", f"--out={tmp_path / 'f.npz'}")
  assert missing.returncode == 2 and "Traceback" not in missing.stderr and "error:" in missing.stderr  # a flag's mistake
  (tmp_path / "empty").mkdir()
  verbose = run_script("experiments.extract_features", f"--workdir={tmp_path / 'empty'}", f"--out={tmp_path / 'f.npz'}",
                       "--verbose")  # a folder without a run: the known error's traceback, on request
  assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_conv_layers_profile_finds_every_convolution_of_the_model(tmp_path):
  rows = script_rows(tmp_path, "experiments.benchmarks.conv_layers", "--model=resnet18", "--size=28", "--batch=2",
                     "--repeats=1", "--torch=false", "--conv_impls=xla,onednn")
  shape = lambda r: (r["height"], r["in_channels"], r["out_channels"], r["kernel"], r["stride"], r["pass"])
  assert sorted(map(shape, (r for r in rows if r["conv_impl"] == "onednn"))) == sorted(
      map(shape, (r for r in rows if r["conv_impl"] == "xla")))  # every layer timed with both
  rows = [r for r in rows if r["conv_impl"] == "xla"]
  forward = [r for r in rows if r["pass"] == "forward"]
  # ResNet-18: the stem, two per basic block (8 blocks) and three projection shortcuts.
  assert sum(r["count"] for r in forward) == 1 + 2 * 8 + 3
  assert (forward[0]["height"], forward[0]["in_channels"], forward[0]["out_channels"], forward[0]["kernel"]) == (28, 1, 64, 3)
  assert {r["pass"] for r in rows} == {"forward", "input_grad", "kernel_grad"} and len(rows) == 3 * len(forward)
  assert all(r["jax_ms"] > 0 and r["jax_step_ms"] == r["count"] * r["jax_ms"] for r in rows)


def test_malloc_benchmark_runs_a_process_per_setting_and_counts_their_page_faults(tmp_path):
  # Width 16, batch 8: XLA's temporary buffer (~60 MB) is above glibc's largest mmap threshold (32 MiB),
  # so with glibc's defaults it is mapped afresh every step (smaller ones may be reused from the heap).
  rows = script_rows(tmp_path, "experiments.benchmarks.malloc", "--impls=xla", "--width=16", "--size=28",
                     "--batch=8", "--steps=2", "--repeats=2", "--settings=system,keep,huge")
  assert [r["malloc"] for r in rows] == ["system", "keep", "huge", "huge", "keep", "system"]
  assert all(r["step_s_min"] <= r["step_s_median"] and r["minor_faults_per_step"] >= 0 for r in rows)
  faults = {s: min(r["minor_faults_per_step"] for r in rows if r["malloc"] == s) for s in malloc.SETTINGS}
  if malloc.available("keep"):  # one never-trimmed heap: the buffer's pages are reused
    assert faults["system"] > 5000 and faults["keep"] < faults["system"] / 10, faults
  if malloc.available("huge"):  # the kernel gives huge pages: far fewer faults with them
    assert faults["huge"] < faults["system"] / 4, faults
  assert "unknown" in run_script("experiments.benchmarks.malloc", "--settings=tcmalloc").stderr


def test_step_profile_labels_the_traced_ops_of_a_train_step(tmp_path):
  rows = script_rows(tmp_path, "experiments.benchmarks.step_profile", "--model=resnet50", "--width=4", "--size=28",
                     "--batch=4", "--steps=1")
  kinds = {(r["kind"], r["pass"]) for r in rows}
  assert {("convolution", "forward"), ("convolution", "backward"), ("dot", "forward"), ("dot", "backward")} <= kinds
  assert all(r["ms_per_step"] >= 0 for r in rows) and sum(r["ms_per_step"] for r in rows) > 0
  assert any("conv_general_dilated" in r["source"] for r in rows)


@pytest.mark.slow
def test_xla_flags_benchmark_compares_gradients_across_settings(tmp_path):
  rows = [r for r in script_rows(tmp_path, "experiments.benchmarks.xla_flags", "--model=resnet18", "--settings=default,eigen",
                                 "--sizes=28", "--batches=2", "--steps=1", "--width=4") if r["impl"] == "resnet18"]
  assert [(r["setting"], r["batch"], r["image_size"]) for r in rows] == [("default", 2, 28), ("eigen", 2, 28)]
  assert rows[0]["grad_rel_diff"] == 0.0 and 0.0 < rows[1]["grad_rel_diff"] < 1e-4  # other kernels, same gradient
  assert rows[1]["xla_flags"] == "--xla_cpu_experimental_ynn_fusion_type="


def test_speed_page_is_written_from_the_committed_records(monkeypatch):
  """results/benchmarks/speed.md (the README's speed sentences, docs/performance.md's table) equals what
  its records give; the ResNet ratios are each Flax row's side-by-side ratio, per convolution implementation."""
  import pathlib  # pylint: disable=import-outside-toplevel
  from experiments.benchmarks import speed  # pylint: disable=import-outside-toplevel
  monkeypatch.chdir(pathlib.Path(__file__).resolve().parents[1])
  text = speed.markdown(speed.read_rows(speed.QCNN_RECORD), speed.read_rows(speed.RESNET_RECORD),
                        speed.read_rows(speed.MALLOC_RECORD))
  assert pathlib.Path(speed.OUT).read_text(encoding="utf-8") == text
  rows = [{"impl": impl, "image_size": size, "batch": 32, "vs_torchvision": v, "process": process,
           "step_s_median": 1.0, "step_s_min": 0.9, "images_per_s": 32.0}
          for process, cells in ((1, ((28, 0.8, 0.99), (64, 0.9, 1.04))), (2, ((28, 0.83, 1.02), (64, 0.93, 1.07))))
          for size, xla, dnn in cells
          for impl, v in (("xla", xla), ("onednn", dnn), ("torchvision_resnet50", 1.0))]
  assert speed.resnet_ratios(rows) == {"xla": {(28, 32): (0.8, 0.83), (64, 32): (0.9, 0.93)},
                                       "onednn": {(28, 32): (0.99, 1.02), (64, 32): (1.04, 1.07)}}
  assert ("0.99–1.02×, 1.04–1.07× torchvision's speed with oneDNN's" in speed.sentences([], rows)
          and "the range over two processes" in speed.sentences([], rows))
  assert "| 28 px | 32 | 2 | onednn |" in speed.resnet_table(rows)
  qrows = [{"impl": "project", "n_qubits": 8, "fwd_speedup_vs_tensorcircuit": f, "grad_speedup_vs_tensorcircuit": g}
           for f, g in ((2.0, 1.2), (1.5, 1.4))] + [{"impl": "tensorcircuit", "n_qubits": 8}]
  assert speed.qcnn_ranges(qrows) == {8: {"fwd_tensorcircuit": (1.5, 2.0), "grad_tensorcircuit": (1.2, 1.4)}}
  assert "1.20–1.40× with the gradient at 8 qubits" in speed.sentences(qrows, rows)
