"""Studies' command-line scripts: `python -m experiments.<script>`.

Started that way, the process first re-executes itself once with the glibc malloc setting
``$QCNN_JAX_MALLOC`` asks for (`qcnn_jax.malloc`; by default none), before any heavy import.
"""

import sys

from qcnn_jax import malloc

if malloc.started_as_module(__name__):
  try:
    malloc.configure()
  except malloc.UnknownSetting as e:
    sys.exit(f"error: {e}")
