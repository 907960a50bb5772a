"""Package layout: the library (data, models, training, evaluation) imports no study, and no module
of `qcnn_jax` takes part in an import cycle."""

import ast
import importlib.util
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "qcnn_jax"
STUDIES = "qcnn_jax.studies"
MAX_FUNCTION_LINES = 50


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
  return name in MODULES


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: pathlib.Path) -> set[str]:
  """qcnn_jax modules a file imports anywhere (module level or inside functions); `from a import b`
  counts as importing a.b where that is a module, else a."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        found.add(f"{node.module}.{alias.name}" if is_module(f"{node.module}.{alias.name}") else node.module)
  return {name for name in found if name.startswith("qcnn_jax") or name.startswith("experiments")}


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_library_never_imports_a_study_or_an_experiment():
  offenders = {name: sorted(i for i in deps if i.startswith((STUDIES, "experiments")))
               for name, deps in GRAPH.items() if not name.startswith(STUDIES)}
  assert not {k: v for k, v in offenders.items() if v}


def test_no_import_cycle():
  """Depth-first search over the module graph; a back edge is a cycle, reported with its path."""
  state, stack, cycles = {}, [], []

  def visit(name):
    state[name] = "open"
    stack.append(name)
    for dep in sorted(GRAPH.get(name, ())):
      if state.get(dep) == "open":
        cycles.append(stack[stack.index(dep):] + [dep])
      elif dep in GRAPH and dep not in state:
        visit(dep)
    stack.pop()
    state[name] = "done"

  for name in sorted(GRAPH):
    if name not in state:
      visit(name)
  assert not cycles, cycles


def test_the_graph_sees_real_imports():
  """The checks above would pass on an empty graph: the graph holds edges known to exist."""
  assert "qcnn_jax.training.train" in GRAPH["qcnn_jax.training.frozen"]
  assert "qcnn_jax.training.train" in GRAPH["qcnn_jax.studies.grid"]
  assert "qcnn_jax.models.quantum.qcnn" in GRAPH["qcnn_jax.models.heads"]


def test_library_imports_without_the_studies():
  library = sorted(n for n in MODULES if not n.startswith(STUDIES) and n != "qcnn_jax")
  code = (f"import importlib, sys\nfor m in {library!r}: importlib.import_module(m)\n"
          f"print(sorted(m for m in sys.modules if m.startswith({STUDIES!r})))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
  assert out.stdout.strip() == "[]"
  assert importlib.util.find_spec(STUDIES) is not None


def test_functions_are_short_enough_to_read_at_once():
  long = []
  for name, path in MODULES.items():
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
          long.append(f"{name}.{node.name}: {length} lines")
  assert not long, long
