"""Benchmarks: `python -m experiments.benchmarks.<name> --out=FILE.json` (one JSON row per line).

Rows are appended to `--out` as soon as they are measured, so several invocations (e.g. one per
qubit count) collect in one file and a run killed midway keeps its finished rows.
"""

import json


def write_rows(path: str | None, rows: list[dict]) -> None:
  """Appends `rows` as JSON lines to `path` (nothing when `path` is None)."""
  if path:
    with open(path, "a") as f:
      f.writelines(json.dumps(row) + "\n" for row in rows)


def importable(module: str) -> bool:
  """Whether an optional benchmark package imports; prints why a row is skipped when not."""
  try:
    __import__(module)
  except ImportError as e:
    print(f"{module}: row skipped, `import {module}` failed ({e}); see the benchmark's optional environment")
    return False
  return True
