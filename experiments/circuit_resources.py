r"""What a device needs to run each QCNN: qubits, parameters, depth and gate counts per unit family
and width, as built and in the RX, RY, RZ + CNOT basis (angle_y encoding, 1 readout qubit).

  python -m experiments.circuit_resources --qubits=4,8,12 --out=results/circuit_resources.csv
"""

import csv
import os

from absl import app, flags

from qcnn_jax.models.quantum import CONV_UNITS, QCNNSpec, export

flags.DEFINE_list("qubits", ["4", "8", "12"], "Circuit widths.")
flags.DEFINE_list("units", sorted(CONV_UNITS), "Convolution units.")
flags.DEFINE_string("encoding", "angle_y", "Encoding.")
flags.DEFINE_string("out", None, "CSV file to write (a markdown table is printed).")
FLAGS = flags.FLAGS
COLUMNS = ("unit", "n_qubits", "n_params", "depth", "gates_1q", "gates_2q", "native_depth", "native_1q", "native_cnot")


def row(unit: str, n_qubits: int) -> dict:
  r = export.resources(QCNNSpec(n_qubits, unit, FLAGS.encoding))
  built, native = r["as_built"], r["native"]
  return dict(unit=unit, n_qubits=n_qubits, n_params=r["n_params"], depth=built["depth"], gates_1q=built["gates_1q"],
              gates_2q=built["gates_2q"], native_depth=native["depth"], native_1q=native["gates_1q"],
              native_cnot=native["gates_2q"])


def main(argv):
  del argv
  rows = [row(unit, int(n)) for n in FLAGS.qubits for unit in FLAGS.units]
  print("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS))
  for r in rows:
    print("| " + " | ".join(str(r[c]) for c in COLUMNS) + " |")
  if FLAGS.out:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, "w", newline="") as f:
      writer = csv.DictWriter(f, COLUMNS)
      writer.writeheader()
      writer.writerows(rows)


if __name__ == "__main__":
  app.run(main)
