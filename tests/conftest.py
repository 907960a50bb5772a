"""Shared pytest set-up: persistent XLA compilation cache and the shared data folder."""

import os
import pathlib

# Four virtual CPU devices, so data-parallel code is tested for real (must precede jax import), and
# LLVM's backend optimisations off: the suite's time is mostly XLA compiling tiny ResNet-50s (29 s for
# one train step, 18 s at level 0, which then runs 0.25 s instead of 0.16 s). Command-level tests'
# subprocesses inherit both flags.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0").strip()

import pytest  # pylint: disable=g-import-not-at-top

from qcnn_jax import runtime  # pylint: disable=g-import-not-at-top

runtime.enable_compilation_cache()

# Read-only official data beside the project root (absent on most machines: tests skip).
SHARED_DATA = pathlib.Path(
    os.environ.get("QCNN_JAX_SHARED_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """Path of ../shared/data; skips the test when it is absent."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"shared data folder {SHARED_DATA} is absent")
  return SHARED_DATA


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
  """(workdir, summary) of a tiny run of README command 1's config: the embedded BreastMNIST, the
  default hybrid (its 4-qubit circuit in the prediction path), a width-4 ResNet-50, 1 epoch (shared by
  export, robustness and device evaluation)."""
  from experiments.configs import quick  # pylint: disable=g-import-not-at-top
  from qcnn_jax.training import train  # pylint: disable=g-import-not-at-top
  tmp = tmp_path_factory.mktemp("quick_run")
  config = quick.get_config()
  config.model_options.width = 4
  config.model_options.n_qubits = 4
  config.num_epochs = 1
  config.tfds_dir = str(tmp / "tfds")
  config.progress = False
  summary = train.train_and_evaluate(config, str(tmp / "run"))
  return tmp / "run", summary
