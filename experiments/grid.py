r"""Runs a grid of trainings (datasets × models × seeds) and writes its results report.

  python -m experiments.grid --config=experiments/configs/grid_medmnist.py --workdir=runs/grid_medmnist
  python -m experiments.grid --config=... --workdir=... --datasets=breastmnist --seeds=0,1
  python -m experiments.grid --config=... --workdir=... --only_report

Finished runs (those with summary.json) are skipped and a partial run resumes from its
checkpoint, so rerunning the same command continues a killed grid. The subset flags choose what
to train; `{workdir}/results.md` and `results.csv` always list every run of the grid.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from qcnn_jax import grid, runtime

config_flags.DEFINE_config_file("config", None, "Grid config (experiments/configs/grid_*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Grid directory: one workdir per run, results.md, results.csv.", required=True)
flags.DEFINE_bool("only_report", False, "Rebuild the report from finished runs without training.")
flags.DEFINE_list("datasets", None, "Train only these datasets of the grid (default: all).")
flags.DEFINE_list("models", None, "Train only these models of the grid (default: all).")
flags.DEFINE_list("seeds", None, "Train only these seeds of the grid (default: all).")
flags.mark_flag_as_required("config")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  failures = {}
  if not FLAGS.only_report:
    seeds = [int(s) for s in FLAGS.seeds] if FLAGS.seeds else None
    runs = grid.expand(FLAGS.config, FLAGS.workdir, datasets=FLAGS.datasets, models=FLAGS.models, seeds=seeds)
    failures = grid.train_runs(FLAGS.config, FLAGS.workdir, runs)
  csv_path, md_path = grid.write_report(FLAGS.config, FLAGS.workdir, failures=failures)
  print(f"Report: {md_path}  {csv_path}")
  if failures:
    for run, error in failures.items():
      logging.error("failed: %s %s seed %d: %s", run.dataset, run.model, run.seed, error)
    raise SystemExit(f"{len(failures)} run(s) failed; rerun the same command to retry them.")


if __name__ == "__main__":
  app.run(main)
