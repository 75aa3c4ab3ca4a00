"""Every HTTP call the app makes in a local run, recorded at the client (issue 21).

`CallMeter.installed()` wraps `http.client.HTTPConnection` (under requests, urllib3 and urllib:
the Azure SDKs and karrio) and httpx's transport (the SP-API client). A call is the app's when
it is made inside a function body (`LocalHost.invoking`) or by an OpenTelemetry export thread;
the local host's queue calls are the Functions host's (`HOST`); the driver's own calls are not
recorded. Each `Call` keeps its service (by port), operation,
function, sizes and raw request bytes: `bench_bill` prices the first, `replay()` sends the last
again through bare `http.client`, the CPU floor the app's CPU is compared with.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    service: str
    function: str
    scheme: str
    host: str
    port: int
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytearray = field(default_factory=bytearray)
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def body_bytes(self) -> int:
        return int(self.headers.get("content-length") or 0)

    @property
    def response_bytes(self) -> int:
        return int(self.response_headers.get("content-length") or 0)

    def operation(self) -> str:
        """The billing class of the call within its service."""
        path = urlsplit(self.target).path
        query = parse_qs(urlsplit(self.target).query)
        return OPERATIONS.get(self.service, lambda *_: "call")(self.method, path, query, self.headers)


def _blob(method: str, path: str, query: dict[str, list[str]], _: dict[str, str]) -> str:
    comp = (query.get("comp") or [""])[0]
    container_level = query.get("restype") == ["container"]
    if method == "DELETE":
        return "delete"
    if comp == "list" or (container_level and method == "PUT"):
        return "list"
    if method == "PUT":
        return "write"
    if method in ("GET", "HEAD"):
        return "read"
    return "other"


def _queue(method: str, _: str, __: dict[str, list[str]], ___: dict[str, str]) -> str:
    """Put Message, Update Message and Create Queue are class 1; Get Messages, Delete Message
    and metadata reads class 2."""
    return "class1" if method in ("POST", "PUT") else "class2"


def _cosmos(method: str, path: str, _: dict[str, list[str]], headers: dict[str, str]) -> str:
    if "/docs" not in path:
        return "metadata"
    if headers.get("x-ms-documentdb-isquery", "").lower() == "true" or "query" in headers.get(
        "content-type", ""
    ):
        return "query"
    if headers.get("x-ms-cosmos-is-batch-request", "").lower() == "true":
        return "batch"
    return {"GET": "read", "POST": "create", "PUT": "replace", "DELETE": "delete", "PATCH": "patch"}.get(
        method, "other"
    )


OPERATIONS: dict[str, Callable[[str, str, dict[str, list[str]], dict[str, str]], str]] = {
    "blob": _blob,
    "queue": _queue,
    "cosmos": _cosmos,
}


#: The owner of the calls the Functions host makes around the bodies (queue work only).
HOST = "host"


class CallMeter:
    """Records the app's calls while installed. `services` maps a port to a service name;
    `invoking` says which function body is running on the calling thread, if any."""

    def __init__(self, services: dict[int, str], invoking: Callable[[], str | None]) -> None:
        self.services = services
        self.invoking = invoking
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def _owner(self) -> str | None:
        thread = threading.current_thread()
        if thread.name.startswith("Otel"):
            return "telemetry_export"
        return self.invoking() if thread is threading.main_thread() else None

    def _start(self, scheme: str, host: str, port: int, method: str, target: str) -> Call | None:
        service = self.services.get(port, "other")
        owner = self._owner()
        if owner is None and service == "queue" and threading.current_thread() is threading.main_thread():
            owner = HOST  # the Functions host's queue work: receive, delete, output bindings
        if owner is None:
            return None
        call = Call(service, owner, scheme, host, port, method, target)
        with self._lock:
            self.calls.append(call)
        return call

    @contextlib.contextmanager
    def installed(self) -> Iterator[CallMeter]:
        undo = [self._wrap_http_client(), self._wrap_httpx()]
        try:
            yield self
        finally:
            for restore in undo:
                restore()

    def _wrap_http_client(self) -> Callable[[], None]:
        cls = http.client.HTTPConnection
        originals = {name: getattr(cls, name) for name in ("putrequest", "putheader", "send", "getresponse")}
        meter = self

        def putrequest(conn: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            scheme = "https" if type(conn).default_port == http.client.HTTPS_PORT else "http"
            conn._bill_call = meter._start(scheme, conn.host, conn.port, method, url)
            return originals["putrequest"](conn, method, url, *args, **kwargs)

        def putheader(conn: Any, header: Any, *values: Any) -> Any:
            call = getattr(conn, "_bill_call", None)
            if call is not None:
                name = header.decode() if isinstance(header, bytes) else str(header)
                text = ", ".join(v.decode() if isinstance(v, bytes) else str(v) for v in values)
                call.headers[name.lower()] = text
            return originals["putheader"](conn, header, *values)

        def send(conn: Any, data: Any) -> Any:
            call = getattr(conn, "_bill_call", None)
            if call is not None and isinstance(data, bytes | bytearray | memoryview):
                call.raw += bytes(data)
            return originals["send"](conn, data)

        def getresponse(conn: Any) -> Any:
            response = originals["getresponse"](conn)
            call = getattr(conn, "_bill_call", None)
            if call is not None:
                call.status = response.status
                call.response_headers = {k.lower(): v for k, v in response.getheaders()}
            return response

        for name, wrapper in (
            ("putrequest", putrequest),
            ("putheader", putheader),
            ("send", send),
            ("getresponse", getresponse),
        ):
            setattr(cls, name, wrapper)

        def restore() -> None:
            for name, original in originals.items():
                setattr(cls, name, original)

        return restore

    def _wrap_httpx(self) -> Callable[[], None]:
        import httpx

        original = httpx.HTTPTransport.handle_request
        meter = self

        def handle_request(transport: Any, request: httpx.Request) -> httpx.Response:
            url = request.url
            port = url.port or (443 if url.scheme == "https" else 80)
            target = url.raw_path.decode("ascii")
            call = meter._start(url.scheme, url.host, port, request.method, target)
            if call is not None:
                body = request.read()
                call.headers = {k.lower(): v for k, v in request.headers.items()}
                call.headers.setdefault("content-length", str(len(body)))
                head = f"{request.method} {target} HTTP/1.1\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in request.headers.items()
                )
                call.raw += head.encode("latin-1") + b"\r\n" + body
            response = original(transport, request)
            if call is not None:
                call.status = response.status_code
                call.response_headers = {k.lower(): v for k, v in response.headers.items()}
            return response

        httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]

        def restore() -> None:
            httpx.HTTPTransport.handle_request = original  # type: ignore[method-assign]

        return restore


def replay(calls: Iterable[Call]) -> tuple[float, int, Counter[str]]:
    """Send each call's recorded request bytes again through bare `http.client` (one kept-alive
    socket per endpoint, reopened when the server closes it) and read each response. Returns
    (this thread's CPU seconds, calls whose status differs from the recorded one: the stores
    have moved on since, so a read may now find nothing; calls that failed twice, by service)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sockets: dict[tuple[str, str, int], socket.socket] = {}
    differing = 0
    failed: Counter[str] = Counter()
    started = time.thread_time()
    for call in calls:
        key = (call.scheme, call.host, call.port)
        for attempt in (0, 1):
            sock = sockets.get(key) or _connect(key, context)
            sockets[key] = sock
            try:
                sock.sendall(call.raw)
                response = http.client.HTTPResponse(sock, method=call.method)
                response.begin()
                response.read()
            except (OSError, http.client.HTTPException):
                sockets.pop(key).close()
                failed[call.service] += attempt
                continue
            differing += response.status != call.status
            if response.will_close:
                sockets.pop(key).close()
            break
    cpu = time.thread_time() - started
    for sock in sockets.values():
        sock.close()
    return cpu, differing, failed


def _connect(key: tuple[str, str, int], context: ssl.SSLContext) -> socket.socket:
    scheme, host, port = key
    sock = socket.create_connection((host, port), timeout=30)
    return context.wrap_socket(sock, server_hostname=host) if scheme == "https" else sock
