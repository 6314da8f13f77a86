"""A static, self-contained HTML report of duplicate groups: thumbnails side by side, keeper marked.

Thumbnails come from the catalog's ``thumbs`` table (made at scan time) and are embedded as
``data:`` URIs, so the one file can be mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Sequence
from pathlib import Path

from photodedup.catalog import Catalog, display
from photodedup.groups import Group
from photodedup.keeper import human_size

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.4rem;margin:0 0 .3rem} .meta{color:#666;margin:0 0 1rem}
.warn{background:#fff3cd;border:1px solid #e0c36c;padding:.5rem .8rem;margin:.5rem 0}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8rem;margin:0 0 1rem}
section h2{font-size:1rem;margin:0 0 .6rem} .kind{color:#555;font-weight:normal}
.row{display:flex;flex-wrap:wrap;gap:.8rem}
figure{margin:0;width:220px;border:2px solid #ddd;border-radius:4px;padding:.4rem;background:#fff}
figure.keeper{border-color:#2e7d32} figure img{width:100%;height:160px;object-fit:contain;background:#eee}
.none{height:160px;display:flex;align-items:center;justify-content:center;background:#eee;color:#888}
figcaption{font-size:12px;word-break:break-all} .badge{font-weight:bold;color:#2e7d32}
.cand{color:#b26a00;font-weight:bold}
"""


def write_report(groups: Sequence[Group], out: Path | str, *, catalog: Catalog,
                 title: str = "photodedup: duplicate groups", notes: Sequence[str] = (),
                 warnings: Sequence[str] = ()) -> Path:
    """Write the report to ``out`` and return its path. Nothing in it links outside the file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    removable = sum(m.size or 0 for g in groups for m in g.members if m.file_id != g.keeper)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p class='meta'>{len(groups)} groups, {sum(len(g.members) - 1 for g in groups)} candidates "
             f"({human_size(removable)}) - written {time.strftime('%Y-%m-%d %H:%M')}. "
             "Suggestions only: nothing was moved or deleted.</p>"]
    parts += [f"<p class='meta'>{html.escape(note)}</p>" for note in notes]
    parts += [f"<div class='warn'>{html.escape(w)}</div>" for w in warnings]
    for g in groups:
        parts.append(f"<section id='group-{g.id}'><h2>Group {g.id} <span class='kind'>{g.kind}, "
                     f"{len(g.members)} files; keep: {html.escape(g.keeper_reason)}</span></h2><div class='row'>")
        for m in g.members:
            keeper = m.file_id == g.keeper
            thumb = catalog.thumb(m.file_id)
            image = (f"<img alt='' src='data:image/jpeg;base64,{base64.b64encode(thumb).decode()}'>" if thumb
                     else "<div class='none'>no thumbnail</div>")
            role = "<span class='badge'>KEEP</span>" if keeper else (
                f"<span class='cand'>candidate</span> {m.evidence} {m.score:.3f}")
            parts.append(f"<figure class='{'keeper' if keeper else 'candidate'}'>{image}<figcaption>{role}<br>"
                         f"{html.escape(m.path)}<br>{m.width}x{m.height}, {human_size(m.size or 0)}"
                         "</figcaption></figure>")
        parts.append("</div></section>")
    if not groups:
        parts.append("<p>No duplicates found.</p>")
    parts.append("</body></html>\n")
    out.write_text(display("".join(parts)), encoding="utf-8")
    return out
