r"""Trains and evaluates one run: parses flags, then calls `qcnn_jax.training.train.train_and_evaluate`.

  python -m experiments.train --config=experiments/configs/medmnist.py \
      --config.dataset=breastmnist --config.model=resnet50_qcnn --workdir=runs/breast_hybrid

Rerunning the same command resumes the run in --workdir. Multi-host: start the same command on
every host with --distributed (Cloud TPU, SLURM) or --coordinator_address=HOST:PORT
--num_processes=N --process_id=I.
"""

from absl import flags, logging
from ml_collections import config_flags

from experiments import cli
from qcnn_jax import parallel, runtime
from qcnn_jax.training import train

config_flags.DEFINE_config_file("config", "experiments/configs/medmnist.py", "Config file (ml_collections).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, predictions, plots.", required=True)
flags.DEFINE_bool("overwrite", False, "Move a different run found in --workdir aside and start anew.")
flags.DEFINE_bool("distributed", False, "Multi-host: call jax.distributed.initialize (arguments are "
                  "auto-detected on Cloud TPU and SLURM; elsewhere give the three flags below).")
flags.DEFINE_string("coordinator_address", None, "Multi-host: address HOST:PORT of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: index of this process.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  if FLAGS.distributed or FLAGS.coordinator_address:
    parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  summary = train.train_and_evaluate(FLAGS.config, FLAGS.workdir, overwrite=FLAGS.overwrite)
  logging.info("summary: %s", summary)
  print(f"test AUC {summary['test_auc']:.4f}  test ACC {summary['test_acc']:.4f}  "
        f"({train.describe_selection(summary)}; {FLAGS.workdir})")


if __name__ == "__main__":
  cli.run(main)
