"""OpenQASM export of trained circuits, checked by an independent parser and simulator (qiskit)."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from qiskit import qasm2, qasm3
from qiskit.quantum_info import Statevector

from qcnn_jax.studies import circuit_export
from qcnn_jax.models.quantum import QCNNSpec, export, param_shapes, qcnn_apply

pytestmark = pytest.mark.filterwarnings("ignore:Explicitly requested dtype")


def simulate(program: str, version: str, wires: list[int], kind: str) -> np.ndarray:
  """Readout of an OpenQASM program by qiskit: <Z> per wire, or big-endian probabilities of `wires`."""
  circuit = (qasm2 if version == "qasm2" else qasm3).loads(program)
  circuit.remove_final_measurements()
  state = Statevector.from_instruction(circuit)
  if kind == "probs":
    return state.probabilities(list(reversed(wires)))  # qiskit lists qargs little-endian
  return np.array([p[0] - p[1] for p in (state.probabilities([w]) for w in wires)])


SPECS = [QCNNSpec(4, "su4"), QCNNSpec(8, "so4"), QCNNSpec(8, "u15", readout="probs", n_readout=2),
         QCNNSpec(4, "ttn", encoding="amplitude"), QCNNSpec(8, "su4", encoding="dense_angle", readout="expvals",
                                                            n_readout=3)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.n_qubits}q-{s.conv_unit}-{s.encoding}-{s.readout}")
@pytest.mark.parametrize("version", ["qasm2", "qasm3"])
def test_exported_program_reproduces_the_readout_in_qiskit_and_in_the_model(spec, version):
  rng = np.random.default_rng(spec.n_qubits)
  params = {k: rng.uniform(0, 2 * np.pi, shape) for k, shape in param_shapes(spec).items()}
  features = rng.uniform(0.05, 1.0, spec.n_features)
  program, description = export.export(spec, params, features, version)
  assert description["readout_kind"] == spec.readout
  assert all(line.split("(")[0].split(" ")[0] in ("rx", "ry", "rz", "cx", "measure", "c[0]", "c[1]", "c[2]")
             for line in program.splitlines()[4:]), "only native gates"
  np.testing.assert_allclose(simulate(program, version, description["readout_wires"], spec.readout),
                             description["readout"], atol=1e-6)
  model = qcnn_apply(spec, jax.tree.map(jnp.asarray, params), jnp.asarray(features, jnp.float32)[None],
                     execution="statevector")
  np.testing.assert_allclose(np.asarray(model[0]), np.asarray(description["readout"])[: model.shape[1]], atol=2e-5)
  native = description["resources"]["native"]
  assert native["gates_2q"] > 0 and native["gates_other"] == 0 and native["depth"] > 0
  assert program.count("\ncx ") == native["gates_2q"]


def test_resources_per_unit_family_count_native_cnots():
  su4, so4 = export.resources(QCNNSpec(8, "su4")), export.resources(QCNNSpec(8, "so4"))
  assert su4["n_qubits"] == 8 and su4["n_params"] > so4["n_params"]
  assert su4["native"]["gates_2q"] >= su4["as_built"]["gates_2q"]
  # SO(4) units are built from CNOTs; only the 7 pools' 14 controlled rotations take 2 CNOTs each.
  assert so4["native"]["gates_2q"] - so4["as_built"]["gates_2q"] == 14


def test_export_command_writes_the_runs_circuit_for_one_test_image(quick_run, tmp_path):
  workdir, summary = quick_run
  out = tmp_path / "circuit.qasm"
  result = subprocess.run([sys.executable, "-m", "experiments.export_circuit", f"--workdir={workdir}",
                           "--split=test", "--index=7", f"--out={out}", "--format=qasm3"],
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  description = json.loads((tmp_path / "circuit.qasm.json").read_text())
  assert (description["split"], description["index"], description["format"]) == ("test", 7, "qasm3")
  assert description["readout_kind"] == "expval" and len(description["readout"]) == 1
  np.testing.assert_allclose(simulate(out.read_text(), "qasm3", description["readout_wires"], "expval"),
                             description["readout"], atol=1e-6)
  (circuit,) = summary["circuits"]  # summary.json lists the resources of the run's circuit
  assert {k: circuit[k] for k in description["resources"]} == description["resources"]
  assert circuit["n_qubits"] == 4 and circuit["readout_wires"] == description["readout_wires"]
  bad = subprocess.run([sys.executable, "-m", "experiments.export_circuit", f"--workdir={workdir}", "--index=100000",
                        f"--out={out}"], capture_output=True, text=True, timeout=600)
  assert bad.returncode == 2 and "test has no example with index 100000" in bad.stderr and "Traceback" not in bad.stderr
  export_again = circuit_export.export_run(str(workdir), "test", 7, str(tmp_path / "again.qasm"), "qasm3")
  assert export_again["readout"] == description["readout"]
