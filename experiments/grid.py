r"""Runs a grid of trainings (datasets × models × seeds) and writes its results report.

  python -m experiments.grid --config=experiments/configs/grid_medmnist.py --workdir=runs/grid_medmnist
  python -m experiments.grid --config=... --workdir=... --datasets=breastmnist --seeds=0,1
  python -m experiments.grid --config=... --workdir=... --only_report

Finished runs (those with summary.json) are skipped and a partial run resumes from its
checkpoint, so rerunning the same command continues a killed grid. The subset flags choose what
to train; `{workdir}/results.md` and `results.csv` always list every run of the grid.

Runs that survive a new machine: with `--records=results/<grid>/runs` every run that finishes is
copied (config, summary, metrics, val/test predictions; no checkpoints) to
`{records}/{dataset}/{model}/seed{k}/`; commit that folder. On a fresh clone the same command
counts recorded runs (made with the same config) as finished, trains only the others and builds
the report from records and workdirs alike. `--record_finished` records the finished runs of an
existing grid directory without training.
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import cli
from qcnn_jax import runtime
from qcnn_jax.studies import grid

config_flags.DEFINE_config_file("config", None, "Grid config (experiments/configs/grid_*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Grid directory: one workdir per run, results.md, results.csv.", required=True)
flags.DEFINE_bool("only_report", False, "Rebuild the report from finished runs without training.")
flags.DEFINE_list("datasets", None, "Train only these datasets of the grid (default: all).")
flags.DEFINE_list("models", None, "Train only these models of the grid (default: all).")
flags.DEFINE_list("seeds", None, "Train only these seeds of the grid (default: all).")
flags.DEFINE_string("records", None, "Folder of committed run records (e.g. results/grid_hassan_cpu/runs): "
                    "finished runs are copied there and recorded runs count as finished.")
flags.DEFINE_bool("record_finished", False, "Copy every finished run of --workdir into --records and exit.")
flags.mark_flag_as_required("config")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  failures = {}
  seeds = [int(s) for s in FLAGS.seeds] if FLAGS.seeds else None
  runs = grid.expand(FLAGS.config, FLAGS.workdir, datasets=FLAGS.datasets, models=FLAGS.models, seeds=seeds,
                     records=FLAGS.records)
  if FLAGS.record_finished:
    if not FLAGS.records:
      raise app.UsageError("--record_finished needs --records=<folder>")
    for run in runs:
      if os.path.exists(run.summary_path):
        print(f"recorded {grid.record_run(run)}")
  elif not FLAGS.only_report:
    failures = grid.train_runs(FLAGS.config, FLAGS.workdir, runs, records=FLAGS.records)
  csv_path, md_path = grid.write_report(FLAGS.config, FLAGS.workdir, failures=failures, records=FLAGS.records)
  print(f"Report: {md_path}  {csv_path}")
  if failures:
    for run, error in failures.items():
      logging.error("failed: %s %s seed %d: %s", run.dataset, run.model, run.seed, error)
    raise SystemExit(f"{len(failures)} run(s) failed; rerun the same command to retry them.")


if __name__ == "__main__":
  cli.run(main)
