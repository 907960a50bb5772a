r"""Evaluates the best checkpoint of a run and rewrites its reports.

  python -m experiments.evaluate --workdir=runs/breast_hybrid [--split=test]
"""

from absl import flags

from experiments import cli
from qcnn_jax import runtime, train

flags.DEFINE_string("workdir", None, "Run directory written by experiments.train.", required=True)
flags.DEFINE_enum("split", None, ["train", "val", "test"], "Split to evaluate (default: all).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  for split, report in train.evaluate_workdir(FLAGS.workdir, FLAGS.split).items():
    print(f"{split}: AUC {report['auc']:.4f}  ACC {report['acc']:.4f}  F1 (macro) {report['f1_macro']:.4f}")


if __name__ == "__main__":
  cli.run(main)
