"""The HTTP inference service (``photodedup serve``): FastAPI app (``app.py``), dynamic batcher
(``batcher.py``), request limits and decoding (``limits.py``), Prometheus metrics (``metrics.py``).

Depends on the backends and the preprocessing, never on the catalog. Import the submodules directly;
this package imports nothing, so the batcher and limits load without FastAPI.
"""
