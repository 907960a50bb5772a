"""The interleaved statevector engine's compiled program: what each block costs in passes over the state."""

import collections
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qcnn_jax.models.quantum import QCNNSpec, interleaved, param_shapes, qcnn_apply

pytestmark = pytest.mark.filterwarnings("ignore:Explicitly requested dtype complex128:UserWarning")

_INSTRUCTION = re.compile(r"\s*(?:ROOT )?%\S+ = (f32|c64)\[([\d,]*)\]\S* ([\w-]+)\((.*)")
_ITEM_BYTES = {"f32": 4, "c64": 8}


def _computations(text: str) -> dict[str, list[str]]:
  """Instruction lines of each computation of a compiled HLO module, by name."""
  computations, name = {}, None
  for line in text.splitlines():
    head = re.match(r"(?:ENTRY )?%(\S+) .*\{$", line)
    if head:
      name = head.group(1)
      computations[name] = []
    elif name:
      computations[name].append(line)
  return computations


def state_passes(text: str, state_bytes: int) -> collections.Counter:
  """Counter of (phase, kind) over the instructions of a compiled program that run (not inside a
  fusion) and write at least ``state_bytes``: phase "bwd" for JAX's transposed (backward) ops, else
  "fwd"; kind "dot" (a dot, or a YNNPACK fusion), "transpose" (a transpose or copy, also fused),
  "concatenate", or "elementwise" (any other pass)."""
  computations = _computations(text)
  called = set(re.findall(r"(?:calls|to_apply)=%([\w.-]+)", text))
  passes = collections.Counter()
  for name, lines in computations.items():
    for line in lines if name not in called else ():
      match = _INSTRUCTION.match(line)
      if not match or _ITEM_BYTES[match.group(1)] * math.prod(int(d) for d in match.group(2).split(",") if d) < state_bytes:
        continue
      op, rest = match.group(3), match.group(4)
      body = "\n".join(computations[re.search(r"calls=%([\w.-]+)", rest).group(1)]) if op == "fusion" else f" {op}("
      kinds = {"transpose" if k == "copy" else k for k in ("dot", "transpose", "copy", "concatenate") if f" {k}(" in body}
      kinds |= {"dot"} if "__ynn" in rest else set()
      for kind in kinds or {"elementwise"}:
        passes["bwd" if "transpose(jvp" in rest else "fwd", kind] += 1
  return passes


def _gradient_program(spec: QCNNSpec, batch: int, execution: str) -> str:
  """Compiled HLO text of the value and gradient of the summed outputs w.r.t. the circuit angles."""
  params = {name: jnp.full(shape, 0.3) for name, shape in param_shapes(spec).items()}
  features = jnp.full((batch, spec.n_features), 0.7)
  loss = lambda p, x: jnp.sum(qcnn_apply(spec, p, x, execution=execution))
  return jax.jit(jax.value_and_grad(loss)).lower(params, features).compile().as_text()


def _n_blocks(spec: QCNNSpec) -> int:
  """Blocks the interleaved engine applies to the state (fused gates and the dense suffix)."""
  steps = []
  spy = lambda s, state, mats: steps.extend(s) or state
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(interleaved, "evolve", spy)
    jax.eval_shape(lambda: qcnn_apply(spec, {n: jnp.zeros(s) for n, s in param_shapes(spec).items()},
                                      jnp.zeros((1, spec.n_features)), execution="statevector"))
  return len(steps)


@pytest.mark.parametrize("execution,fails", [("statevector", False), ("statevector_v1", True)])
def test_each_block_is_one_transpose_and_one_matmul(execution, fails):
  """Forward: at most one transpose and one matmul per block over the state; backward: the same per
  state (ψ and λ), and nothing state-sized concatenated. The previous engine fails it (its stacked
  (ψ, μ) update concatenates halves of the state)."""
  spec, batch = QCNNSpec(10, "su4"), 8
  passes = state_passes(_gradient_program(spec, batch, execution), batch * 2**spec.n_qubits * 8)
  blocks = _n_blocks(spec)
  within = (passes["fwd", "dot"] <= blocks and passes["fwd", "transpose"] <= blocks
            and passes["bwd", "dot"] <= 2 * blocks and passes["bwd", "transpose"] <= 2 * blocks
            and passes["bwd", "concatenate"] == 0 and passes["fwd", "dot"] >= blocks - 1)
  assert within != fails, (blocks, sorted(passes.items()))


def test_real_embedding_multiplies_like_the_complex_matrix():
  rng = np.random.default_rng(0)
  matrix = rng.normal(size=(3, 4, 4)) + 1j * rng.normal(size=(3, 4, 4))
  vector = rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4))
  interleave = lambda v: np.stack([v.real, v.imag], -1).reshape(v.shape[0], -1)
  got = np.einsum("bij,bj->bi", interleaved.real_embedding(jnp.asarray(matrix)), interleave(vector))
  np.testing.assert_allclose(got, interleave(np.einsum("bij,bj->bi", matrix, vector)), atol=1e-5)
