"""``photodedup review``: a local web page to compare duplicates and decide (keep, trash, not duplicates).

``photodedup.duplicate_groups`` holds the groups and the decisions over the catalog; ``app`` the FastAPI app
and ``serve``.
"""
