"""Rendering bench rows: a rich table, JSON and CSV files, PNG plots, one-line verdicts."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

from rich.table import Table

from photodedup.text import csv_cell

#: CSV/JSON columns, in order: the issue's minimum first (rows may carry more; they follow these).
ROW_FIELDS = (
    "backend", "payload", "concurrency", "batch_size", "images_per_second", "p50_ms", "p95_ms", "p99_ms",
    "errors", "bytes_per_image", "requests_per_second", "p90_ms", "max_ms", "mean_ms", "client_cpu_percent",
    "server_ms", "queue_ms", "compute_input_ms", "compute_infer_ms", "compute_output_ms", "outside_server_ms",
    "server_batch", "stable", "windows", "measured_seconds", "requests", "error", "model_id",
)

_COLUMNS = (  # (heading, key, format)
    ("backend", "backend", "{}"), ("payload", "payload", "{}"), ("conc", "concurrency", "{}"),
    ("batch", "batch_size", "{}"), ("img/s", "images_per_second", "{:.1f}"),
    ("req/s", "requests_per_second", "{:.1f}"), ("p50 ms", "p50_ms", "{:.1f}"), ("p90", "p90_ms", "{:.1f}"),
    ("p95", "p95_ms", "{:.1f}"), ("p99", "p99_ms", "{:.1f}"), ("max", "max_ms", "{:.1f}"),
    ("err", "errors", "{}"), ("bytes/img", "bytes_per_image", "{:,.0f}"), ("cpu %", "client_cpu_percent", "{:.0f}"),
    ("server ms", "server_ms", "{:.1f}"), ("queue", "queue_ms", "{:.1f}"), ("in", "compute_input_ms", "{:.1f}"),
    ("infer", "compute_infer_ms", "{:.1f}"), ("out", "compute_output_ms", "{:.1f}"),
    ("outside", "outside_server_ms", "{:.1f}"), ("srv batch", "server_batch", "{:.1f}"),
    # set by the benchmark scripts only: share of time the model computed; images/s over a baseline's
    ("model busy", "model_busy", "{:.0%}"), ("ratio", "ratio", "{:.2f}"), ("stable", "stable", "{}"),
)


def _cell(value, fmt: str) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return fmt.format(value)


def table(rows: list[dict], title: str = "photodedup bench") -> Table:
    """A rich table of ``rows``; columns without any value are left out; errors below each row."""
    columns = [c for c in _COLUMNS if any(_cell(row.get(c[1]), c[2]) != "-" for row in rows)]
    out = Table(title=title, title_justify="left")
    for heading, key, _ in columns:
        out.add_column(heading, justify="left" if key in ("backend", "payload") else "right", no_wrap=True)
    for row in rows:
        out.add_row(*(_cell(row.get(key), fmt) for _, key, fmt in columns))
    return out


def error_lines(rows: list[dict]) -> list[str]:
    """One line per configuration that had errors: what failed and how often."""
    return [f"{row['backend']} c={row['concurrency']} b={row['batch_size']}: {row['errors']} errors, "
            f"first: {row.get('error') or '?'}" for row in rows if row.get("errors")]


def serialization_table(rows: list[dict]) -> Table:
    """The serialization experiment: bytes and milliseconds per image for each payload."""
    out = Table(title="serialization (per image, no server)", title_justify="left")
    for heading in ("payload", "bytes", "vs uint8", "encode ms", "decode ms", "total ms"):
        out.add_column(heading, justify="left" if heading == "payload" else "right")
    for row in rows:
        out.add_row(row["payload"], f"{row['bytes_per_image']:,.0f}", f"{row['bytes_vs_uint8']:.2f}x",
                    f"{row['encode_ms']:.3f}", f"{row['decode_ms']:.3f}", f"{row['total_ms']:.3f}")
    return out


def ordered(row: dict) -> dict:
    """The row with ``ROW_FIELDS`` first (missing ones as None), then anything else."""
    return {**{key: row.get(key) for key in ROW_FIELDS}, **{k: v for k, v in row.items() if k not in ROW_FIELDS}}


def write_json(data, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def write_csv(rows: list[dict], path: Path) -> Path:
    """CSV with ``ROW_FIELDS`` first; empty cells for missing values."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [ordered(row) for row in rows]
    fields = list(dict.fromkeys(key for row in rows for key in row)) if rows else list(ROW_FIELDS)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else csv_cell(v) for k, v in row.items()})
    return path


def write_plots(rows: list[dict], out_dir: Path) -> list[Path]:
    """``throughput.png`` and ``latency.png`` (p50 solid, p95 dashed) against concurrency, one line
    per backend (and payload and batch size when those vary)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    series = _series(rows)
    paths = []
    for name, ylabel, keys in (("throughput", "images / s", ("images_per_second",)),
                               ("latency", "latency per request, ms (p50 solid, p95 dashed)", ("p50_ms", "p95_ms"))):
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for label, points in series.items():
            concurrency = [p["concurrency"] for p in points]
            for key, style in zip(keys, ("-", "--")[: len(keys)], strict=True):
                values = [_number(p.get(key)) for p in points]
                axes.plot(concurrency, values, style, marker="o", label=label if style == "-" else None,
                          color=None if style == "-" else axes.lines[-1].get_color())
        axes.set_xscale("log", base=2)
        ticks = sorted({row["concurrency"] for row in rows})
        axes.set_xticks(ticks, [str(tick) for tick in ticks])
        axes.minorticks_off()
        axes.set_xlabel("concurrency (requests in flight)")
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        if series:
            axes.legend(fontsize="small")
        axes.set_title(f"photodedup bench: {name}")
        figure.tight_layout()
        path = out_dir / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)
    return paths


def _series(rows: list[dict]) -> dict[str, list[dict]]:
    vary_payload = len({r["payload"] for r in rows}) > 1
    vary_batch = len({r["batch_size"] for r in rows}) > 1
    series: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        label = row["backend"] + (f" {row['payload']}" if vary_payload and row["payload"] not in row["backend"]
                                   else "") + (
            f" b={row['batch_size']}" if vary_batch else "")
        series[label].append(row)
    return {label: sorted(points, key=lambda p: p["concurrency"]) for label, points in series.items()}


def _number(value) -> float:
    return math.nan if value is None else float(value)


def verdict(rows: list[dict]) -> str:
    """One line on where one backend's time goes, from its best-throughput row."""
    if not rows:
        return "no measurements"
    name = rows[0]["backend"]
    working = [r for r in rows if r.get("requests")]
    if not working:
        return f"{name}: failed, {rows[0].get('error') or 'every request errored'}"
    best = max(working, key=lambda r: r["images_per_second"])
    head = (f"{name}: best {best['images_per_second']:.1f} img/s at concurrency {best['concurrency']}, "
            f"batch {best['batch_size']}, p50 {best['p50_ms']:.0f} ms")
    errors = sum(r.get("errors") or 0 for r in rows)
    tail = f"; {errors} errors" if errors else ""
    mean, server = best.get("mean_ms"), best.get("server_ms")
    if server is None or not mean:
        if best["payload"] == "in-process":
            return f"{head}: in-process, all time is the model's on the client CPU " \
                   f"({best.get('client_cpu_percent') or 0:.0f}% of a core){tail}"
        return f"{head}: no server-side timing, so the split is unknown{tail}"
    compute = sum(best.get(k) or 0 for k in ("compute_input_ms", "compute_infer_ms", "compute_output_ms"))
    queue = best.get("queue_ms") or 0
    outside = max(mean - server, 0)
    shares = {"compute": compute / mean, "queue": queue / mean, "outside": outside / mean}
    split = ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
    advice = {
        "compute": "model-bound: a faster model (int8, fp16, GPU) or more instances helps, not the transport",
        "queue": "queue-bound: the server is saturated at this concurrency; more instances or bigger batches",
        "outside": "transport-bound: time goes to serialisation, network and the client; send uint8 or "
                   "use gRPC, batch more per request",
    }[max(shares, key=shares.get)]
    return f"{head}; of {mean:.0f} ms a request: {split} -> {advice}{tail}"
