"""Shared pytest set-up: persistent XLA compilation cache and the shared data folder."""

import os
import pathlib

import pytest

from qcnn_jax import runtime

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
