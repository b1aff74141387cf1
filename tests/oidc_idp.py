"""A loopback OpenID provider for the sign-in tests: oidc-provider-mock (authlib-based) behind a
small WSGI layer that enforces PKCE (S256), which the mock itself does not."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import oidc_provider_mock
import werkzeug.serving


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class PkceEnforcer:
    """Remembers each issued code's challenge; the token endpoint refuses a missing or wrong
    verifier with `invalid_grant`."""

    def __init__(self, app):
        self.app = app
        self.challenges: dict[str, tuple[str | None, str | None]] = {}
        self.refused = 0

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/oauth2/authorize":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            challenge = (query.get("code_challenge") or [None])[0]
            method = (query.get("code_challenge_method") or [None])[0]

            def remember(status, headers, exc_info=None):
                for name, value in headers:
                    if name.lower() == "location":
                        for code in parse_qs(urlsplit(value).query).get("code", []):
                            self.challenges[code] = (challenge, method)
                return start_response(status, headers, exc_info)

            return self.app(environ, remember)
        if path == "/oauth2/token" and environ.get("REQUEST_METHOD") == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            form = parse_qs(body.decode())
            if form.get("grant_type") == ["authorization_code"]:
                code = (form.get("code") or [""])[0]
                verifier = (form.get("code_verifier") or [None])[0]
                challenge, method = self.challenges.pop(code, (None, None))
                if not (
                    challenge and method == "S256" and verifier and s256(verifier) == challenge
                ):
                    self.refused += 1
                    error = {"error": "invalid_grant", "error_description": "PKCE check failed"}
                    start_response("400 Bad Request", [("Content-Type", "application/json")])
                    return [json.dumps(error).encode()]
            environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


@contextlib.contextmanager
def oidc_provider(users: list[oidc_provider_mock.User]) -> Iterator[tuple[str, PkceEnforcer]]:
    """The provider on a free 127.0.0.1 port: (issuer URL, its PKCE layer)."""
    app = PkceEnforcer(oidc_provider_mock.app(user_claims=users, require_nonce=True))
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
