r"""Exports the frozen backbone features of a finished run (best-validation checkpoint), all splits.

  python -m experiments.extract_features --workdir=runs/breast_resnet50 --out=features/breastmnist.npz
"""

from absl import flags

from experiments import cli
from qcnn_jax import runtime
from qcnn_jax.studies import features

flags.DEFINE_string("workdir", None, "A finished (or checkpointed) resnet18/resnet50/resnet50_* run.", required=True)
cli.require_existing_workdir()
flags.DEFINE_string("out", None, "Feature file to write (.npz).", required=True)
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  feature_set = features.extract(FLAGS.workdir, FLAGS.out)
  sizes = ", ".join(f"{s} {v.shape[0]}" for s, v in feature_set.features.items())
  print(f"{FLAGS.out}: {feature_set.dim} features ({sizes}) from epoch {feature_set.meta['source_epoch']}")


if __name__ == "__main__":
  cli.run(main)
