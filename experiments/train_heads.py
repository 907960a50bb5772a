r"""Trains a head study on frozen features (all seeds of a design in one vmapped program) and writes
its report: `{workdir}/results.csv`, `{workdir}/results.md`.

  python -m experiments.train_heads --config=experiments/configs/heads.py --workdir=runs/frozen_heads \
      --config.features.breastmnist=features/breastmnist.npz [--designs=calibrated,linear] [--only_report]

Rerunning continues: designs whose seeds all finished are skipped. Without a feature file for any
set it stops with an error naming the files. Writing the report (`--out`) or records (`--records`)
over committed files is refused unless `--overwrite_records` is given.
"""

from absl import flags
from ml_collections import config_flags

from experiments import cli
from qcnn_jax import runtime
from qcnn_jax.studies import frozen_heads

config_flags.DEFINE_config_file("config", "experiments/configs/heads.py", "Head study config.", lock_config=False)
flags.DEFINE_string("workdir", None, "Study directory: one workdir per run, results.md, results.csv.", required=True)
flags.DEFINE_list("datasets", None, "Train only these datasets of the study (default: all).")
flags.DEFINE_list("designs", None, "Train only these designs, twins named explicitly (default: all).")
flags.DEFINE_bool("only_report", False, "Rebuild the report without training.")
flags.DEFINE_string("out", None, "Report folder (default: --workdir).")
flags.DEFINE_string("records", None, "Copy each finished run's small files (config.json, summary.json, "
                    "gzipped test predictions, lr_search.json) here, e.g. results/<study>/runs.")
flags.DEFINE_bool("overwrite_records", False, "Let --out and --records replace committed (git-tracked) files.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  runtime.enable_compilation_cache()
  cli.refuse_overwriting_records([FLAGS.out or FLAGS.workdir, FLAGS.records], FLAGS.overwrite_records)
  if not FLAGS.only_report:
    frozen_heads.train_study(FLAGS.config, FLAGS.workdir, datasets=FLAGS.datasets, selected=FLAGS.designs)
  if FLAGS.records:
    frozen_heads.record_runs(FLAGS.workdir, FLAGS.records, FLAGS.config.bootstrap.get("max_test_examples"))
  csv_path, md_path = frozen_heads.write_report(FLAGS.config, FLAGS.workdir, FLAGS.out)
  print(f"Report: {md_path}  {csv_path}")


if __name__ == "__main__":
  cli.run(main)
