r"""Trains the data-efficiency study (heads on stratified fractions of the training split) and writes
its report (results.csv, differences.csv, results.md, data_efficiency.png) to --out.

  python -m experiments.data_efficiency --workdir=runs/data_efficiency --config.rates_root=runs/heads_fair
  python -m experiments.data_efficiency --workdir=results/data_efficiency/runs --out=runs/data_efficiency_report \
      --only_report     # the report again from the committed records

Rerunning continues: runs with summary.json are not trained again. Each feature set trains at the
learning rates its head study searched (`--config.rates_root`); a set without them is refused in
training and left out of the report. Writing over committed files (`--out`, `--records` under
results/) is refused unless `--overwrite_records` is given.
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from qcnn_jax import runtime
from qcnn_jax.studies import data_efficiency, frozen_heads

config_flags.DEFINE_config_file("config", "experiments/configs/data_efficiency.py", "Study config.",
                                lock_config=False)
flags.DEFINE_string("workdir", None, "Run folder (one workdir per run).", required=True)
flags.DEFINE_string("out", None, "Report folder (default: --workdir).")
flags.DEFINE_list("datasets", None, "Train only these feature sets (default: all whose file exists).")
flags.DEFINE_bool("only_report", False, "Rebuild the report without training.")
flags.DEFINE_string("records", None, "Copy each finished run's config.json and summary.json here "
                    "(e.g. results/data_efficiency/runs): the report needs nothing else.")
flags.DEFINE_bool("overwrite_records", False, "Let --out and --records replace committed (git-tracked) files.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  runtime.enable_compilation_cache()
  cli.refuse_overwriting_records([FLAGS.out or FLAGS.workdir, FLAGS.records], FLAGS.overwrite_records)
  if not FLAGS.only_report:
    data_efficiency.train(FLAGS.config, FLAGS.workdir, datasets=FLAGS.datasets)
  if FLAGS.records:
    frozen_heads.record_runs(FLAGS.workdir, FLAGS.records, max_test_examples=0)
  print(f"Report: {data_efficiency.write_report(FLAGS.config, FLAGS.workdir, FLAGS.out or FLAGS.workdir)}")


if __name__ == "__main__":
  cli.run(main)
