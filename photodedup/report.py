"""A static, self-contained HTML report of duplicate groups: thumbnails side by side, keeper marked.

Each file shows its format, dimensions (and content inside an added border), size, camera, capture
date, the evidence that joined it in words, and why it is or is not the keeper; the top says what to
run next (``photodedup review``).

Thumbnails come from the catalog's ``thumbs`` table (made at scan time; a RAW's is its embedded
preview) and are embedded as ``data:`` URIs, so the one file can be mailed, archived or opened
offline. A RAW+JPEG pair is one item: the RAW's thumbnail, both files listed.
"""

from __future__ import annotations

import base64
import html
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

from photodedup.catalog import Catalog, display
from photodedup.duplicate_groups import Group, Member, evidence_words
from photodedup.keeper import bordered, content_size, human_size
from photodedup.text import printable, private_file

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.4rem;margin:0 0 .3rem} .meta{color:#666;margin:0 0 1rem}
.warn{background:#fff3cd;border:1px solid #e0c36c;padding:.5rem .8rem;margin:.5rem 0}
.next{background:#e6eeff;border:1px solid #b9cdf7;padding:.5rem .8rem;margin:.5rem 0 1rem}
.next code{background:#fff;padding:0 .3rem;border-radius:3px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8rem;margin:0 0 1rem}
section h2{font-size:1rem;margin:0 0 .6rem} .kind{color:#555;font-weight:normal}
.row{display:flex;flex-wrap:wrap;gap:.8rem}
figure{margin:0;width:240px;border:2px solid #ddd;border-radius:4px;padding:.4rem;background:#fff}
figure.keeper{border-color:#2e7d32} figure img{width:100%;height:160px;object-fit:contain;background:#eee}
.none{height:160px;display:flex;align-items:center;justify-content:center;background:#eee;color:#888}
figcaption{font-size:12px} .badge{font-weight:bold;color:#2e7d32} .path{word-break:break-all;color:#444}
.cand{color:#b26a00;font-weight:bold} dl{display:grid;grid-template-columns:auto 1fr;gap:0 .5rem;margin:.3rem 0}
dt{color:#777} dd{margin:0} .why{color:#7a4300}
"""


def write_report(groups: Sequence[Group], out: Path | str, *, catalog: Catalog,
                 title: str = "photodedup: duplicate groups", notes: Sequence[str] = (),
                 warnings: Sequence[str] = ()) -> Path:
    """Write the report to ``out`` and return its path. Nothing in it links outside the file."""
    out = Path(out)
    suggested = [f for g in groups for m in g.members if g.suggested().get(m.file_id) == "trash" for f in m.files]
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_text(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{_text(title)}</h1>",
             f"<p class='meta'>{len(groups)} groups, {len(suggested)} files suggested for the trash "
             f"({human_size(sum(m.size or 0 for m in suggested))}) - written {time.strftime('%Y-%m-%d %H:%M')}. "
             "Suggestions only: nothing was moved or deleted.</p>"]
    parts += [f"<p class='meta'>{_text(note)}</p>" for note in notes]
    parts += [f"<div class='warn'>{_text(w)}</div>" for w in warnings]
    if groups:
        review = f"photodedup review --catalog {shlex.quote(str(catalog.path))} --open"
        parts.append("<div class='next'><strong>Next:</strong> decide in the browser with "
                     f"<code>{_text(review)}</code>, then <code>photodedup apply --dry-run</code> to see what "
                     "would move to the trash folder, <code>photodedup apply</code> to move it, and "
                     "<code>photodedup undo</code> to put it back.</div>")
    ordered = sorted(groups, key=lambda g: g.category != "duplicate")  # similar shots after the duplicates
    for g in ordered:
        if g.category != "duplicate" and (g is ordered[0] or ordered[ordered.index(g) - 1].category == "duplicate"):
            parts.append("<h2>Similar shots: one scene, other captures (not duplicates: nothing is suggested for "
                         "the trash)</h2>")
        label = "similar shots" if g.category != "duplicate" else g.kind
        parts.append(f"<section id='group-{g.id}'><h2>Group {g.id} <span class='kind'>{label}, "
                     f"{len(g.members)} files; keep: {_text(g.keeper_reason)}</span></h2><div class='row'>")
        parts += [_figure(g, m, catalog.thumb(m.file_id)) for m in g.members]
        parts.append("</div></section>")
    if not groups:
        parts.append("<p>No duplicates found.</p>")
    parts.append("</body></html>\n")
    with private_file(out, encoding="utf-8") as handle:
        handle.write(display("".join(parts)))
    return out


def _text(value) -> str:
    """Text for the page: control and bidi characters escaped as on a terminal, then markup."""
    return html.escape(printable(value))


def _figure(g: Group, m: Member, thumb: bytes | None) -> str:
    keeper = m.file_id == g.keeper
    image = (f"<img alt='' src='data:image/jpeg;base64,{base64.b64encode(thumb).decode()}'>" if thumb
             else "<div class='none'>no thumbnail</div>")
    role = "<span class='badge'>KEEP</span>" if keeper else (
        "<span class='badge'>KEEP (reference folder)</span>" if m.reference else "<span class='cand'>candidate</span>")
    width, height = content_size(m)
    dimensions = f"{m.width}x{m.height}" + (f" (content {width}x{height} inside a border)" if bordered(m) else "")
    rows = [("format", (m.format or "?") + (", grayscale" if m.grayscale else "")
             + (f", motion photo ({m.motion}: a video inside)" if m.motion else "")), ("dimensions", dimensions),
            ("size", human_size(m.size or 0)), ("camera", m.camera or "none in EXIF"),
            ("taken", (m.taken_at or "no capture date").replace("T", " ")),
            ("evidence", evidence_words(m)), ("why" if keeper else "not kept", g.keeper_reason if keeper else m.note)]
    details = "".join(f"<dt>{name}</dt><dd{' class=why' if name in ('why', 'not kept') else ''}>"
                      f"{_text(str(value or '-'))}</dd>" for name, value in rows)
    pair = "".join(f"<div class='path'>+ {_text(c.path)} ({c.format}, {human_size(c.size or 0)})</div>"
                   for c in m.companions)
    pair = f" <b>{html.escape(m.item_words)}</b>, kept or trashed together{pair}" if pair else ""
    return (f"<figure class='{'keeper' if keeper else 'candidate'}'>{image}<figcaption>{role}{pair}"
            f"<div class='path'>{_text(m.path)}</div><dl>{details}</dl></figcaption></figure>")
