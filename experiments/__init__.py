"""Studies' command-line scripts: `python -m experiments.<script>`.

Started that way with ``QCNN_JAX_HUGE_PAGES=1``, the process first re-executes itself with huge
pages for glibc's malloc (`qcnn_jax.hugepages`), before any heavy import.
"""

from qcnn_jax import hugepages

if hugepages.started_as_module(__name__):
  hugepages.use_huge_pages()
