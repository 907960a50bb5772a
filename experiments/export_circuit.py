r"""Exports a trained run's circuit for one input as OpenQASM, with its readout and resources.

  python -m experiments.export_circuit --workdir=runs/quick --split=test --index=0 --out=circuit.qasm

Writes `circuit.qasm` (OpenQASM 2.0; --format=qasm3 for OpenQASM 3) in the RX, RY, RZ + CNOT basis
and `circuit.qasm.json`: readout_kind, readout_wires, readout (float64) and resources.
"""

from absl import flags

from experiments import cli
from qcnn_jax import runtime
from qcnn_jax.studies import circuit_export

flags.DEFINE_string("workdir", None, "A run trained by experiments.train.", required=True)
cli.require_existing_workdir()
flags.DEFINE_string("split", "test", "Split of the example.")
flags.DEFINE_integer("index", 0, "Official index of the example within its split.")
flags.DEFINE_string("out", None, "OpenQASM file to write (the description goes to <out>.json).", required=True)
flags.DEFINE_enum("format", "qasm2", ["qasm2", "qasm3"], "OpenQASM version.")
flags.DEFINE_integer("block", 0, "Which circuit, for heads running several.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  description = circuit_export.export_run(FLAGS.workdir, FLAGS.split, FLAGS.index, FLAGS.out, FLAGS.format,
                                          FLAGS.block)
  native = description["resources"]["native"]
  print(f"{FLAGS.out}: {description['resources']['n_qubits']} qubits, depth {native['depth']}, "
        f"{native['gates_1q']} one-qubit and {native['gates_2q']} CNOT gates; {description['readout_kind']} "
        f"readout of wires {description['readout_wires']}: {description['readout']}")


if __name__ == "__main__":
  cli.run(main)
