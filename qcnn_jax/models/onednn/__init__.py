"""oneDNN's CPU convolutions inside jitted JAX programs: an optional, compiled extra.

``conv(x, kernel, stride)`` is the bias-free convolution of ``resnet.Conv`` (NHWC, HWIO, padding
k // 2 per side) run by oneDNN through XLA's FFI on CPU, forward and both gradients
(``jax.custom_vjp``); on other platforms it is ``lax.conv_general_dilated``
(``lax.platform_dependent``). XLA:CPU's own convolutions (YNNPACK) ran ResNet-50's 3x3 layers at
0.5-0.85x oneDNN's speed (docs/performance.md).

The kernels (``conv.cc``) are compiled on first use into ``$QCNN_JAX_CACHE`` (default
``~/.cache/qcnn_jax``), one library per source and jaxlib version, written atomically. They need
oneDNN's headers and library (``pip install -e ".[onednn]"``: the ``onednn-cpu-gomp`` and
``onednn-devel-cpu-gomp`` wheels, found under ``sys.prefix`` or ``$ONEDNN_ROOT``) and a C++17
compiler (``$CXX``, default ``g++``).
"""

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
from jax import lax

SOURCE = os.path.join(os.path.dirname(__file__), "conv.cc")
_TARGETS = ("Forward", "InputGrad", "KernelGrad")  # QcnnOnednnConv<name> in conv.cc
INSTALL_HINT = ('conv_impl "onednn" needs oneDNN and a C++ compiler: pip install -e ".[onednn]" (and g++, or set '
                '$CXX; $ONEDNN_ROOT for another oneDNN), or use conv_impl "xla"')


class OnednnUnavailable(RuntimeError):
  """oneDNN's kernels cannot be built or loaded here (the message names the fix)."""


def _root() -> str:
  return os.environ.get("ONEDNN_ROOT", sys.prefix)


def library_path() -> str:
  """Where the compiled kernels for this source and jaxlib version live (built or not)."""
  with open(SOURCE, "rb") as f:
    digest = hashlib.sha256(f.read() + jaxlib.__version__.encode()).hexdigest()[:16]
  cache = os.environ.get("QCNN_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "qcnn_jax"))
  return os.path.join(cache, f"libqcnn_onednn-{digest}.so")


def build() -> str:
  """Compiles ``conv.cc`` into ``library_path()`` unless it is there; returns the path.

  Raises:
    OnednnUnavailable: no compiler or no oneDNN headers, or the compiler failed (its output is in the message).
  """
  path = library_path()
  if os.path.exists(path):
    return path
  compiler, root = os.environ.get("CXX", "g++"), _root()
  if shutil.which(compiler) is None or not os.path.exists(os.path.join(root, "include", "oneapi", "dnnl", "dnnl.hpp")):
    raise OnednnUnavailable(f"{INSTALL_HINT} (compiler {compiler!r}, oneDNN looked for under {root})")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
  os.close(fd)
  lib = os.path.join(root, "lib")
  command = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC", "-w", f"-I{os.path.join(root, 'include')}",
             f"-I{jax.ffi.include_dir()}", SOURCE, f"-L{lib}", "-ldnnl", f"-Wl,-rpath,{lib}", "-o", tmp]
  done = subprocess.run(command, capture_output=True, text=True, check=False)
  if done.returncode != 0:
    os.remove(tmp)
    raise OnednnUnavailable(f"{INSTALL_HINT}; compiling {SOURCE} failed:\n{done.stderr[-2000:]}")
  os.replace(tmp, path)
  return path


@functools.cache
def register() -> None:
  """Builds (if needed) and loads the kernels, and registers them as XLA:CPU FFI targets."""
  try:
    lib = ctypes.cdll.LoadLibrary(build())
  except OSError as e:
    raise OnednnUnavailable(f"{INSTALL_HINT} (loading failed: {e})") from e
  for name in _TARGETS:
    jax.ffi.register_ffi_target(f"qcnn_onednn_conv_{name}", jax.ffi.pycapsule(getattr(lib, f"QcnnOnednnConv{name}")),
                                platform="cpu")


def available() -> bool:
  """True when the kernels build and load here."""
  try:
    register()
  except OnednnUnavailable:
    return False
  return True


def _out_size(size: int, k: int, stride: int) -> int:
  return (size + 2 * (k // 2) - k) // stride + 1


def lax_conv(x, kernel, stride: int):
  """The same convolution by ``lax.conv_general_dilated`` (XLA's kernels): (B, H, W, C) x (k, k, C, F) -> (B, H', W', F)."""
  pad = kernel.shape[0] // 2
  return lax.conv_general_dilated(x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _call(name: str, shape: tuple[int, ...], a, b, stride: int, k: int):
  out = jax.ShapeDtypeStruct(shape, jnp.float32)
  return jax.ffi.ffi_call(f"qcnn_onednn_conv_{name}", out)(a, b, stride=np.int64(stride), pad=np.int64(k // 2))


def _forward(x, kernel, stride: int):
  k = kernel.shape[0]
  shape = (x.shape[0], _out_size(x.shape[1], k, stride), _out_size(x.shape[2], k, stride), kernel.shape[3])
  return _call("Forward", shape, x, kernel, stride, kernel.shape[0])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv(x, kernel, stride: int = 1):
  """(B, H, W, C) x (k, k, C, F) float32 -> (B, H', W', F): convolution with `stride`, padded
  k // 2 per side (H' = (H + 2 (k // 2) - k) // stride + 1), by oneDNN on CPU (the kernels are
  built and registered when the default backend is the CPU)."""
  if jax.default_backend() == "cpu":
    register()
  return lax.platform_dependent(x, kernel, cpu=functools.partial(_forward, stride=stride),
                                default=functools.partial(lax_conv, stride=stride))


def _conv_fwd(x, kernel, stride):
  return conv(x, kernel, stride), (x, kernel)


def _conv_bwd(stride, residuals, g):
  x, kernel = residuals
  k = kernel.shape[0]

  def onednn(x, kernel, g):
    return (_call("InputGrad", x.shape, g, kernel, stride, k), _call("KernelGrad", kernel.shape, x, g, stride, k))

  def xla(x, kernel, g):
    return jax.vjp(functools.partial(lax_conv, stride=stride), x, kernel)[1](g)

  return lax.platform_dependent(x, kernel, g, cpu=onednn, default=xla)


conv.defvjp(_conv_fwd, _conv_bwd)
