"""Device-only shim: PennyLane 0.45 calls jax.core.is_concrete, which JAX 0.11 removed (the project pins
JAX 0.10; the lent GPU's image has 0.11.2)."""
try:
  import jax.core
  if not hasattr(jax.core, "is_concrete"):
    from jax._src import core as _core
    jax.core.is_concrete = getattr(_core, "is_concrete", lambda x: not isinstance(x, _core.Tracer))
except ImportError:
  pass
