"""Set-up commands: the README's two commands, CI and the declared Python versions agree."""

import configparser
import pathlib
import re
import sys

from packaging.specifiers import SpecifierSet

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
  return re.findall(r"```bash\n(.*?)\n *```", (ROOT / "README.md").read_text(), flags=re.S)[:2]


def test_set_up_commands_work_with_any_supported_python():
  """The commands name `python3`, not one minor version (the lent GPU machines run 3.12)."""
  run, test = readme_commands()
  for command in (run, test):
    assert command.strip().startswith("python3 -m venv .venv"), command
  assert test.strip() in (ROOT / ".ci" / "run").read_text()  # CI runs the README's test command verbatim
  config = configparser.ConfigParser()
  config.read(ROOT / "setup.cfg")
  supported = SpecifierSet(config["options"]["python_requires"])
  assert f"{sys.version_info.major}.{sys.version_info.minor}" in supported
  assert all(f"3.{minor}" in supported for minor in (11, 12, 13, 14)) and "3.10" not in supported
