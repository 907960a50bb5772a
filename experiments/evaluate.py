r"""Evaluates the best checkpoint of a run and rewrites its reports (metrics_eval.json; for a
residual head also the test metrics with its gate at 0, its linear path alone).

  python -m experiments.evaluate --workdir=runs/breast_hybrid [--split=test] [--checkpoint=latest]
"""

from absl import flags

from experiments import cli
from qcnn_jax import runtime
from qcnn_jax.training import train

flags.DEFINE_string("workdir", None, "Run directory written by experiments.train.", required=True)
cli.require_existing_workdir()
flags.DEFINE_enum("split", None, ["train", "val", "test"], "Split to evaluate (default: all).")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"],
                  "Checkpoint to evaluate: the best by validation AUC (the run's report) or the newest intact one.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  results, gate_off = train.evaluate_workdir(FLAGS.workdir, FLAGS.split, FLAGS.checkpoint)
  for split, report in results.items():
    print(f"{split}: AUC {report['auc']:.4f}  ACC {report['acc']:.4f}  F1 (macro) {report['f1_macro']:.4f}")
  if gate_off:
    print(f"test, residual gate g = {gate_off['residual_gate']:.4g} set to 0 (the linear path alone): "
          f"AUC {gate_off['test_auc_gate_off']:.4f}  ACC {gate_off['test_acc_gate_off']:.4f}")


if __name__ == "__main__":
  cli.run(main)
