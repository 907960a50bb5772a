r"""The README's speed sentences, written from the committed benchmark records.

  python -m experiments.benchmarks.speed            # rewrite results/benchmarks/speed.md
  python -m experiments.benchmarks.speed --check    # exit 1 when speed.md differs from its records

Sources (JSON lines, see each benchmark's docstring):
  * ``QCNN_RECORD`` (``experiments.benchmarks.qcnn``, processes with opposite row orders): the
    ``project`` rows' forward and forward+gradient speedups over TensorCircuit-NG and, where the process
    also ran it, over plain PennyLane, as the range over processes per width;
  * ``RESNET_RECORD`` (``experiments.benchmarks.conv_impl``: the Flax train step with XLA's and with
    oneDNN's convolutions and torchvision's, steps interleaved in one process; rows carry ``process``
    where the record holds several): each Flax row's ``vs_torchvision`` (torchvision's median step over
    the row's) per (convolutions, size, batch), as the range over processes;
  * ``MALLOC_RECORD`` (``experiments.benchmarks.malloc``: one process per row and glibc malloc
    setting): its table.
"""

import collections
import json
import sys

from absl import app, flags

from qcnn_jax import malloc

QCNN_RECORD = "results/benchmarks/qcnn_interleaved_vs_tensorcircuit_cpu.json"
RESNET_RECORD = "results/benchmarks/conv_impl_cpu.json"
MALLOC_RECORD = "results/benchmarks/malloc_cpu.json"
OUT = "results/benchmarks/speed.md"

# allow_override: experiments.readme_tables defines the same flag, and tests import both in one process.
flags.DEFINE_bool("check", False, "Only check: exit 1 when the file differs from what the records give.",
                  allow_override=True)
FLAGS = flags.FLAGS


def read_rows(path: str) -> list[dict]:
  """The rows of a JSON-lines benchmark record."""
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def qcnn_ranges(rows: list[dict]) -> dict[int, dict[str, tuple[float, float]]]:
  """n_qubits -> {"fwd_tensorcircuit", "grad_tensorcircuit", "fwd_plain", "grad_plain"} -> (min, max)
  over processes of the ``project`` rows' speedups (keys present only where measured)."""
  seen = collections.defaultdict(lambda: collections.defaultdict(list))
  for row in rows:
    if row["impl"] != "project":
      continue
    for kind in ("fwd", "grad"):
      for ref in ("tensorcircuit", "plain"):
        if f"{kind}_speedup_vs_{ref}" in row:
          seen[row["n_qubits"]][f"{kind}_{ref}"].append(row[f"{kind}_speedup_vs_{ref}"])
  return {n: {k: (min(v), max(v)) for k, v in kinds.items()} for n, kinds in sorted(seen.items())}


def resnet_ratios(rows: list[dict]) -> dict[str, dict[tuple[int, int], tuple[float, float]]]:
  """conv_impl -> (image size, batch) -> (min, max) over processes of the Flax rows' speed relative
  to torchvision's beside them (``vs_torchvision``)."""
  out = collections.defaultdict(lambda: collections.defaultdict(list))
  for row in rows:
    if "vs_torchvision" in row and not row["impl"].startswith("torchvision"):
      out[row["impl"]][(row["image_size"], row["batch"])].append(row["vs_torchvision"])
  return {impl: {cell: (min(v), max(v)) for cell, v in sorted(ratios.items())} for impl, ratios in out.items()}


def _span(lo_hi: tuple[float, float]) -> str:
  """"1.13–1.33×" (two decimals below 10, none above), or one value when both round alike."""
  lo, hi = (f"{v:.2f}" if v < 10 else f"{v:.0f}" for v in lo_hi)
  return f"{lo}×" if lo == hi else f"{lo}–{hi}×"


def sentences(qcnn_rows: list[dict], resnet_rows: list[dict]) -> str:
  """The speed paragraph (one line per sentence) from the two records' rows."""
  ranges, ratios = qcnn_ranges(qcnn_rows), resnet_ratios(resnet_rows)
  widths = ", ".join(str(n) for n in ranges)
  out = [f"Against TensorCircuit-NG the QCNN engine runs {', '.join(_span(r['fwd_tensorcircuit']) for r in ranges.values())} "
         f"in the forward pass and {', '.join(_span(r['grad_tensorcircuit']) for r in ranges.values())} with the "
         f"gradient at {widths} qubits (batch 128, the range over two processes with opposite row orders)."]
  plain = {n: r for n, r in ranges.items() if "grad_plain" in r}
  if plain:
    out.append("Against plain PennyLane (default.qubit, backprop) it runs " + ", ".join(
        f"{_span(r['fwd_plain'])} / {_span(r['grad_plain'])} at {n} qubits" for n, r in plain.items())
        + " (forward / with the gradient).")
  impls = {"xla": "XLA's convolutions", "onednn": 'oneDNN\'s (conv_impl "onednn")'}
  cases = next(iter(ratios.values()), {})
  where = ", ".join(f"{size} px batch {batch}" for size, batch in cases)
  processes = len({row.get("process", 1) for row in resnet_rows})
  count = {2: "two", 3: "three"}.get(processes, str(processes))
  over = f"; the range over {count} processes with opposite cell orders" if processes > 1 else ""
  out.append("The Flax ResNet-50 train step runs at " + " and ".join(
      f"{', '.join(_span(r) for r in ratios[impl].values())} torchvision's speed with {impls[impl]}"
      for impl in impls if impl in ratios) + f" ({where}; median steps interleaved in one process{over}"
      + _malloc_clause(resnet_rows) + ").")
  return "\n".join(out)


def malloc_setting(row: dict) -> str:
  """The row's glibc malloc setting (`qcnn_jax.malloc`); rows recorded before the field: "huge" or "system"."""
  return row.get("malloc") or ("huge" if row.get("huge_pages") else "system")


def _malloc_clause(rows: list[dict]) -> str:
  settings = sorted({malloc_setting(r) for r in rows})
  return f"; {', '.join(f'`{malloc.ENV}={s}`' for s in settings)}" if settings != ["system"] else ""


IMPL_NAMES = {"project": "`project`", "project_v1": "`project_v1`", "tensorcircuit": "TensorCircuit-NG",
              "pennylane_plain": "PennyLane (plain)"}


def qcnn_table(rows: list[dict]) -> str:
  """Markdown table of the QCNN record: per width and row, each process's samples/s, speedups over
  TensorCircuit-NG, XLA's gradient memory and cold compile time, processes in record order (" / ")."""
  cells = collections.defaultdict(list)
  for row in rows:
    cells[(row["n_qubits"], row["impl"])].append(row)
  lines = ["| n | row | fwd samples/s | fwd+grad samples/s | vs TC fwd | vs TC fwd+grad | grad memory | compile cold |",
           "|---|---|---|---|---|---|---|---|"]
  for (n, impl), runs in sorted(cells.items(), key=lambda item: (item[0][0], list(IMPL_NAMES).index(item[0][1]))):
    join = lambda fmt, key: " / ".join(fmt.format(r[key]) for r in runs)
    lines.append(f"| {n} | {IMPL_NAMES[impl]} | {join('{:,.0f}', 'fwd_samples_per_s')} | "
                 f"{join('{:,.0f}', 'grad_samples_per_s')} | {join('{:.2f}×', 'fwd_speedup_vs_tensorcircuit')} | "
                 f"{join('{:.2f}×', 'grad_speedup_vs_tensorcircuit')} | {runs[0]['grad_peak_bytes'] / 2**20:.1f} MiB | "
                 f"{join('{:.1f} s', 'compile_s')} |")
  return "\n".join(lines)


def resnet_table(rows: list[dict]) -> str:
  """Markdown table of the ResNet record: per (size, batch), process and row, median and fastest step,
  images/s, the ratio to torchvision measured beside it and the float32 gradient's distance to float64."""
  lines = ["| size | batch | process | row | median step | fastest step | images/s | vs torchvision | gradient vs float64 |",
           "|---|---|---|---|---|---|---|---|---|"]
  for row in sorted(rows, key=lambda r: (r["image_size"], r["batch"], r.get("process", 1))):
    grad = f"{row['grad_vs_float64']:.4f}" if row.get("grad_vs_float64") is not None else "–"
    lines.append(f"| {row['image_size']} px | {row['batch']} | {row.get('process', 1)} | {row['impl']} | "
                 f"{row['step_s_median']:.3f} s | "
                 f"{row['step_s_min']:.3f} s | {row['images_per_s']:.1f} | {row['vs_torchvision']:.2f}× | {grad} |")
  return "\n".join(lines)


def malloc_table(rows: list[dict]) -> str:
  """Markdown table of the malloc record: one line per process in record order."""
  lines = ["| convolutions | size | batch | malloc | median step | fastest step | page faults per step | peak memory |",
           "|---|---|---|---|---|---|---|---|"]
  for row in rows:
    lines.append(f"| {row['impl']} | {row['image_size']} px | {row['batch']} | {row['malloc']} | "
                 f"{row['step_s_median']:.3f} s | {row['step_s_min']:.3f} s | {row['minor_faults_per_step']:,.0f} | "
                 f"{row['max_rss_gib']:.2f} GiB |")
  return "\n".join(lines)


def markdown(qcnn_rows: list[dict], resnet_rows: list[dict], malloc_rows: list[dict]) -> str:
  """speed.md: where the numbers come from, the paragraph, the QCNN, ResNet and malloc tables."""
  return (f"# Speed\n\n<!-- written by experiments.benchmarks.speed from {QCNN_RECORD}, {RESNET_RECORD} and "
          f"{MALLOC_RECORD} -->\n\n"
          "## Speed on a 2-core CPU\n\n" + sentences(qcnn_rows, resnet_rows) + "\n\n"
          f"## QCNN engine against TensorCircuit-NG\n\n{qcnn_rows[0].get('window', '')}\n\n" + qcnn_table(qcnn_rows) + "\n\n"
          f"## ResNet-50 train step beside torchvision\n\n{resnet_rows[0].get('window', '')}\n\n"
          + resnet_table(resnet_rows) + "\n\n"
          f"## glibc malloc settings for the train step\n\n{malloc_rows[0].get('window', '')}\n\n"
          + malloc_table(malloc_rows) + "\n")


def main(argv):
  del argv
  text = markdown(read_rows(QCNN_RECORD), read_rows(RESNET_RECORD), read_rows(MALLOC_RECORD))
  if FLAGS.check:
    with open(OUT, encoding="utf-8") as f:
      if f.read() != text:
        sys.exit(f"{OUT} differs from its records: run python -m experiments.benchmarks.speed")
    return
  with open(OUT, "w", encoding="utf-8") as f:
    f.write(text)
  print(f"wrote {OUT}")


if __name__ == "__main__":
  app.run(main)
