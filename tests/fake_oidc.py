"""A minimal OpenID Connect provider on 127.0.0.1, for the sign-in test in a real browser.

It does what a real provider does in the authorization-code flow, and nothing more: a discovery
document (its signing key inline, as ``jwks``), an authorization endpoint that signs in one fixed
user at once (no form) and sends the browser back with a code, and a token endpoint that trades the
code for an ID token signed with RS256, carrying the request's nonce. It checks the client id, the
redirect address and the PKCE verifier, so a wrong configuration fails as it would at a real
provider. Streamlit and Authlib run unchanged against it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "msm-workbench"
CLIENT_SECRET = "fake-client-secret"


class FakeProvider:
    """The provider's state: its address, key, the user it signs in and the codes it has issued."""

    def __init__(self, user: dict[str, str]) -> None:
        self.user = user
        self.key = RSAKey.generate_key(2048, parameters={"kid": "fake-oidc"})
        self.codes: dict[str, dict[str, Any]] = {}
        self.issuer = ""
        self.redirect_uri = ""

    def metadata(self) -> dict[str, Any]:
        """The discovery document (``/.well-known/openid-configuration``)."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks": {"keys": [self.key.as_dict(private=False)]},
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def authorize(self, query: dict[str, str]) -> str:
        """Where the browser goes after signing in: the redirect address with a code (or an error)."""
        if query.get("client_id") != CLIENT_ID or query.get("redirect_uri") != self.redirect_uri:
            return f"{self.redirect_uri}?{urlencode({'error': 'invalid_request', 'state': query.get('state', '')})}"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"nonce": query.get("nonce"), "challenge": query.get("code_challenge")}
        return f"{self.redirect_uri}?{urlencode({'code': code, 'state': query['state']})}"

    def token(self, form: dict[str, str]) -> dict[str, Any] | None:
        """The token response for an authorization code (``None``: refused)."""
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None:
            return None
        if grant["challenge"]:
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
                return None
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 600, **self.user}
        if grant["nonce"]:
            claims["nonce"] = grant["nonce"]
        id_token = jwt.encode({"alg": "RS256", "kid": "fake-oidc"}, claims, self.key)
        return {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "id_token": id_token}


def _handler(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/.well-known/openid-configuration":
                return self._json(200, provider.metadata())
            if url.path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                self.send_response(302)
                self.send_header("Location", provider.authorize(query))
                self.end_headers()
                return None
            return self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            token = provider.token(form) if urlsplit(self.path).path == "/token" else None
            if token is None:
                return self._json(400, {"error": "invalid_grant"})
            return self._json(200, token)

    return Handler


@contextmanager
def serve(user: dict[str, str], redirect_uri: str) -> Iterator[FakeProvider]:
    """The provider, listening on a free port of 127.0.0.1 until the block ends."""
    provider = FakeProvider(user)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    provider.redirect_uri = redirect_uri
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
