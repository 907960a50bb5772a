r"""Refreshes the README's generated tables from the committed reports (or checks them with --check).

A generated block in README.md is

  <!-- table: results/frozen_heads_fair/results.md#Does the quantum head help? -->
  ...
  <!-- end table -->

and holds the first markdown table under that heading of that report, so no number in it is typed
by hand.

  python -m experiments.readme_tables            # rewrite the blocks
  python -m experiments.readme_tables --check    # exit 1 when a block differs from its report
"""

import re
import sys

from absl import flags

from experiments import cli
from qcnn_jax.evaluation import reports

flags.DEFINE_string("readme", "README.md", "The file whose blocks to refresh.")
flags.DEFINE_bool("check", False, "Only check: exit 1 (naming the blocks) when a block is stale.")
FLAGS = flags.FLAGS

BLOCK = re.compile(r"(<!-- table: (?P<path>[^#]+)#(?P<heading>[^>]+?) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


def first_table(path: str, heading: str) -> str:
  """The first markdown table (consecutive lines starting with "|") after the heading `heading`."""
  lines = open(path, encoding="utf-8").read().splitlines()
  start = next((i for i, line in enumerate(lines) if line.lstrip("#").strip() == heading and line.startswith("#")),
               None)
  if start is None:
    raise ValueError(f"{path} has no heading {heading!r}")
  table = []
  for line in lines[start + 1:]:
    if line.startswith("|"):
      table.append(line)
    elif table:
      break
  if not table:
    raise ValueError(f"{path} has no table under {heading!r}")
  return "\n".join(table) + "\n"


def refresh(text: str) -> tuple[str, list[str]]:
  """(text with every block refreshed, names of the blocks that changed)."""
  stale = []

  def replace(match):
    body = first_table(match["path"], match["heading"])
    if body != match["body"]:
      stale.append(f"{match['path']}#{match['heading']}")
    return match.group(1) + body + match.group(5)

  return BLOCK.sub(replace, text), stale


def main(argv):
  del argv
  text = open(FLAGS.readme, encoding="utf-8").read()
  new, stale = refresh(text)
  if FLAGS.check:
    if stale:
      print(f"{FLAGS.readme}: stale tables {stale}; run python -m experiments.readme_tables", file=sys.stderr)
      sys.exit(1)
    return
  reports.write_text_atomic(FLAGS.readme, new)
  print(f"{FLAGS.readme}: {len(stale)} tables refreshed")


if __name__ == "__main__":
  cli.run(main)
