r"""What a device needs to run each QCNN: qubits, parameters, depth and gate counts per unit family
and width, as built, in the RX, RY, RZ + CNOT basis (angle_y encoding, 1 readout qubit) and, with
the optional hardware extra, after routing on a fake IBM backend (its coupling map and ECR/CZ basis,
optimisation level 3, seeded: `qcnn_jax.studies.device_eval.transpile`).

  python -m experiments.circuit_resources --qubits=4,8,12 --out=results/circuit_resources.csv
  python -m experiments.circuit_resources --backend=   # without routing (no hardware extra needed)
"""

import csv
import os

from absl import flags

from experiments import cli
from qcnn_jax import runtime
from qcnn_jax.models.quantum import CONV_UNITS, QCNNSpec, export
from qcnn_jax.studies import device_eval

flags.DEFINE_list("qubits", ["4", "8", "12"], "Circuit widths.")
flags.DEFINE_list("units", sorted(CONV_UNITS), "Convolution units.")
flags.DEFINE_string("encoding", "angle_y", "Encoding.")
flags.DEFINE_string("out", None, "CSV file to write (a markdown table is printed).")
flags.DEFINE_string("backend", "fake_sherbrooke", "Fake IBM backend to route on (empty: no routing).")
FLAGS = flags.FLAGS
COLUMNS = ("unit", "n_qubits", "n_params", "depth", "gates_1q", "gates_2q", "native_depth", "native_1q", "native_cnot")
ROUTED = ("routed_backend", "routed_depth", "routed_2q")


def row(unit: str, n_qubits: int, device=None) -> dict:
  spec = QCNNSpec(n_qubits, unit, FLAGS.encoding)
  r = export.resources(spec)
  built, native = r["as_built"], r["native"]
  found = dict(unit=unit, n_qubits=n_qubits, n_params=r["n_params"], depth=built["depth"], gates_1q=built["gates_1q"],
               gates_2q=built["gates_2q"], native_depth=native["depth"], native_1q=native["gates_1q"],
               native_cnot=native["gates_2q"])
  if device is not None:
    program, _ = export.export(spec, *export.generic_inputs(spec))
    _, routed = device_eval.transpile([program], device)
    found.update(routed_backend=device.name, routed_depth=routed["depth_max"], routed_2q=routed["gates_2q_max"])
  return found


def main(argv):
  del argv
  runtime.quiet_library_logs()
  device = None
  if FLAGS.backend:
    device_eval.require_hardware_extra()
    device = device_eval.backend(FLAGS.backend)
  rows = [row(unit, int(n), device) for n in FLAGS.qubits for unit in FLAGS.units]
  columns = COLUMNS + (ROUTED if device is not None else ())
  print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
  for r in rows:
    print("| " + " | ".join(str(r[c]) for c in columns) + " |")
  if FLAGS.out:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, "w", newline="") as f:
      writer = csv.DictWriter(f, columns)
      writer.writeheader()
      writer.writerows(rows)


if __name__ == "__main__":
  cli.run(main)
