r"""Refreshes the README's generated tables and sentences from the committed reports (or checks them
with --check).

A generated block in README.md is

  <!-- table: results/frozen_heads_fair/results.md#Does the quantum head help? -->
  ...
  <!-- end table -->

and holds the first markdown table under that heading of that report; a block opened with
"<!-- text: report.md#heading -->" and closed with "<!-- end text -->" holds the first paragraph
(text lines that are not a table) under that heading: the sentences a study's report writes from its
own numbers. So no number in either is typed by hand.

  python -m experiments.readme_tables            # rewrite the blocks
  python -m experiments.readme_tables --check    # exit 1 when a block differs from its report
"""

import re
import sys

from absl import flags

from experiments import cli
from qcnn_jax.evaluation import reports

flags.DEFINE_string("readme", "README.md", "The file whose blocks to refresh.")
# allow_override: experiments.benchmarks.speed defines the same flag, and tests import both in one process.
flags.DEFINE_bool("check", False, "Only check: exit 1 (naming the blocks) when a block is stale.", allow_override=True)
FLAGS = flags.FLAGS

BLOCK = re.compile(r"(<!-- (?P<kind>table|text): (?P<path>[^#]+)#(?P<heading>[^>]+?) -->\n)(?P<body>.*?)"
                   r"(<!-- end (?P=kind) -->)", re.S)


def first_block(path: str, heading: str, kind: str = "table") -> str:
  """The first markdown table (consecutive lines starting with "|"), or with kind "text" the first
  paragraph (consecutive non-blank lines that are not a table), after the heading `heading`."""
  lines = open(path, encoding="utf-8").read().splitlines()
  start = next((i for i, line in enumerate(lines) if line.lstrip("#").strip() == heading and line.startswith("#")),
               None)
  if start is None:
    raise ValueError(f"{path} has no heading {heading!r}")
  wanted = (lambda line: line.startswith("|")) if kind == "table" else (
      lambda line: bool(line.strip()) and not line.startswith(("|", "#", "<!--", "!")))
  block = []
  for line in lines[start + 1:]:
    if wanted(line):
      block.append(line)
    elif block or line.startswith("#"):
      break
  if not block:
    raise ValueError(f"{path} has no {kind} under {heading!r}")
  return "\n".join(block) + "\n"


def refresh(text: str) -> tuple[str, list[str]]:
  """(text with every block refreshed, names of the blocks that changed)."""
  stale = []

  def replace(match):
    body = first_block(match["path"], match["heading"], match["kind"])
    if body != match["body"]:
      stale.append(f"{match['path']}#{match['heading']}")
    return match.group(1) + body + match.group(6)

  return BLOCK.sub(replace, text), stale


def main(argv):
  del argv
  text = open(FLAGS.readme, encoding="utf-8").read()
  new, stale = refresh(text)
  if FLAGS.check:
    if stale:
      print(f"{FLAGS.readme}: stale blocks {stale}; run python -m experiments.readme_tables", file=sys.stderr)
      sys.exit(1)
    return
  reports.write_text_atomic(FLAGS.readme, new)
  print(f"{FLAGS.readme}: {len(stale)} blocks refreshed")


if __name__ == "__main__":
  cli.run(main)
