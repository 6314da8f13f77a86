"""photodedup: find duplicate and near-duplicate photos, with fast CLIP embeddings."""

__version__ = "0.1.0"
