"""The review page's security layer: one middleware in front of every route.

- **Host**: a Host header that is not the address served is refused (DNS rebinding).
- **Fetch site**: a browser request whose ``Sec-Fetch-Site`` is ``cross-site`` or ``same-site`` is
  refused (403). A page on 127.0.0.1 at another port is same-site (SameSite cookies are per site, not
  per port), so only ``same-origin``, ``none`` (typed, bookmarked, opened by ``--open``) and no header
  (not a browser) pass. Every answer carries ``Cross-Origin-Resource-Policy: same-origin`` as well, so
  even a browser that sends no ``Sec-Fetch-Site`` will not hand a photo to another origin.
- **Session**: every request but ``/healthz`` needs the session token, as the HttpOnly, SameSite=Strict
  cookie or the ``X-Photodedup-Token`` header (401 otherwise). The browser gets the cookie by opening
  ``/?code=ONE-TIME-CODE``: a code works once, and is answered with the cookie and a redirect to ``/``,
  so the session token itself is never in a URL, a command line (``/proc``) or a log.
- **Writes**: a state-changing request must also carry the token in the header (403 otherwise), which
  a cross-site form or image cannot send.
- Any token, in the header, the query or the cookie, is compared as bytes: a non-ASCII one is a wrong
  one (401), never an error.
"""

from __future__ import annotations

import secrets
import threading

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

TOKEN_HEADER = "X-Photodedup-Token"
SAFE_METHODS = {"GET", "HEAD"}
ALLOWED_FETCH_SITES = {None, "same-origin", "none"}
CSP = ("default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class OneTimeCodes:
    """Codes that each open one browser session once (``issue`` then ``redeem``)."""

    def __init__(self) -> None:
        self._codes: set[str] = set()
        self._lock = threading.Lock()

    def issue(self) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes.add(code)
        return code

    def redeem(self, code: str) -> bool:
        """True the first time a code that was issued is given; it is spent then."""
        with self._lock:
            for known in self._codes:
                if same_secret(code, known):
                    self._codes.discard(known)
                    return True
        return False


def same_secret(given: str | None, secret: str) -> bool:
    """``given == secret`` in constant time, for any text a client sends (``compare_digest`` on two
    ``str`` raises on non-ASCII; on bytes it cannot)."""
    if given is None:
        return False
    return secrets.compare_digest(given.encode("utf-8", "surrogatepass"), secret.encode("utf-8"))


def add_guard(app: FastAPI, *, token: str, codes: OneTimeCodes, cookie: str,
              allowed_hosts: set[str] | None = None) -> None:
    """Put the checks above in front of every route of ``app``."""

    def refused(request: Request) -> Response | None:
        host = (request.headers.get("host") or "").lower()
        if allowed_hosts is not None and host not in allowed_hosts:
            return _error(400, f"unexpected Host header {host!r}")
        if request.headers.get("sec-fetch-site") not in ALLOWED_FETCH_SITES:
            return _error(403, "a request from another site (or another port) is refused: open the page "
                               "at its own address")
        if request.url.path == "/healthz":
            return JSONResponse({"ok": True})
        if request.url.path == "/" and ("code" in request.query_params or "token" in request.query_params):
            code, given = request.query_params.get("code"), request.query_params.get("token")
            if not (codes.redeem(code) if code is not None else same_secret(given, token)):
                return _error(401, "this link was used already or is wrong: restart `photodedup review` "
                                   "for a new one")
            redirect = RedirectResponse("/", status_code=303)
            redirect.set_cookie(cookie, token, httponly=True, samesite="strict", path="/")
            return redirect
        header = request.headers.get(TOKEN_HEADER)
        if not same_secret(request.cookies.get(cookie), token) and not same_secret(header, token):
            return _error(401, "missing session token: open the URL that `photodedup review` printed")
        if request.method not in SAFE_METHODS and not same_secret(header, token):
            return _error(403, f"missing {TOKEN_HEADER} header on a state-changing request")
        return None

    @app.middleware("http")
    async def guard(request: Request, call_next):
        response = refused(request) or await call_next(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = CSP
        return response


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
