"""A stand-in for the Application Insights ingestion endpoint, on 127.0.0.1 and a free port.

Accepts `POST /v2.1/track` and `/v2/track` bodies as both Azure Monitor exporters send them
(a JSON array, or newline-delimited JSON; plain or gzip-compressed), answers like the real
endpoint (`{"itemsReceived": n, "itemsAccepted": n, "errors": []}`) and appends each envelope as
one JSON line to a file. Both exporters post over plain http to a loopback IngestionEndpoint, so
no TLS is needed here.

    python -m local.appinsights_server --out OUT/telemetry.jsonl

prints the URL and the connection string to give the app, and serves until interrupted.
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TRACK_PATHS = ("/v2.1/track", "/v2/track")
INSTRUMENTATION_KEY = "00000000-0000-0000-0000-000000000000"


def parse_envelopes(body: bytes, encoding: str | None) -> list[dict[str, Any]]:
    """The envelopes of one request body: gzip or not, a JSON array or one JSON per line."""
    if (encoding or "").lower() == "gzip" or body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    text = body.decode("utf-8").strip()
    if not text:
        return []
    if text.startswith("["):
        items = json.loads(text)
        return [item for item in items if isinstance(item, dict)]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class IngestionServer:
    """Thread-run server; `start()` returns its base URL, `stop()` shuts it down."""

    def __init__(self, out: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={self.url}"

    def start(self) -> str:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.touch()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="appinsights-stand-in")
        self._thread.daemon = True
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def envelopes(self) -> list[dict[str, Any]]:
        """Everything received so far, in order."""
        with self._lock:
            lines = self.out.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def _record(self, envelopes: list[dict[str, Any]]) -> None:
        with self._lock, self.out.open("a", encoding="utf-8") as sink:
            for envelope in envelopes:
                sink.write(json.dumps(envelope, ensure_ascii=False, separators=(",", ":")) + "\n")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path.split("?", 1)[0].rstrip("/") not in TRACK_PATHS:
                    self._reply(404, {"error": "not found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    envelopes = parse_envelopes(body, self.headers.get("Content-Encoding"))
                except (ValueError, OSError):
                    self._reply(400, {"itemsReceived": 0, "itemsAccepted": 0, "errors": []})
                    return
                server._record(envelopes)
                n = len(envelopes)
                self._reply(200, {"itemsReceived": n, "itemsAccepted": n, "errors": []})

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test and run output quiet

        return Handler


def start(out: Path, port: int = 0) -> IngestionServer:
    """Start a server writing to `out` on a free loopback port (or `port`)."""
    server = IngestionServer(out, port=port)
    server.start()
    return server


def stop(server: IngestionServer) -> None:
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file to append envelopes to")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    server = start(args.out, args.port)
    print(server.url, flush=True)
    print(server.connection_string, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
