"""The HTTP inference service (``photodedup serve``): FastAPI app, dynamic batcher, limits, metrics.

Depends on the backends and the preprocessing, never on the catalog.
"""

from photodedup.service.app import ServiceSettings, create_app
from photodedup.service.limits import Limits

__all__ = ["Limits", "ServiceSettings", "create_app"]
