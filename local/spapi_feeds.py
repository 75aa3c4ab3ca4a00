"""A stand-in for the SP-API Feeds API 2021-06-30, as far as tax-invoice upload uses it.

An independent imitation (it imports nothing from the app): `FeedsStandIn.handle` answers
createFeedDocument, the presigned document upload URL it hands out, getFeedDocument, createFeed,
getFeed, getFeeds and cancelFeed, with the status codes and bodies of Amazon's model
(`feeds_2021-06-30.json`), and checks UPLOAD_VAT_INVOICE feeds the way Amazon's guide describes
(marketplace, required feedOptions keys, accepted characters, a PDF document). The SP-API
stand-in (local/spapi_server.py) mounts it; `serve()` runs it alone, with a minimal LWA token
endpoint, on 127.0.0.1 and a free port for this module's own tests.

Amazon's model judges every Feeds API exchange `handle` answers (`judge`, a
`local.amazon_models.ModelJudge`); the presigned upload is not an SP-API operation.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.amazon_models import ModelJudge

Response = tuple[int, dict[str, str], bytes]

PREFIX = "/feeds/2021-06-30"
UPLOAD_PREFIX = "/feeds-upload/"
VAT_MARKETPLACES = frozenset(
    {
        "A1RKKUPIHCS9HS",  # ES
        "A1F83G8C2ARO7P",  # UK
        "A13V1IB3VIYZZH",  # FR
        "A1PA6795UKMFR9",  # DE
        "APJ6JRA9NG5V4",  # IT
        "A1805IZSGTT6HS",  # NL
        "A1C3SOZRARQ6R3",  # PL
        "A2NODRKZP88ZB9",  # SE
    }
)
OPTION_VALUE = re.compile(r"^[A-Za-z0-9 ,/\\_;:#.\-]*$")
RATE_LIMITS = {"createFeedDocument": "0.5", "createFeed": "0.0083", "getFeed": "2.0", "getFeeds": "0.0222"}


@dataclass
class StoredDocument:
    document_id: str
    content_type: str
    content: bytes | None = None


@dataclass
class StoredFeed:
    feed_id: str
    feed_type: str
    marketplace_ids: list[str]
    document_id: str
    options: dict[str, str]
    created: str
    status: str = "IN_QUEUE"
    content: bytes = b""


@dataclass
class FeedsStandIn:
    documents: dict[str, StoredDocument] = field(default_factory=dict)
    feeds: dict[str, StoredFeed] = field(default_factory=dict)
    failures: list[int] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(50001))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    judge: ModelJudge = field(default_factory=ModelJudge.default)

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next `times` Feeds calls with `status` (429 throttles, 503 outages)."""
        with self._lock:
            self.failures.extend([status] * times)

    def complete_all(self) -> None:
        with self._lock:
            for feed in self.feeds.values():
                if feed.status in ("IN_QUEUE", "IN_PROGRESS"):
                    feed.status = "DONE"

    def handle(  # noqa: PLR0917 - the SP-API stand-in calls it positionally
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        base_url: str,
    ) -> Response | None:
        if path.startswith(UPLOAD_PREFIX):
            return self._upload(method, path[len(UPLOAD_PREFIX) :], headers, body)
        if not path.startswith(PREFIX + "/"):
            return None
        answer = self._answer(method, path, query, headers, body, base_url)
        self.judge.judge(
            method, path, query=query, headers=headers, body=body, status=answer[0], response=answer[2]
        )
        return answer

    def _answer(  # noqa: PLR0917 - handle's arguments
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        base_url: str,
    ) -> Response:
        lowered = {k.lower(): v for k, v in headers.items()}
        if not lowered.get("x-amz-access-token"):
            return _error(403, "Unauthorized", "Access to requested resource is denied.")
        with self._lock:
            if self.failures:
                status = self.failures.pop(0)
                return _error(status, "QuotaExceeded" if status == 429 else "InternalFailure", "Try again.")
            return self._route(method, path[len(PREFIX) :], query, body, base_url)

    def _route(
        self, method: str, rest: str, query: dict[str, list[str]], body: bytes, base_url: str
    ) -> Response:
        parts = [p for p in rest.split("/") if p]
        if parts == ["documents"] and method == "POST":
            return self._create_document(body, base_url)
        if len(parts) == 2 and parts[0] == "documents" and method == "GET":
            return self._get_document(parts[1], base_url)
        if parts == ["feeds"] and method == "POST":
            return self._create_feed(body)
        if parts == ["feeds"] and method == "GET":
            return self._get_feeds(query)
        if len(parts) == 2 and parts[0] == "feeds" and method == "GET":
            feed = self.feeds.get(parts[1])
            return _json(200, _feed_json(feed), "getFeed") if feed else _error(404, "NotFound", "No feed.")
        if len(parts) == 2 and parts[0] == "feeds" and method == "DELETE":
            return self._cancel(parts[1])
        return _error(404, "NotFound", "Resource not found.")

    def _create_document(self, body: bytes, base_url: str) -> Response:
        spec = _body(body)
        if spec is None or not isinstance(spec.get("contentType"), str) or not spec["contentType"]:
            return _error(400, "InvalidInput", "contentType is required.")
        document_id = f"amzn1.tortuga.4.eu.{next(self._ids)}"
        self.documents[document_id] = StoredDocument(document_id, spec["contentType"])
        url = f"{base_url.rstrip('/')}{UPLOAD_PREFIX}{document_id}"
        return _json(201, {"feedDocumentId": document_id, "url": url}, "createFeedDocument")

    def _get_document(self, document_id: str, base_url: str) -> Response:
        if document_id not in self.documents:
            return _error(404, "NotFound", "No document.")
        url = f"{base_url.rstrip('/')}{UPLOAD_PREFIX}{document_id}"
        return _json(200, {"feedDocumentId": document_id, "url": url}, "getFeedDocument")

    def _upload(self, method: str, document_id: str, headers: dict[str, str], body: bytes) -> Response:
        with self._lock:
            document = self.documents.get(document_id)
            if method != "PUT" or document is None:
                return 403, {"Content-Type": "application/xml"}, b"<Error><Code>AccessDenied</Code></Error>"
            content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
            if content_type.split(";")[0].strip() != document.content_type:
                # A presigned URL is signed for the content type given to createFeedDocument.
                return (
                    403,
                    {"Content-Type": "application/xml"},
                    b"<Error><Code>SignatureDoesNotMatch</Code></Error>",
                )
            document.content = body
            return 200, {}, b""

    def _create_feed(self, body: bytes) -> Response:
        spec = _body(body)
        if spec is None:
            return _error(400, "InvalidInput", "Body must be a JSON object.")
        problem = _feed_problem(spec, self.documents)
        if problem:
            return _error(400, "InvalidInput", problem)
        feed_id = str(next(self._ids))
        document = self.documents[spec["inputFeedDocumentId"]]
        self.feeds[feed_id] = StoredFeed(
            feed_id=feed_id,
            feed_type=spec["feedType"],
            marketplace_ids=list(spec["marketplaceIds"]),
            document_id=document.document_id,
            options=dict(spec.get("feedOptions") or {}),
            created=datetime.now(UTC).isoformat(),
            content=document.content or b"",
        )
        return _json(202, {"feedId": feed_id}, "createFeed")

    def _get_feeds(self, query: dict[str, list[str]]) -> Response:
        types = set(",".join(query.get("feedTypes", [])).split(",")) - {""}
        if not types and "nextToken" not in query:
            return _error(400, "InvalidInput", "feedTypes or nextToken is required.")
        feeds = [_feed_json(f) for f in self.feeds.values() if f.feed_type in types]
        return _json(200, {"feeds": feeds}, "getFeeds")

    def _cancel(self, feed_id: str) -> Response:
        feed = self.feeds.get(feed_id)
        if feed is None:
            return _error(404, "NotFound", "No feed.")
        if feed.status != "IN_QUEUE":
            return _error(400, "InvalidInput", "Only feeds in queue can be cancelled.")
        feed.status = "CANCELLED"
        return 200, {"Content-Type": "application/json"}, b""


def _feed_problem(spec: dict[str, object], documents: dict[str, StoredDocument]) -> str | None:
    marketplaces = spec.get("marketplaceIds")
    if not isinstance(spec.get("feedType"), str) or not isinstance(spec.get("inputFeedDocumentId"), str):
        return "feedType and inputFeedDocumentId are required."
    if not isinstance(marketplaces, list) or not 1 <= len(marketplaces) <= 25:
        return "marketplaceIds must list 1 to 25 marketplaces."
    document = documents.get(str(spec["inputFeedDocumentId"]))
    if document is None or document.content is None:
        return "The feed document was not found or not uploaded."
    options = spec.get("feedOptions") or {}
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        return "feedOptions must map text to text."
    if spec["feedType"] == "UPLOAD_VAT_INVOICE":
        return _vat_invoice_problem(marketplaces, options, document)
    return None


def _vat_invoice_problem(
    marketplaces: list[object], options: dict[str, str], document: StoredDocument
) -> str | None:
    if not set(marketplaces) <= VAT_MARKETPLACES:
        return "UPLOAD_VAT_INVOICE is not available in this marketplace."
    if not options.get("metadata:OrderId") and not options.get("metadata:ShippingId"):
        return "metadata:OrderId or metadata:ShippingId is required."
    if not options.get("metadata:InvoiceNumber"):
        return "metadata:InvoiceNumber is required."
    document_type = options.get("metadata:DocumentType")
    if document_type not in ("Invoice", "CreditNote"):
        return "metadata:DocumentType must be Invoice or CreditNote."
    if document_type == "CreditNote" and not options.get("metadata:TransactionId"):
        return "metadata:TransactionId is required for a credit note."
    if not all(OPTION_VALUE.match(v) for v in options.values()):
        return "feedOptions hold a character that is not accepted."
    if document.content_type != "application/pdf" or not (document.content or b"").startswith(b"%PDF-"):
        return "The invoice document must be a PDF."
    return None


def _body(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _feed_json(feed: StoredFeed) -> dict[str, object]:
    out: dict[str, object] = {
        "feedId": feed.feed_id,
        "feedType": feed.feed_type,
        "marketplaceIds": feed.marketplace_ids,
        "createdTime": feed.created,
        "processingStatus": feed.status,
    }
    if feed.status == "DONE":
        out["resultFeedDocumentId"] = f"{feed.document_id}.result"
    return out


def _json(status: int, payload: object, operation: str) -> Response:
    headers = {
        "Content-Type": "application/json",
        "x-amzn-RateLimit-Limit": RATE_LIMITS.get(operation, "1.0"),
    }
    return status, headers, json.dumps(payload).encode()


def _error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    return status, {"Content-Type": "application/json"}, body


def _lwa_token(body: bytes) -> Response:
    form = parse_qs(body.decode("utf-8", "replace"))
    if form.get("grant_type") != ["refresh_token"] or not form.get("refresh_token"):
        return 400, {"Content-Type": "application/json"}, b'{"error":"invalid_grant"}'
    token = {"access_token": "Atza|local-feeds-token", "token_type": "bearer", "expires_in": 3600}
    return 200, {"Content-Type": "application/json"}, json.dumps(token).encode()


@dataclass
class RunningFeeds:
    stand_in: FeedsStandIn
    base_url: str

    @property
    def lwa_host(self) -> str:
        """The host part for an `AccessTokenClient` subclass with scheme "http://"."""
        return self.base_url.removeprefix("http://")


@contextmanager
def serve(stand_in: FeedsStandIn | None = None) -> Iterator[RunningFeeds]:
    """Run the stand-in (plus POST /auth/o2/token) over HTTP on 127.0.0.1 and a free port."""
    feeds = stand_in or FeedsStandIn()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            base_url = f"http://127.0.0.1:{port}"
            if self.command == "POST" and url.path == "/auth/o2/token":
                answer: Response | None = _lwa_token(body)
            else:
                answer = feeds.handle(
                    self.command, url.path, parse_qs(url.query), dict(self.headers.items()), body, base_url
                )
            status, headers, payload = answer or _error(404, "NotFound", "Resource not found.")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningFeeds(feeds, f"http://127.0.0.1:{port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
