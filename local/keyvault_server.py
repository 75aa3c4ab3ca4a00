"""A stand-in for the Azure Key Vault secrets REST API, on 127.0.0.1 over HTTPS.

It answers the calls `azure-keyvault-secrets` makes (set, get latest or a version, list secrets
and versions, delete, get and list deleted, purge, recover) with the JSON shapes Key Vault
returns (a secret made `read_only` refuses Set Secret with RBAC's 403), and authenticates like
Key Vault: a request without a bearer token gets 401 with a `WWW-Authenticate: Bearer
authorization="https://login.microsoftonline.com/<tenant>", resource="https://vault.azure.net"`
challenge, which the SDK's challenge policy answers by asking its credential for a token for
`https://vault.azure.net/.default`.

TLS: a throwaway CA and a certificate for 127.0.0.1 made with `trustme`; the CA is written to
`<cert-dir>/ca.pem` for the client (`connection_verify=<path>`). Because the vault's host is
127.0.0.1, not *.vault.azure.net, the SDK's check of the challenge resource must be switched off
for it (`verify_challenge_resource=False`); the stand-in does not bend its challenge to pass it.

Independent of the app: it imports nothing from shared/. `python -m local.keyvault_server
--port 0 --cert-dir DIR` prints one JSON line {"url", "ca", "token"}; tests use `start()`.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import signal
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme
from azure.core.credentials import AccessToken

TENANT = "00000000-0000-0000-0000-000000000000"
RESOURCE = "https://vault.azure.net"
SOFT_DELETE_DAYS = 7
_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


class StaticTokenCredential:
    """A credential that hands out one fixed token: for the stand-in only, never for Azure."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self._token, int(time.time()) + 3600)


@dataclass
class _Version:
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str]
    created: int
    enabled: bool = True


@dataclass
class _Secret:
    versions: list[_Version] = field(default_factory=list)
    deleted_at: int | None = None


class Vault:
    """The vault's state, shared by the handler threads."""

    def __init__(self, base_url: str, purge_protection: bool) -> None:
        self.base_url = base_url
        self.purge_protection = purge_protection
        self.live: dict[str, _Secret] = {}
        self.deleted: dict[str, _Secret] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, bool]] = []  # (method, path, had a token)
        self.faults: list[int] = []  # statuses for the next authenticated requests
        #: Secrets the caller may read but not set: its role on them is Secrets User (RBAC).
        self.read_only: set[str] = set()

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next `count` authenticated requests with `status` (429 throttling, 503
        an outage), as Key Vault does; the challenge round trip is not counted."""
        with self.lock:
            self.faults.extend([status] * count)

    def attributes(self, version: _Version, secret: _Secret) -> dict[str, Any]:
        return {
            "enabled": version.enabled,
            "created": version.created,
            "updated": version.created,
            "recoveryLevel": "Recoverable" if self.purge_protection else "Recoverable+Purgeable",
            "recoverableDays": SOFT_DELETE_DAYS,
        }

    def bundle(self, name: str, secret: _Secret, version: _Version) -> dict[str, Any]:
        return {
            "value": version.value,
            "id": f"{self.base_url}/secrets/{name}/{version.version}",
            "contentType": version.content_type,
            "attributes": self.attributes(version, secret),
            "tags": version.tags,
        }

    def item(self, name: str, secret: _Secret, version: _Version, with_version: bool) -> dict[str, Any]:
        suffix = f"/{version.version}" if with_version else ""
        return {
            "id": f"{self.base_url}/secrets/{name}{suffix}",
            "contentType": version.content_type,
            "attributes": self.attributes(version, secret),
            "tags": version.tags,
        }

    def deleted_fields(self, name: str, secret: _Secret) -> dict[str, Any]:
        deleted_at = secret.deleted_at or 0
        return {
            "recoveryId": f"{self.base_url}/deletedsecrets/{name}",
            "deletedDate": deleted_at,
            "scheduledPurgeDate": deleted_at + SOFT_DELETE_DAYS * 86400,
        }


class _Reply(Exception):
    def __init__(self, status: int, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _error(status: int, code: str, message: str) -> _Reply:
    return _Reply(status, {"error": {"code": code, "message": message}})


def _handler(vault: Vault, token: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            authorization = self.headers.get("Authorization", "")
            with vault.lock:
                vault.requests.append((method, url.path, bool(authorization)))
            try:
                if authorization != f"Bearer {token}":
                    self._challenge()
                    return
                if "api-version" not in parse_qs(url.query):
                    raise _error(400, "BadParameter", "api-version is required")
                with vault.lock:
                    if vault.faults:
                        fault = vault.faults.pop(0)
                        code = "Throttled" if fault == 429 else "ServiceUnavailable"
                        raise _error(fault, code, "Try again.")
                    status, payload = _route(vault, method, parts, body)
            except _Reply as reply:
                status, payload = reply.status, reply.body
            self._send(status, payload)

        def _challenge(self) -> None:
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="{RESOURCE}"'
            )
            self._send(401, None, {"WWW-Authenticate": challenge})

        def _send(
            self, status: int, payload: Mapping[str, Any] | None, headers: Mapping[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-ms-keyvault-service-version", "stand-in")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            # Silent: request lines name secrets, and tests read `vault.requests` instead.
            return

    return Handler


def _route(vault: Vault, method: str, parts: list[str], body: bytes) -> tuple[int, Any]:
    if parts == ["secrets"] and method == "GET":
        return 200, _list_secrets(vault)
    if parts == ["deletedsecrets"] and method == "GET":
        return 200, _list_deleted(vault)
    if len(parts) >= 2 and not _NAME.match(parts[1]):
        raise _error(400, "BadParameter", "invalid secret name")
    match parts, method:
        case ["secrets", name], "PUT":
            if name in vault.read_only:
                raise _forbidden_by_rbac(vault, name, "setSecret")
            return 200, _set(vault, name, body)
        case ["secrets", name], "GET":
            return 200, _get(vault, name, None)
        case ["secrets", name], "DELETE":
            return 200, _delete(vault, name)
        case ["secrets", name, "versions"], "GET":
            return 200, _list_versions(vault, name)
        case ["secrets", name, version], "GET":
            return 200, _get(vault, name, version)
        case ["deletedsecrets", name], "GET":
            return 200, _get_deleted(vault, name)
        case ["deletedsecrets", name], "DELETE":
            return _purge(vault, name)
        case ["deletedsecrets", name, "recover"], "POST":
            return 200, _recover(vault, name)
    raise _error(405, "MethodNotAllowed", "operation not supported by the stand-in")


def _forbidden_by_rbac(vault: Vault, name: str, action: str) -> _Reply:
    """Key Vault's answer to a data action the caller's roles do not grant (RBAC vaults)."""
    return _Reply(
        403,
        {
            "error": {
                "code": "Forbidden",
                "message": (
                    "Caller is not authorized to perform action on resource.\r\n"
                    f"Action: 'Microsoft.KeyVault/vaults/secrets/{action}/action'\r\n"
                    f"Resource: '{vault.base_url}/secrets/{name}'\r\nAssignment: (not found)"
                ),
                "innererror": {"code": "ForbiddenByRbac"},
            }
        },
    )


def _set(vault: Vault, name: str, body: bytes) -> dict[str, Any]:
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        raise _error(400, "BadParameter", "body is not JSON") from None
    if not isinstance(request.get("value"), str):
        raise _error(400, "BadParameter", "value is required")
    if name in vault.deleted:
        raise _error(409, "Conflict", f"Secret {name} is currently in a deleted but recoverable state.")
    secret = vault.live.setdefault(name, _Secret())
    attributes = request.get("attributes") or {}
    version = _Version(
        version=secrets.token_hex(16),
        value=request["value"],
        content_type=request.get("contentType"),
        tags=dict(request.get("tags") or {}),
        created=int(time.time()),
        enabled=bool(attributes.get("enabled", True)),
    )
    secret.versions.append(version)
    return vault.bundle(name, secret, version)


def _live(vault: Vault, name: str) -> _Secret:
    secret = vault.live.get(name)
    if secret is None or not secret.versions:
        raise _error(
            404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault."
        )
    return secret


def _get(vault: Vault, name: str, version: str | None) -> dict[str, Any]:
    secret = _live(vault, name)
    if version is None:
        found = secret.versions[-1]
    else:
        match = [v for v in secret.versions if v.version == version]
        if not match:
            raise _error(404, "SecretNotFound", f"A secret with (name/id) {name}/{version} was not found.")
        found = match[0]
    if not found.enabled:
        raise _error(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
    return vault.bundle(name, secret, found)


def _list_secrets(vault: Vault) -> dict[str, Any]:
    items = [vault.item(n, s, s.versions[-1], False) for n, s in sorted(vault.live.items()) if s.versions]
    return {"value": items, "nextLink": None}


def _list_versions(vault: Vault, name: str) -> dict[str, Any]:
    secret = _live(vault, name)
    return {"value": [vault.item(name, secret, v, True) for v in secret.versions], "nextLink": None}


def _delete(vault: Vault, name: str) -> dict[str, Any]:
    secret = _live(vault, name)
    del vault.live[name]
    secret.deleted_at = int(time.time())
    vault.deleted[name] = secret
    return vault.bundle(name, secret, secret.versions[-1]) | vault.deleted_fields(name, secret)


def _deleted(vault: Vault, name: str) -> _Secret:
    secret = vault.deleted.get(name)
    if secret is None:
        raise _error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
    return secret


def _get_deleted(vault: Vault, name: str) -> dict[str, Any]:
    secret = _deleted(vault, name)
    bundle = vault.bundle(name, secret, secret.versions[-1])
    del bundle["value"]  # Key Vault returns a deleted secret's attributes, not its value
    return bundle | vault.deleted_fields(name, secret)


def _list_deleted(vault: Vault) -> dict[str, Any]:
    items = [
        vault.item(n, s, s.versions[-1], False) | vault.deleted_fields(n, s)
        for n, s in sorted(vault.deleted.items())
    ]
    return {"value": items, "nextLink": None}


def _purge(vault: Vault, name: str) -> tuple[int, None]:
    _deleted(vault, name)
    if vault.purge_protection:
        raise _error(403, "Forbidden", "Operation 'PurgeSecret' is not allowed with purge protection.")
    del vault.deleted[name]
    return 204, None


def _recover(vault: Vault, name: str) -> dict[str, Any]:
    secret = _deleted(vault, name)
    del vault.deleted[name]
    secret.deleted_at = None
    vault.live[name] = secret
    return vault.bundle(name, secret, secret.versions[-1])


class KeyVaultServer:
    """The stand-in, served by a thread: `start()` it, point the SDK at `url`, `stop()` it."""

    def __init__(
        self,
        cert_dir: Path,
        *,
        port: int = 0,
        token: str | None = None,
        purge_protection: bool = False,
    ) -> None:
        self.cert_dir = Path(cert_dir)
        self.token = token or secrets.token_urlsafe(24)
        self._port = port
        self._purge_protection = purge_protection
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.vault: Vault | None = None
        self.url = ""

    @property
    def ca_path(self) -> Path:
        return self.cert_dir / "ca.pem"

    def credential(self) -> StaticTokenCredential:
        return StaticTokenCredential(self.token)

    def fail_next(self, status: int, count: int = 1) -> None:
        if self.vault is None:
            raise RuntimeError("stand-in not started")
        self.vault.fail_next(status, count)

    def read_only(self, name: str, read_only: bool = True) -> None:
        """The caller may read `name` but not set it (Secrets User), or again write it."""
        if self.vault is None:
            raise RuntimeError("stand-in not started")
        with self.vault.lock:
            (self.vault.read_only.add if read_only else self.vault.read_only.discard)(name)

    def start(self) -> str:
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(self.ca_path))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        server = ThreadingHTTPServer(("127.0.0.1", self._port), BaseHTTPRequestHandler)
        server.daemon_threads = True
        # Handshake in the request thread (on first read), so one stalled client cannot block the accept loop.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self.url = f"https://127.0.0.1:{server.server_address[1]}"
        self.vault = Vault(self.url, self._purge_protection)
        server.RequestHandlerClass = _handler(self.vault, self.token)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="keyvault-standin", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def start(cert_dir: Path, *, port: int = 0, purge_protection: bool = False) -> KeyVaultServer:
    server = KeyVaultServer(cert_dir, port=port, purge_protection=purge_protection)
    server.start()
    return server


def stop(server: KeyVaultServer) -> None:
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert-dir", type=Path, required=True)
    parser.add_argument("--purge-protection", action="store_true")
    args = parser.parse_args()
    server = start(args.cert_dir, port=args.port, purge_protection=args.purge_protection)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    # The token is a throwaway for this process's lifetime, handed to the runner on stdout.
    print(json.dumps({"url": server.url, "ca": str(server.ca_path), "token": server.token}), flush=True)
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
