"""Grouping from Parquet at scale: planted near-duplicate embeddings written as a photodedup export, then
``group_parquet`` (exact + semantic evidence, complete link), with time and peak memory.

    PYTHONPATH=. .venv/bin/python benchmarks/parquet_scale.py --n 1000000 --dim 128 --out /tmp/planted-1m.parquet
    PYTHONPATH=. .venv/bin/python benchmarks/parquet_scale.py --n 10000000 --dim 128 --memory-gb 2 \
        --out /tmp/planted-10m.parquet

Rows look like an export (id, path, md5, phash, size, width, height, embedding). Each chunk of 100,000 rows
holds 90% random unit vectors and 10% noisy copies of random rows of the chunk (cosine ~0.995). Vectors are
generated and written a chunk at a time, so writing needs little memory; ``--keep`` keeps the file.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import resource
import time
from pathlib import Path

import numpy as np

CHUNK = 100_000


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def write_planted(out: Path, n: int, dim: int, seed: int = 0, noise: float | None = None) -> np.ndarray:
    """Write the file; return the planted pairs as codes ``i * n + j`` (sorted)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from photodedup.parquet import ROW_GROUP

    # noise per component so that cosine(source, copy) ~ 0.995 whatever the dimension
    noise = noise if noise is not None else 0.1 / np.sqrt(dim)
    rng = np.random.default_rng(seed)
    schema = pa.schema([("id", pa.int64()), ("path", pa.string()), ("status", pa.string()), ("md5", pa.string()),
                        ("phash", pa.int64()), ("size", pa.int64()), ("width", pa.int64()), ("height", pa.int64()),
                        ("embedding", pa.list_(pa.float32(), dim))],
                       metadata={b"photodedup.model": b"planted", b"photodedup.model_is_random": b"0"})
    truth = []
    with pq.ParquetWriter(out, schema) as writer:
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            vectors = rng.standard_normal((m, dim), dtype=np.float32)
            copies = m // 10
            sources = rng.choice(m - copies, size=copies, replace=False)
            vectors[m - copies:] = vectors[sources] + noise * rng.standard_normal((copies, dim), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            truth.append((start + sources) * n + (start + m - copies + np.arange(copies)))
            ids = np.arange(start + 1, start + m + 1)
            table = pa.Table.from_arrays([
                pa.array(ids), pa.array([f"/photos/{i:09d}.jpg" for i in ids]), pa.array(["ok"] * m),
                pa.array([hashlib.md5(int(i).to_bytes(8, "little")).hexdigest() for i in ids]),
                pa.array(rng.integers(-(2**63), 2**63 - 1, size=m, dtype=np.int64)),
                pa.array(rng.integers(1_000_000, 5_000_000, size=m)), pa.array(np.full(m, 4000)),
                pa.array(np.full(m, 3000)),
                pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)], schema=schema)
            writer.write_table(table, row_group_size=ROW_GROUP)
    return np.sort(np.concatenate(truth))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--memory-gb", type=float, default=2.0)
    parser.add_argument("--cosine", type=float, default=0.99)
    parser.add_argument("--out", type=Path, default=Path("/tmp/planted.parquet"))
    parser.add_argument("--keep", action="store_true", help="keep the Parquet file afterwards")
    args = parser.parse_args()

    from photodedup.config import GB
    from photodedup.group import GroupSettings
    from photodedup.parquet import group_parquet

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    truth = write_planted(args.out, args.n, args.dim)
    print(f"n={args.n} dim={args.dim}: {args.out.stat().st_size / 1e9:.2f} GB of Parquet, {len(truth)} planted "
          f"pairs, ready in {time.perf_counter() - started:.1f}s; the vectors would take "
          f"{args.n * args.dim * 4 / 1e9:.2f} GB in memory; budget {args.memory_gb} GB; "
          f"peak RSS so far {peak_gb():.2f} GB", flush=True)

    started = time.perf_counter()
    result = group_parquet(args.out, params=GroupSettings(evidence=("exact", "semantic"), cosine=args.cosine),
                           memory_bytes=int(args.memory_gb * GB))
    total_s = time.perf_counter() - started
    label = np.full(args.n, -1, dtype=np.int64)
    for number, g in enumerate(result.groups):
        label[[m.file_id - 1 for m in g.members]] = number
    i, j = truth // args.n, truth % args.n
    recall = float(((label[i] >= 0) & (label[i] == label[j])).mean())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"group_parquet (exact + semantic, complete link, keepers): {total_s:.1f}s, {len(result.groups)} groups, "
          f"edges {result.edges}, planted pairs grouped together {recall:.4f}, peak RSS {peak_gb():.2f} GB; "
          f"CPU time of the whole process {usage.ru_utime + usage.ru_stime:.0f}s", flush=True)
    if not args.keep:
        args.out.unlink()


if __name__ == "__main__":
    main()
