"""The review page's endpoints, as routers: the page and its static files; reading (groups, labels,
photos by catalog id: no path parameter exists); deciding and acting (keep, trash, not duplicates,
apply, undo). What they share (the catalog, the trash folder, the token) is ``ReviewState``, on
``app.state.review``; the security layer in front of them is ``security.py``."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from PIL import Image

from photodedup import apply as apply_mod
from photodedup import difference, duplicate_groups, formats
from photodedup.catalog import Catalog, display
from photodedup.duplicate_groups import decisions
from photodedup.duplicate_groups.compare import differences
from photodedup.duplicate_groups.labels import labels as label_data
from photodedup.errors import BadInputError
from photodedup.review import files

STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
_THUMB = 320


@dataclass
class ReviewState:
    catalog: Path
    token: str
    trash_dir: Path | None = None

    def open_catalog(self) -> Catalog:
        return Catalog(self.catalog, create=False)


def review_state(request: Request) -> ReviewState:
    return request.app.state.review


page_router = APIRouter()
read_router = APIRouter()
decide_router = APIRouter()


# -- page and static files -------------------------------------------------------------------------
@page_router.get("/", response_class=HTMLResponse)
def index(state: ReviewState = Depends(review_state)) -> HTMLResponse:
    page = (STATIC / "index.html").read_text().replace("{{token}}", state.token)
    return HTMLResponse(page)


@page_router.get("/static/{name}")
def static(name: str) -> FileResponse:
    path = STATIC / name
    if name not in {p.name for p in STATIC.iterdir()} or path.suffix not in _STATIC_TYPES:
        raise HTTPException(404, "not found")
    return FileResponse(path, media_type=_STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


# -- reading ---------------------------------------------------------------------------------------
@read_router.get("/api/overview")
def overview(kind: str | None = None, sort: str = "size", state: ReviewState = Depends(review_state)) -> dict:
    with state.open_catalog() as cat:
        return duplicate_groups.overview(cat, kind=kind or None, sort=sort)


@read_router.get("/api/groups/{group_id}")
def group(group_id: int, state: ReviewState = Depends(review_state)) -> dict:
    with state.open_catalog() as cat:
        return duplicate_groups.find_group(cat, group_id).detail()


@read_router.get("/api/labels")
def labels(root: str | None = Query(None), state: ReviewState = Depends(review_state)) -> JSONResponse:
    with state.open_catalog() as cat:
        data = label_data(cat, root=Path(root) if root else None)
    return JSONResponse(data, headers={"Content-Disposition": 'attachment; filename="labels.json"'})


def _thumb_bytes(state: ReviewState, file_id: int) -> bytes:
    with state.open_catalog() as cat:
        row = cat.file(file_id)
        data = cat.thumb(file_id) if row is not None else None
    if row is None:
        raise HTTPException(404, "no such file in the catalog")
    if data is None and row["status"] != "ok":  # never read a file the scan refused (a 6 GB one)
        raise HTTPException(404, f"{display(row['path'])} is not available ({row['status']})")
    return data if data is not None else files.render(row, files.scanned_bytes(row), longest=_THUMB)


@read_router.get("/files/{file_id}/thumb")
def thumb(file_id: int, state: ReviewState = Depends(review_state)) -> Response:
    return Response(_thumb_bytes(state, file_id), media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


@read_router.get("/files/{file_id}/image")
def image(file_id: int, state: ReviewState = Depends(review_state)) -> Response:
    with state.open_catalog() as cat:
        row = cat.file(file_id)
    if row is None:
        raise HTTPException(404, "no such file in the catalog")
    if row["status"] != "ok":
        raise HTTPException(404, f"{display(row['path'])} is not available ({row['status']})")
    data = files.scanned_bytes(row)
    served_as = formats.browser_type(row["format"])
    if served_as and files.orientation(data) == 1:
        return Response(data, media_type=served_as)
    return Response(files.render(row, data), media_type="image/jpeg")


# -- compare: what differs, in the catalog's words and in the pixels -------------------------------
def _pair(state: ReviewState, group_id: int, a: int, b: int):
    with state.open_catalog() as cat:
        group = duplicate_groups.find_group(cat, group_id)
    members = {m.file_id: m for m in group.members + group.removed}
    if a not in members or b not in members:
        raise BadInputError(f"files {a} and {b} are not both in group {group_id}")
    return members[a], members[b]


def _pixels(state: ReviewState, a: int, b: int):
    """The pair's difference map, over the thumbnails."""
    images = [Image.open(io.BytesIO(_thumb_bytes(state, i))).convert("RGB") for i in (a, b)]
    return images[0], difference.difference_map(*images)


@read_router.get("/api/groups/{group_id}/compare")
def compare(group_id: int, a: int, b: int, state: ReviewState = Depends(review_state)) -> dict:
    first, second = _pair(state, group_id, a, b)
    return {"a": first.as_dict(), "b": second.as_dict(), "differences": differences(first, second),
            "pixels": _pixels(state, a, b)[1].as_dict()}


@read_router.get("/api/groups/{group_id}/difference.png")
def difference_image(group_id: int, a: int, b: int, state: ReviewState = Depends(review_state)) -> Response:
    """Where the pair differs: the first picture in grey, what differs beyond the noise in red."""
    _pair(state, group_id, a, b)
    image, found = _pixels(state, a, b)
    return Response(_heat_png(image, found), media_type="image/png")


def _heat_png(image: Image.Image, found) -> bytes:
    grey = np.asarray(image.convert("L").resize(found.heat.shape[::-1]), dtype=np.float32) * 0.6
    heat = found.heat.astype(np.float32) * found.mask  # only what differs beyond the pair's noise
    rgb = np.stack([np.maximum(grey, heat), grey * (1 - heat / 255), grey * (1 - heat / 255)], axis=2)
    buffer = io.BytesIO()
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


# -- deciding and acting (token header required) ---------------------------------------------------
@decide_router.post("/api/groups/{group_id}/keep")
def keep(group_id: int, file_id: int = Body(..., embed=True), state: ReviewState = Depends(review_state)) -> dict:
    with state.open_catalog() as cat:
        return decisions.keep_one(cat, group_id, file_id).detail()


@decide_router.post("/api/groups/{group_id}/decision")
def decide(group_id: int, file_id: int = Body(...), action: str | None = Body(None),
           state: ReviewState = Depends(review_state)) -> dict:
    with state.open_catalog() as cat:
        return decisions.decide(cat, group_id, file_id, action).detail()


@decide_router.post("/api/groups/{group_id}/not-duplicates")
def not_duplicates(group_id: int, value: bool = Body(True, embed=True),
                   state: ReviewState = Depends(review_state)) -> dict:
    with state.open_catalog() as cat:
        return decisions.not_duplicates(cat, group_id, value).detail()


@decide_router.post("/api/groups/{group_id}/take-out")
def take_out(group_id: int, file_id: int = Body(...), value: bool = Body(True),
             state: ReviewState = Depends(review_state)) -> dict:
    with state.open_catalog() as cat:
        return decisions.take_out(cat, group_id, file_id, value).detail()


@decide_router.post("/api/accept")
def accept(group_ids: list[int] = Body(...), dry_run: bool = Body(True),
           state: ReviewState = Depends(review_state)) -> dict:
    with state.open_catalog() as cat:
        return decisions.accept_suggestions(cat, group_ids, dry_run=dry_run)


@decide_router.post("/api/accept/undo")
def undo_accept(group_ids: list[int] = Body(..., embed=True), state: ReviewState = Depends(review_state)) -> dict:
    with state.open_catalog() as cat:
        return decisions.undo_accept(cat, group_ids)


@decide_router.post("/api/groups/{group_id}/reset")
def reset(group_id: int, state: ReviewState = Depends(review_state)) -> dict:
    with state.open_catalog() as cat:
        return decisions.reset(cat, group_id).detail()


@decide_router.post("/api/apply")
def run_apply(dry_run: bool = Body(True, embed=True), state: ReviewState = Depends(review_state)) -> dict:
    return apply_mod.apply(state.catalog, trash_dir=state.trash_dir, dry_run=dry_run).as_dict()


@decide_router.post("/api/undo")
def run_undo(state: ReviewState = Depends(review_state)) -> dict:
    return apply_mod.undo(state.catalog, trash_dir=state.trash_dir).as_dict()
