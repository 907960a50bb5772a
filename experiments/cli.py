"""Entry point shared by the scripts: known user errors end in one clear message, not a traceback.

`run(main)` is `absl.app.run(main)`, except that the errors a user can fix (a workdir holding
another run, missing or corrupt data, a missing checkpoint or feature file, a non-finite loss)
print `error: <message naming the fix>` and exit with status 2 (usage: a workdir conflict, an invalid
config value) or 1 (e.g. a missing optional package).
`--verbose` shows the traceback instead.
"""

import sys

from absl import app, flags

from qcnn_jax.training.checkpointing import WorkdirConflictError
from qcnn_jax.data.corruptions import CorruptionsUnavailable
from qcnn_jax.data.sources import ChecksumError, DatasetNotFoundError
from qcnn_jax.training.train import ConfigError
from qcnn_jax.studies.device_eval import HardwareExtraMissing

flags.DEFINE_bool("verbose", False, "Show the full traceback of a known error.")
USAGE_ERRORS = (WorkdirConflictError, ConfigError)
KNOWN_ERRORS = USAGE_ERRORS + (DatasetNotFoundError, ChecksumError, FileNotFoundError, FloatingPointError,
                               CorruptionsUnavailable, HardwareExtraMissing)


def run(main) -> None:
  """Runs `main(argv)` under absl with the error handling above."""
  def guarded(argv):
    try:
      return main(argv)
    except KNOWN_ERRORS as e:
      if flags.FLAGS.verbose:
        raise
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2 if isinstance(e, USAGE_ERRORS) else 1)

  app.run(guarded)
