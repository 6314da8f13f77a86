"""The review page's guard (photodedup/review/security.py), rule by rule, in front of a two-route app:
the Host, the fetch site, the session token (cookie or header), the header on writes, the one-time code.
In process (FastAPI's TestClient): what ``benchmarks/mutate.py --module security`` runs first; the real
server is tests/test_review_security.py's."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from photodedup.review.security import CSP, TOKEN_HEADER, OneTimeCodes, add_guard, same_secret

TOKEN = "the-session-token"
COOKIE = "photodedup_session"
HEADER = {TOKEN_HEADER: TOKEN}


class Guarded:
    """The guarded app; ``ask`` sends one request from a fresh client (no cookie kept between requests)."""

    def __init__(self, app: FastAPI, codes: OneTimeCodes) -> None:
        self.app, self.codes = app, codes

    def ask(self, path: str, *, method: str = "GET", cookie: str | None = None, **headers: str):
        cookies = {COOKIE: cookie} if cookie is not None else None
        with TestClient(self.app, follow_redirects=False, cookies=cookies) as client:
            return client.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})


def guarded(allowed_hosts: set[str] | None = frozenset({"testserver"})) -> Guarded:
    app = FastAPI()
    codes = OneTimeCodes()
    add_guard(app, token=TOKEN, codes=codes, cookie=COOKIE,
              allowed_hosts=set(allowed_hosts) if allowed_hosts is not None else None)

    @app.get("/")
    def page():
        return {"page": True}

    @app.post("/decide")
    def decide():
        return {"done": True}

    return Guarded(app, codes)


@pytest.fixture
def client() -> Guarded:
    return guarded()


def test_same_secret_is_equality_for_any_text_and_none_is_never_the_secret():
    assert same_secret(TOKEN, TOKEN)
    assert not same_secret("the-session-tokem", TOKEN)
    assert not same_secret(None, TOKEN)
    assert not same_secret("jeton-é\udcff", TOKEN)  # non-ASCII, even a lone surrogate: wrong, not an error


def test_a_code_opens_one_session_once_and_a_code_never_issued_none():
    codes = OneTimeCodes()
    code = codes.issue()
    assert len(code) == 32  # 24 random bytes, URL-safe
    assert not codes.redeem("never-issued")
    assert codes.redeem(code)
    assert not codes.redeem(code)


def test_health_needs_no_token(client):
    answer = client.ask("/healthz")
    assert (answer.status_code, answer.json()) == (200, {"ok": True})


def test_the_token_in_the_cookie_or_the_header_opens_the_page(client):
    assert client.ask("/", **HEADER).json() == {"page": True}
    assert client.ask("/", cookie=TOKEN).json() == {"page": True}
    for answer in (client.ask("/"), client.ask("/", cookie="wrong", **{TOKEN_HEADER: "wrong"})):
        assert (answer.status_code, answer.json()) == (
            401, {"error": "missing session token: open the URL that `photodedup review` printed"})


def test_a_write_needs_the_header_a_cookie_alone_is_refused(client):
    assert client.ask("/decide", method="POST", **HEADER).json() == {"done": True}
    assert client.ask("/decide", method="POST", cookie=TOKEN, **HEADER).json() == {"done": True}
    answer = client.ask("/decide", method="POST", cookie=TOKEN)
    assert (answer.status_code, answer.json()) == (
        403, {"error": f"missing {TOKEN_HEADER} header on a state-changing request"})


def test_the_one_time_code_sets_the_cookie_and_redirects_once():
    client = guarded()
    code = client.codes.issue()
    answer = client.ask(f"/?code={code}")
    assert (answer.status_code, answer.headers["location"]) == (303, "/")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN};")
    assert {"HttpOnly", "Path=/", "SameSite=strict"} <= {part.strip() for part in cookie.split(";")}
    again = client.ask(f"/?code={code}")
    assert (again.status_code, again.json()) == (
        401, {"error": "this link was used already or is wrong: restart `photodedup review` for a new one"})
    assert client.ask(f"/?token={TOKEN}").status_code == 303  # the session token itself works too
    assert client.ask("/?token=wrong").status_code == 401
    # a code on another path is no login: the page's own token check applies
    assert client.ask(f"/decide?code={client.codes.issue()}", method="POST").status_code == 401


def test_another_host_is_refused_and_no_host_list_admits_any():
    answer = guarded().ask("/", Host="evil.example", **HEADER)
    assert (answer.status_code, answer.json()) == (400, {"error": "unexpected Host header 'evil.example'"})
    assert guarded(allowed_hosts=None).ask("/", Host="evil.example", **HEADER).status_code == 200


@pytest.mark.parametrize("site, status", [("cross-site", 403), ("same-site", 403), ("same-origin", 200),
                                          ("none", 200)])
def test_only_a_same_origin_or_typed_request_passes(client, site, status):
    answer = client.ask("/", Sec_Fetch_Site=site, **HEADER)
    assert answer.status_code == status
    if status == 403:
        assert answer.json() == {"error": "a request from another site (or another port) is refused: open the page "
                                          "at its own address"}


def test_every_answer_carries_the_protective_headers(client):
    for answer in (client.ask("/", **HEADER), client.ask("/"), client.ask("/healthz")):
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cross-origin-resource-policy"] == "same-origin"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["content-security-policy"] == CSP
