"""Benchmarks: `python -m experiments.benchmarks.<name> --out=FILE.json` (one JSON row per line)."""

import json


def write_rows(path: str | None, rows: list[dict]) -> None:
  """Writes `rows` as JSON lines to `path` (nothing when `path` is None)."""
  if path:
    with open(path, "w") as f:
      f.writelines(json.dumps(row) + "\n" for row in rows)
