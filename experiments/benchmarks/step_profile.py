r"""Where a jitted train step spends its time, per XLA op: a ``jax.profiler`` trace, summed.

  python -m experiments.benchmarks.step_profile --model=resnet50 --size=28 --batch=32 --out=profile.json

Traces ``--steps`` calls of the model's train step (Adam, BCE, after two warm-up calls) and sums
the duration of every executed XLA op (thunk) on the CPU's worker threads, then labels each op with
the compiled HLO: its kind (convolution, dot, transpose, reduce or elementwise, from what its fused
computation holds), whether it belongs to the forward or the backward pass (``transpose(jvp(...))``
in its source name; "unlabelled" where XLA kept no source, e.g. some kernel-gradient convolutions),
and the layer it came from. Prints milliseconds per step by kind and the
``--top`` ops; one JSON row per op (``--out``). CPU only (GPU traces name kernels, not thunks).
"""

import collections
import glob
import gzip
import json
import os
import re
import tempfile

import jax
from absl import app, flags

from experiments import benchmarks

from qcnn_jax.models import get_model

flags.DEFINE_string("model", "resnet50", "Model to profile.")
flags.DEFINE_integer("size", 28, "Image size (px).")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("channels", 1, "Input channels.")
flags.DEFINE_integer("width", None, "Optional ResNet base width override.")
flags.DEFINE_string("dtype", None, "Compute dtype of the ResNet (e.g. bfloat16); default float32.")
flags.DEFINE_string("conv_impl", None, "ResNet convolutions: xla or onednn (resnet.CONV_IMPLS); default xla.")
flags.DEFINE_integer("steps", 3, "Traced steps.")
flags.DEFINE_integer("top", 20, "Ops listed one by one.")
flags.DEFINE_string("out", None, "JSON-lines output file (one row per op).")
FLAGS = flags.FLAGS

KINDS = ("custom-call", "convolution", "dot", "transpose", "reduce-window", "reduce", "concatenate", "copy")
_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%([\w.\-]+) = (\S+) ([\w\-]+)\(')


def hlo_ops(hlo_text: str) -> dict[str, dict]:
  """{instruction name: {"kind", "pass", "source", "shape"}} of a compiled module's HLO text."""
  bodies, current, ops = collections.defaultdict(list), None, {}
  for line in hlo_text.splitlines():
    if not line.startswith(" ") and line.rstrip().endswith("{") and "(" in line:
      current = line.split()[1 if line.startswith("ENTRY") else 0].lstrip("%")
    elif current:
      bodies[current].append(line)
  for lines in bodies.values():
    for line in lines:
      match = _INSTRUCTION.match(line)
      if not match:
        continue
      name, shape, opcode = match.groups()
      calls = re.search(r'calls=%([\w.\-]+)', line)
      body = "\n".join(bodies.get(calls.group(1), [])) if calls else f" {opcode}("
      kind = next((k for k in KINDS if f" {k}(" in body), "elementwise")
      source = re.search(r'op_name="([^"]+)"', line) or re.search(r'op_name="([^"]+)"', body)  # fusion, or inside it
      source = source.group(1) if source else ""
      pass_ = "backward" if "transpose(jvp" in source else "forward" if source else "unlabelled"
      ops[name] = {"kind": kind, "pass": pass_,
                   "source": source, "shape": shape}
  return ops


def traced_op_seconds(trace_dir: str) -> collections.Counter:
  """Seconds per op name summed over the XLA worker threads of a perfetto trace in ``trace_dir``."""
  path = glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "perfetto_trace.json.gz"))[0]
  with gzip.open(path) as f:
    events = json.load(f)["traceEvents"]
  workers = {e["tid"] for e in events if e.get("ph") == "M" and "XLAEigen" in str(e.get("args"))}
  seconds = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and e.get("tid") in workers:
      seconds[e["name"]] += e.get("dur", 0) * 1e-6
  return seconds


def profile_step() -> tuple[dict, collections.Counter]:
  """(HLO op labels, seconds per op over the traced steps) of the model's jitted train step."""
  options = {k: v for k, v in {"dtype": FLAGS.dtype, "width": FLAGS.width, "conv_impl": FLAGS.conv_impl}.items() if v}
  model = get_model(FLAGS.model, 1, **options)
  state, step, batch = benchmarks.train_step_inputs(model, FLAGS.batch, FLAGS.size, FLAGS.channels)
  compiled = step.lower(state, batch).compile()
  for _ in range(2):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    for _ in range(FLAGS.steps):
      state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    jax.profiler.stop_trace()
    return hlo_ops(compiled.as_text()), traced_op_seconds(trace_dir)


def main(argv):
  del argv
  ops, seconds = profile_step()
  per_step = {name: 1e3 * s / FLAGS.steps for name, s in seconds.items() if name in ops}
  by_kind = collections.Counter()
  for name, ms in per_step.items():
    by_kind[ops[name]["kind"], ops[name]["pass"]] += ms
  print(f"{FLAGS.model}, {FLAGS.size} px, batch {FLAGS.batch}: {sum(per_step.values()):.0f} ms of XLA ops per step "
        "(both worker threads)")
  for (kind, pass_), ms in by_kind.most_common():
    print(f"  {ms:8.1f} ms  {kind:>13} {pass_}")
  print(f"top {FLAGS.top} ops:")
  rows = []
  for name, ms in sorted(per_step.items(), key=lambda item: -item[1]):
    rows.append({"model": FLAGS.model, "image_size": FLAGS.size, "batch": FLAGS.batch, "op": name, "ms_per_step": ms,
                 **ops[name]})
    if len(rows) <= FLAGS.top:
      print(f"  {ms:8.1f} ms  {ops[name]['kind']:>13} {ops[name]['shape']:>26}  {ops[name]['source'][-70:]}")
  benchmarks.write_rows(FLAGS.out, rows)


if __name__ == "__main__":
  app.run(main)
