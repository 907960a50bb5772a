"""Entry point shared by the scripts: known user errors end in one clear message, not a traceback.

`run(main)` is `absl.app.run(main)`, except that the errors a user can fix print
`error: <message naming the fix>` and exit with status 2 (usage: a misspelt config key, a bad flag
value, a missing workdir, a workdir holding another run, an invalid config value, a circuit too
large for memory, committed files a command would overwrite) or 1 (missing or corrupt data, a
missing checkpoint or feature file, a non-finite loss, a missing optional package).
`--verbose` shows the traceback instead. A tuple config key accepts a comma list
(`--config.seeds=0,1`, `--config.designs=linear,product`) as well as Python's `(0, 1)`.
"""

import ast
import os
import re
import subprocess
import sys

from absl import app, flags
from ml_collections.config_flags import config_flags, tuple_parser

from qcnn_jax import integrity
from qcnn_jax.training.checkpointing import CheckpointDamagedError, DiskFullError, WorkdirConflictError
from qcnn_jax.training.lock import FolderBusyError
from qcnn_jax.data.corruptions import CorruptionsUnavailable
from qcnn_jax.data.sources import ChecksumError, DatasetNotFoundError
from qcnn_jax.models.onednn import OnednnUnavailable
from qcnn_jax.data.folder import FolderDatasetError
from qcnn_jax.serving import ServingError
from qcnn_jax.training.train import ConfigError
from qcnn_jax.studies.device_eval import HardwareExtraMissing

flags.DEFINE_bool("verbose", False, "Show the full traceback of a known error.")


class UsageError(ValueError):
  """A command-line mistake (a flag or config key or value that cannot be used): exit status 2."""


USAGE_ERRORS = (WorkdirConflictError, ConfigError, UsageError, FolderBusyError, FolderDatasetError, ServingError)
KNOWN_ERRORS = USAGE_ERRORS + (DatasetNotFoundError, ChecksumError, FileNotFoundError, FloatingPointError,
                               CheckpointDamagedError, DiskFullError,
                               CorruptionsUnavailable, HardwareExtraMissing, OnednnUnavailable)


class CommaTupleParser(tuple_parser.TupleParser):
  """Tuple config keys from a comma list (`a,b` or `0,1`) as well as from a Python literal."""

  def parse(self, argument):
    if isinstance(argument, str) and "," in argument and not argument.strip().startswith(("(", "[")):
      return tuple(_literal(part.strip()) for part in argument.split(",") if part.strip())
    return super().parse(argument)


def _literal(text: str):
  """A number, bool or None written as such, else the text itself."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


config_flags.register_flag_parser_for_type(tuple, CommaTupleParser())


def _config_key_message(error: Exception, argv: list[str]) -> str:
  """One line for a config override ml_collections refused: the flag, and its suggestion if any."""
  text = str(error.args[0] if error.args else error)
  suggestion = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
  key = suggestion.group(2) if suggestion else text.strip("'\"")
  given = next((a.split("=")[0] for a in argv if re.search(rf"\.{re.escape(key)}$", a.split("=")[0])), key)
  hint = f"did you mean {suggestion.group(1)}?" if suggestion else "the config file lists the keys it has"
  return f"unknown config key {given}: {hint}"


def _parse_message(error: Exception, argv: list[str]) -> str:
  """The one line for a flag or config override that could not be parsed."""
  if isinstance(error, flags.Error):
    return f"{error} (--helpshort lists the flags)" if "Unknown command line flag" in str(error) else str(error)
  if isinstance(error, (AttributeError, KeyError)):
    return _config_key_message(error, argv)
  return f"invalid config value: {error}"


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with every mistake as one `error:` line and exit status 2."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
    if "--verbose" in argv:
      raise
    print(f"error: {_parse_message(e, argv)}", file=sys.stderr)
    sys.exit(2)


def require_existing_workdir(flag: str = "workdir") -> None:
  """Makes `--<flag>` a folder that must exist (checked while parsing flags: one line, status 2)."""
  def check(path):
    if path and not os.path.isdir(path):
      raise flags.ValidationError(f"{path} does not exist: give the --{flag} of a trained run "
                                  f"(python -m experiments.train ... --workdir={path} makes one)")
    return True
  flags.register_validator(flag, check)


def tracked_files(paths: list[str]) -> list[str]:
  """The git-tracked files under `paths` (none outside a git checkout)."""
  existing = [p for p in paths if p and os.path.exists(p)]
  if not existing:
    return []
  listed = subprocess.run(["git", "ls-files", "--", *existing], capture_output=True, text=True, check=False)
  return listed.stdout.split() if listed.returncode == 0 else []


def refuse_overwriting_records(paths: list[str], overwrite: bool) -> None:
  """Raises UsageError when a command would write where committed (git-tracked) files are, unless
  `--overwrite_records` (`overwrite`) says so."""
  tracked = tracked_files(paths)
  if tracked and not overwrite:
    raise UsageError(f"this would overwrite {len(tracked)} committed file(s) (e.g. {tracked[0]}); write to a new "
                     "folder (the default is under runs/) or pass --overwrite_records to refresh the committed records")


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
    except OSError as e:  # a full disk outside a checkpoint save (metrics, reports, prepared data)
      if flags.FLAGS.verbose or not integrity.is_disk_full(e):
        raise
      print(f"error: no space left on the device ({integrity.first_line(e)}): free some space there, then rerun "
            "the same command; a run resumes from its latest checkpoint.", file=sys.stderr)
      sys.exit(1)

  app.run(guarded, flags_parser=parse_flags)
