"""The scripts' shared entry point: flag and config mistakes, comma lists for tuple keys, committed files."""

import subprocess
import sys

import pytest

from experiments import cli


@pytest.mark.parametrize("given, parsed", [("linear,product", ("linear", "product")), ("0,1", (0, 1)),
                                           ("1e-2, 3e-3", (1e-2, 3e-3)), ("(0, 1)", (0, 1)), ("linear", ("linear",))])
def test_a_tuple_key_takes_a_comma_list_or_a_python_tuple(given, parsed):
  assert cli.CommaTupleParser().parse(given) == parsed


def test_comma_lists_reach_the_config_instead_of_a_key_error(tmp_path):
  """`--config.designs=a,b` used to become the one design 'a,b' and end in a KeyError traceback."""
  result = subprocess.run([sys.executable, "-m", "experiments.data_efficiency", "--config.designs=linear_std,linear_raw",
                           "--config.fractions=0.5,1", f"--workdir={tmp_path}", "--only_report"],
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "Traceback" not in result.stderr


def test_committed_files_are_found_and_protected():
  assert cli.tracked_files(["results/frozen_heads_fair"]) and not cli.tracked_files(["runs/no_such_folder", None])
  with pytest.raises(cli.UsageError, match="overwrite .* committed file.*--overwrite_records"):
    cli.refuse_overwriting_records(["results/frozen_heads_fair", None], overwrite=False)
  cli.refuse_overwriting_records(["results/frozen_heads_fair"], overwrite=True)
  cli.refuse_overwriting_records(["runs/no_such_folder"], overwrite=False)
