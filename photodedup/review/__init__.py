"""``photodedup review``: a local web page to compare duplicates and decide (keep, trash, not duplicates).

``decisions`` holds the review state over the catalog; ``app`` the FastAPI app and ``serve``.
"""
