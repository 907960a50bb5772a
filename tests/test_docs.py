"""The README a newcomer reads: short, every page it points to exists, no machine paths in records, and
every command of the README and docs/ runs as written."""

import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_is_short_and_its_links_resolve():
  text = (ROOT / "README.md").read_text(encoding="utf-8")
  assert len(text.splitlines()) <= 200
  named = set(re.findall(r"`((?:docs|results)/[\w./-]+\.(?:md|png))`", text))
  named |= set(re.findall(r"\]\(((?:docs|results)/[\w./-]+)\)", text))
  assert "docs/reproducibility.md" in named and any(p.endswith(".png") for p in named)
  missing = sorted(p for p in named if not (ROOT / p).exists())
  assert not missing, missing


def test_committed_records_hold_no_machine_path():
  files = subprocess.run(["git", "ls-files", "results/*.json"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
  if not files:  # not a git checkout (an unpacked sdist): nothing committed to check
    return
  offenders = [f for f in files
               if re.search(r'": "(/work|/tmp|/home|/root|/Users|[A-Z]:\\\\)', (ROOT / f).read_text(encoding="utf-8"))]
  assert not offenders, offenders[:5]
  assert any(f.endswith("/summary.json") for f in files)  # the scan sees the records


# --- Every shell (and Python) block of the README and docs/ runs as written, with the size overrides
# below, in a copy of the checkout; a block that cannot run in CI says why in a comment above it,
# and one another test already runs names it (`<!-- run in CI by tests/test_x.py ... -->`).
PAGES = ["README.md"] + sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))
SKIPPED_PAGES = {"docs/own_data.md": "its blocks run in tests/test_own_data.py"}
EXEMPT = re.compile(r"<!-- (not run in CI: .+?|run in CI by (tests/test_\w+\.py).*?) -->")
FENCE = re.compile(r"^( *)```(bash|python)\n(.*?)^\1```", re.M | re.S)
# Steps of setting up an environment: the test runs in the one CI installed.
SET_UP = re.compile(r"^(python3 -m venv|\. \.venv/bin/activate|pip install)\b")
# Flags the test adds (replacing a flag of the same name) to the commands containing the key, to keep
# CI short: one epoch, a width-4 ResNet-50 (4 qubits), few designs, seeds and fractions.
TINY_TRAIN = ("--config.num_epochs=1", "--config.model_options.width=4")
OVERRIDES = {
    "experiments.train ": TINY_TRAIN,
    "--config.model=resnet50_qcnn --workdir=runs/breast_hybrid": ("--config.model_options.n_qubits=4",),
    "experiments.train --config=experiments/configs/quick.py --workdir=runs/quick": ("--config.model_options.n_qubits=4",),
    "experiments.grid --config=experiments/configs/grid_medmnist.py": (
        "--config.base.num_epochs=1", "--config.base.model_options.width=4", "--models=resnet50",
        "--seeds=0", "--datasets=breastmnist"),
    "experiments.train_heads": ("--designs=inpath_pi,linear", "--config.seeds=0,1", "--config.lr_search.seeds=0",
                                "--config.lr_search.block=1e-2", "--config.lr_search.head=1e-3",
                                "--config.base.num_epochs=5"),
    "experiments.data_efficiency": ("--config.designs=inpath_pi,linear", "--config.fractions=0.5",
                                    "--config.study.seeds=0,1", "--config.study.lr_search.block=1e-2",
                                    "--config.study.lr_search.head=1e-3", "--config.study.base.num_epochs=5",
                                    "--config.comparisons=((\"inpath_pi\",\"linear\"),)"),
}


# The commands run on one CPU device (conftest gives the suite four virtual ones): a third less compiling.
ONE_DEVICE = dict(os.environ, XLA_FLAGS=re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                                               os.environ.get("XLA_FLAGS", "")).strip())


def doc_blocks(page: str) -> list[tuple[int, str, str, tuple | None]]:
  """(line, language, text, exemption) of each fenced bash/python block of a page; the exemption,
  from the comment above the block, is (reason, None) for a block not run in CI, (text, test file)
  for one a named test runs, None otherwise."""
  text = (ROOT / page).read_text(encoding="utf-8")
  found = []
  for match in FENCE.finditer(text):
    before = text[:match.start()].rstrip().splitlines()[-1:] or [""]
    exempt = EXEMPT.search(before[0])
    body = "\n".join(line[len(match.group(1)):] for line in match.group(3).splitlines())
    found.append((text.count("\n", 0, match.start()) + 1, match.group(2), body, exempt and exempt.groups()))
  return found


def shell_commands(block: str) -> list[str]:
  """The commands of a bash block: continuation lines joined, comments and set-up steps dropped,
  `&&` chains split."""
  joined = re.sub(r"\\\n\s*", " ", block)
  commands = []
  for line in joined.splitlines():
    line = re.sub(r"(^|\s)#.*$", "", line).strip()
    commands += [" ".join(c.split()) for c in line.split("&&") if c.strip() and not SET_UP.match(c.strip())]
  return commands


def with_overrides(command: str) -> str:
  """`command` with the `OVERRIDES` of every key it contains (a flag given twice keeps the test's);
  a command that trains nothing (`--only_report`) as written."""
  for key, flags in OVERRIDES.items() if "--only_report" not in command else ():
    if key in command + " ":
      for flag in flags:
        name = flag.split("=")[0]
        command = re.sub(rf"\s{re.escape(name)}(=\S+)?(?=\s|$)", "", command) + f" '{flag}'"
  return command


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> pathlib.Path:
  """A copy of the checkout's files (tracked and untracked, not ignored ones) with its own git index,
  beside a link to ../shared when the checkout has one."""
  base = tmp_path_factory.mktemp("docs")
  listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                          check=True).stdout.decode().split("\0")
  copy = base / "main"
  for name in filter(None, listed):
    if (ROOT / name).is_file():
      (copy / name).parent.mkdir(parents=True, exist_ok=True)
      shutil.copy2(ROOT / name, copy / name)
  if (ROOT.parent / "shared").is_dir():
    (base / "shared").symlink_to(ROOT.parent / "shared")
  tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
  subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
  subprocess.run(["git", "update-index", "--add", "-z", "--stdin"], cwd=copy, input=tracked, check=True)
  return copy


def test_every_doc_block_runs_or_says_why_not(checkout):
  ran, exempt = set(), []
  for page in PAGES:
    if page in SKIPPED_PAGES:
      continue
    for line, language, text, reason in doc_blocks(page):
      where = f"{page}:{line}"
      if reason:  # not run, with its reason; or run by the named test, which must run each of its commands
        exempt.append(where)
        covering = (ROOT / reason[1]).read_text(encoding="utf-8") if reason[1] else ""
        missing = [c for c in shell_commands(text) if reason[1] and f'"{c.split()[2]}"' not in covering]
        assert not missing, f"{where}: {reason[1]} runs no {missing}"
        continue
      steps = [f"python {checkout / '.doc_block.py'}"] if language == "python" else shell_commands(text)
      if language == "python":
        (checkout / ".doc_block.py").write_text(text, encoding="utf-8")
      for command in steps:
        key = command if language == "bash" else text
        if key in ran:  # the same command again (a page repeating another's): it ran above
          continue
        ran.add(key)
        start = time.perf_counter()
        result = subprocess.run(with_overrides(command), shell=True, executable="/bin/bash", cwd=checkout,
                                capture_output=True, text=True, timeout=900, env=ONE_DEVICE)
        print(f"{time.perf_counter() - start:6.1f} s  {where}: {command[:100]}")  # shown with -s
        assert result.returncode == 0, f"{where}: `{command}` exited {result.returncode}:\n{result.stderr[-3000:]}"
  unused = [key for key in OVERRIDES if not any(key in c + " " for c in ran)]
  assert not unused, f"overrides for commands no page has any more: {unused}"
  assert ran and len(exempt) < len(ran), (len(ran), exempt)


# --- docs/troubleshooting.md's table: every row is triggered here (a command, run from the checkout
# and writing only under a temporary folder) or by the named test, and its message and status are
# the real ones.
QUICK = "python -m experiments.train --config=experiments/configs/quick.py --workdir={tmp}/run"
TRIGGERS = {
    "a misspelt config key": f"{QUICK} --config.num_epoch=1",
    "a bad flag value": "python -m experiments.evaluate --workdir={tmp} --split=tst",
    "a workdir that does not exist": "python -m experiments.evaluate --workdir=runs/nope",
    "typo in a config value": f"{QUICK} --config.dataset=breastmnst",
    "a 3D MedMNIST set": f"{QUICK} --config.dataset=organmnist3d",
    "a circuit too large for memory": f"{QUICK} --config.model_options.n_qubits=34",
    "workdir holding a run of another config": "tests/test_train.py::test_other_config_in_workdir_is_refused_unless_overwrite",
    "workdir of a start that never finished": "tests/test_checkpointing.py::test_prepare_workdir_without_checkpoint_is_not_a_run_yet",
    "data file missing": f"{QUICK} --config.dataset=dermamnist --config.allow_download=false --config.tfds_dir={{tmp}}/tfds",
    "corrupt or truncated data file": ("mkdir {tmp}/bad && echo x > {tmp}/bad/pneumoniamnist.npz && "
                                       f"{QUICK} --config.dataset=pneumoniamnist --config.data_dir={{tmp}}/bad"),
    "partial Medical MNIST": "tests/test_data.py::test_medical_mnist_partial_source_is_refused",
    "a truncated Medical MNIST JPEG": "tests/test_data.py::test_medical_mnist_truncated_jpeg_names_its_path",
    "Medical MNIST source changed": "tests/test_data.py::test_medical_mnist_changed_source_is_prepared_again",
    "non-finite loss": "tests/test_train.py::test_nan_guard_stops_and_keeps_last_good_checkpoint",
    "a validation split with one class": "tests/test_train.py::test_validation_auc_never_finite_reports_the_latest_checkpoint",
    "a split scheme without validation": "tests/test_train.py::test_split_without_validation_reports_its_last_epoch_not_a_val_auc",
    "`evaluate` / `extract_features` on a folder": "python -m experiments.evaluate --workdir={tmp}",
    "a head study without any feature file": ("python -m experiments.train_heads --config=experiments/configs/heads_fair.py "
                                              "--workdir={tmp}/heads --config.features.breastmnist={tmp}/no.npz "
                                              "--datasets=breastmnist"),
    "a report or records over committed files": ("python -m experiments.train_heads --only_report --workdir={tmp}/heads "
                                                 "--config=experiments/configs/heads_fair.py --out=results/frozen_heads_fair"),
    "a grid run that fails": "tests/test_grid.py::test_report_aggregates_seeds_lists_pending_and_failed_runs_and_joins_published",
}


def troubleshooting_rows() -> list[dict[str, str]]:
  """The rows of the first table of docs/troubleshooting.md: input, message, status, kept."""
  lines = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8").splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith("| input |"))
  rows = []
  for line in lines[start + 2:]:
    if not line.startswith("|"):
      break
    cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
    rows.append(dict(zip(("input", "message", "status", "kept"), cells)))
  return rows


def message_fragments(message: str) -> list[str]:
  """The fixed parts of a row's first quoted message, between its placeholders (`...`, `<x>`, N, M)."""
  quoted = re.search(r"`([^`]+)`", message)
  parts = re.split(r"\.\.\.|<[^>]+>|\b[NM]\b", quoted.group(1)) if quoted else []
  return [p.strip() for p in parts if len(p.strip()) > 2]


def test_every_troubleshooting_row_has_a_trigger():
  rows = [r["input"] for r in troubleshooting_rows()]
  untriggered = [r for r in rows if not any(r.startswith(key) for key in TRIGGERS)]
  assert not untriggered and len(rows) == len(TRIGGERS), (untriggered, len(rows), len(TRIGGERS))


@pytest.mark.parametrize("row", troubleshooting_rows(), ids=lambda r: r["input"][:40])
def test_troubleshooting_row_matches_what_happens(row, tmp_path):
  trigger = next(v for k, v in TRIGGERS.items() if row["input"].startswith(k))
  if trigger.startswith("tests/"):  # a test triggers it; its wording is the library's
    path, name = trigger.split("::")
    assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), trigger
    sources = re.sub(r"\"\s*\n\s*[fr]?\"", "", "".join(p.read_text(encoding="utf-8") for d in ("qcnn_jax", "experiments")
                                                        for p in (ROOT / d).rglob("*.py")))  # strings joined
    missing = [f for f in message_fragments(row["message"]) if f.removeprefix("error: ") not in sources]
    assert not missing, missing
    return
  result = subprocess.run(trigger.format(tmp=tmp_path), shell=True, executable="/bin/bash", cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
  errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert result.returncode == int(row["status"]) and len(errors) == 1 and "Traceback" not in result.stderr, (
      result.returncode, result.stderr[-2000:])
  position = 0
  for fragment in message_fragments(row["message"]):
    position = errors[0].find(fragment, position)
    assert position >= 0, (fragment, errors[0])
