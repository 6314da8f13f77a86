"""The review web app (FastAPI): one page of plain HTML/CSS/JS, a small JSON API, images by file id.

Security: files are reached only by catalog id (no path parameter exists); the server binds to
loopback by default and rejects a Host header that is not the address it serves (DNS rebinding);
every request needs the per-session token, which the URL printed at start hands to the browser as
an HttpOnly, SameSite=Strict cookie; state-changing requests must also carry it in the
``X-Photodedup-Token`` header (403 otherwise), which a cross-site form or image cannot send.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import secrets
import stat
from pathlib import Path

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from PIL import Image

from photodedup import apply as apply_mod
from photodedup import formats, raw
from photodedup import groups as decisions
from photodedup.catalog import Catalog, display
from photodedup.errors import BadInputError, PhotodedupError
from photodedup.preprocess import DEFAULT_MAX_PIXELS, encode_jpeg, load_oriented

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
TOKEN_HEADER = "X-Photodedup-Token"
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
_SAFE_METHODS = {"GET", "HEAD"}
_THUMB = 320


def create_app(catalog: Path, *, token: str, trash_dir: Path | None = None,
               allowed_hosts: set[str] | None = None, cookie: str = "photodedup_review") -> FastAPI:
    """The app for one catalog. ``allowed_hosts``: accepted Host headers (None accepts any)."""
    app = FastAPI(title="photodedup review", docs_url=None, redoc_url=None, openapi_url=None,
                  default_response_class=_ReadableJSON)

    def open_catalog() -> Catalog:
        return Catalog(catalog, create=False)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = (request.headers.get("host") or "").lower()
        if allowed_hosts is not None and host not in allowed_hosts:
            return JSONResponse({"error": f"unexpected Host header {host!r}"}, status_code=400)
        if request.url.path == "/healthz":
            return JSONResponse({"ok": True})
        if request.url.path == "/" and "token" in request.query_params:
            if not secrets.compare_digest(request.query_params["token"], token):
                return _forbidden("wrong session token")
            redirect = RedirectResponse("/", status_code=303)
            redirect.set_cookie(cookie, token, httponly=True, samesite="strict", path="/")
            return redirect
        if not secrets.compare_digest(request.cookies.get(cookie, ""), token) and \
                not secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), token):
            return _forbidden("missing session token: open the URL that `photodedup review` printed")
        if request.method not in _SAFE_METHODS and \
                not secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), token):
            return _forbidden(f"missing {TOKEN_HEADER} header on a state-changing request")
        response = await call_next(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        return response

    @app.exception_handler(OverflowError)
    async def beyond_int64(request: Request, error: OverflowError):  # an id SQLite cannot even hold
        return JSONResponse({"error": "no such id"}, status_code=404)

    @app.exception_handler(PhotodedupError)
    async def photodedup_error(request: Request, error: PhotodedupError):
        return JSONResponse({"error": str(error), "hint": error.hint}, status_code=error.http_status)

    # -- page and static files ---------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        page = (STATIC / "index.html").read_text().replace("{{token}}", token)
        return HTMLResponse(page)

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        path = STATIC / name
        if name not in {p.name for p in STATIC.iterdir()} or path.suffix not in _STATIC_TYPES:
            raise HTTPException(404, "not found")
        return FileResponse(path, media_type=_STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})

    # -- reading -----------------------------------------------------------------------------------
    @app.get("/api/overview")
    def overview(kind: str | None = None, sort: str = "size") -> dict:
        with open_catalog() as cat:
            return decisions.overview(cat, kind=kind or None, sort=sort)

    @app.get("/api/groups/{group_id}")
    def group(group_id: int) -> dict:
        with open_catalog() as cat:
            return decisions.find_group(cat, group_id).detail()

    @app.get("/api/labels")
    def labels(root: str | None = Query(None)) -> JSONResponse:
        with open_catalog() as cat:
            data = decisions.labels(cat, root=Path(root) if root else None)
        return JSONResponse(data, headers={"Content-Disposition": 'attachment; filename="labels.json"'})

    @app.get("/files/{file_id}/thumb")
    def thumb(file_id: int) -> Response:
        with open_catalog() as cat:
            row = cat.file(file_id)
            data = cat.thumb(file_id) if row is not None else None
        if row is None:
            raise HTTPException(404, "no such file in the catalog")
        if data is None:
            data = _render(row, _scanned_bytes(row), longest=_THUMB)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/files/{file_id}/image")
    def image(file_id: int) -> Response:
        with open_catalog() as cat:
            row = cat.file(file_id)
        if row is None:
            raise HTTPException(404, "no such file in the catalog")
        if row["status"] != "ok":
            raise HTTPException(404, f"{display(row['path'])} is not available ({row['status']})")
        data = _scanned_bytes(row)
        served_as = formats.browser_type(row["format"])
        if served_as and _orientation(data) == 1:
            return Response(data, media_type=served_as)
        return Response(_render(row, data), media_type="image/jpeg")

    # -- deciding and acting (token header required) -----------------------------------------------
    @app.post("/api/groups/{group_id}/keep")
    def keep(group_id: int, file_id: int = Body(..., embed=True)) -> dict:
        with open_catalog() as cat:
            return decisions.keep_one(cat, group_id, file_id).detail()

    @app.post("/api/groups/{group_id}/decision")
    def decide(group_id: int, file_id: int = Body(...), action: str | None = Body(None)) -> dict:
        with open_catalog() as cat:
            return decisions.decide(cat, group_id, file_id, action).detail()

    @app.post("/api/groups/{group_id}/not-duplicates")
    def not_duplicates(group_id: int, value: bool = Body(True, embed=True)) -> dict:
        with open_catalog() as cat:
            return decisions.not_duplicates(cat, group_id, value).detail()

    @app.post("/api/groups/{group_id}/take-out")
    def take_out(group_id: int, file_id: int = Body(...), value: bool = Body(True)) -> dict:
        with open_catalog() as cat:
            return decisions.take_out(cat, group_id, file_id, value).detail()

    @app.get("/api/groups/{group_id}/compare")
    def compare(group_id: int, a: int, b: int) -> dict:
        with open_catalog() as cat:
            group = decisions.find_group(cat, group_id)
        members = {m.file_id: m for m in group.members + group.removed}
        if a not in members or b not in members:
            raise BadInputError(f"files {a} and {b} are not both in group {group_id}")
        return {"a": members[a].as_dict(), "b": members[b].as_dict(),
                "differences": decisions.differences(members[a], members[b])}

    @app.post("/api/accept")
    def accept(group_ids: list[int] = Body(...), dry_run: bool = Body(True)) -> dict:
        with open_catalog() as cat:
            return decisions.accept_suggestions(cat, group_ids, dry_run=dry_run)

    @app.post("/api/groups/{group_id}/reset")
    def reset(group_id: int) -> dict:
        with open_catalog() as cat:
            return decisions.reset(cat, group_id).detail()

    @app.post("/api/apply")
    def run_apply(dry_run: bool = Body(True, embed=True)) -> dict:
        return apply_mod.apply(catalog, trash_dir=trash_dir, dry_run=dry_run).as_dict()

    @app.post("/api/undo")
    def run_undo() -> dict:
        return apply_mod.undo(catalog, trash_dir=trash_dir).as_dict()

    return app


class _ReadableJSON(JSONResponse):
    """JSON whose strings are valid UTF-8: a path with bytes that are not shows them as ``\\xNN``."""

    def render(self, content) -> bytes:
        return super().render(_readable(content))


def _readable(value):
    if isinstance(value, str):
        return display(value)
    if isinstance(value, dict):
        return {_readable(k): _readable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_readable(v) for v in value]
    return value


def _forbidden(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=403)


def _scanned_bytes(row) -> bytes:
    """The bytes of the file that was scanned, read through one descriptor: never a symlink (``O_NOFOLLOW``),
    never another file at that path (device, inode, size and mtime as the scan recorded them), so a
    photo swapped for a link to ``/etc/shadow``, or a folder swapped for a link, serves nothing."""
    try:
        fd = os.open(row["path"], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        reason = "a symbolic link" if error.errno == errno.ELOOP else error.strerror
        raise HTTPException(404, display(f"{row['path']} is not the file that was scanned ({reason})")) from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        found = (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
        scanned = (row["size"], row["mtime_ns"], row["dev"], row["ino"])
        known = 4 if row["dev"] is not None else 2  # catalogs scanned before device/inode were kept
        if not stat.S_ISREG(st.st_mode) or found[:known] != scanned[:known]:
            raise HTTPException(404, display(f"{row['path']} is not the file that was scanned (replaced or "
                                             "changed since); scan again"))
        return handle.read()


def _orientation(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.getexif().get(0x0112, 1))
    except (OSError, ValueError):
        return 1


def _render(row, data: bytes, *, longest: int | None = None) -> bytes:
    """The file decoded, EXIF orientation applied, as JPEG (optionally scaled down to ``longest``).

    A RAW shows its embedded preview (else a half-size decode of the sensor data).
    """
    try:
        if row["raw_decode"]:
            fmt = raw.raw_format(row["path"], data[: formats.HEAD_BYTES]) or "RAW"
            image = raw.read_raw(data, fmt, max_pixels=DEFAULT_MAX_PIXELS, draft=longest is not None).image
        else:
            image = load_oriented(data, fast=longest is not None, shortest=longest or 0)
        if longest:
            image.thumbnail((longest, longest))
        return encode_jpeg(image, quality=90)
    except (OSError, ValueError, Image.DecompressionBombError, raw.RawReadError) as error:
        raise HTTPException(404, display(f"cannot decode {row['path']}: {error}")) from error


def loopback_hosts(host: str, port: int) -> set[str] | None:
    """Host headers to accept when serving on ``host:port``; None (any) when bound beyond loopback."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    return {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


def serve(catalog: Path, *, host: str = "127.0.0.1", port: int = 8000, trash_dir: Path | None = None,
          token: str | None = None, open_browser: bool = False, announce=None) -> None:
    """Serve the review page until interrupted. ``announce(url)`` is called just before it listens.

    ``token``: the session token (default: a new random one each start).
    """
    import uvicorn

    from photodedup.serve import listen

    Catalog(catalog, create=False).close()  # no catalog: the same error (and exit code) as every command
    sock = listen(host, port)  # a busy port is an error before any URL is printed
    token = token or secrets.token_urlsafe(24)
    app = create_app(Path(catalog), token=token, trash_dir=trash_dir, allowed_hosts=loopback_hosts(host, port),
                     cookie=f"photodedup_review_{port}")
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/?token={token}"
    if announce:
        announce(url)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
