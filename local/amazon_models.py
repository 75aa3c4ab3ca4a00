"""Amazon's own Selling Partner API models judge the local stand-ins (development only).

The models are Amazon's Swagger 2.0 files, kept beside the repository in
`../shared/amazon-models` (never copied into it). `AmazonModels` loads them and finds the
operation for an HTTP method and a concrete path (matched against the models' path templates,
`{orderId}` and the like). `ModelJudge` checks one exchange with them:

- the request: the body against the operation's `in: body` parameter schema, and the query and
  header parameters the operation declares (required ones present; enums, integer bounds, list
  lengths and date-times as declared);
- the response: its status must be one the operation declares, and its JSON body must match the
  schema declared for that status.

Schemas are checked with jsonschema's Draft 4 validator (the dialect Swagger 2.0 builds on),
with `#/definitions/...` resolved inside the model file. Swagger 2.0 has no `null` type: a
property declared `type: string` that is null is a violation, unless the model marks it
`x-nullable: true` (honoured here, though Amazon's current models use it nowhere).
`additionalProperties` is allowed unless a schema says otherwise, as in Swagger.

A violation names the operation, the model's path template, the direction, a JSON pointer and
the rule broken, never a value: the bodies are synthetic buyer data, and the concrete path holds
an Amazon order id. The judge counts every exchange it checked.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

ROOT = Path(__file__).resolve().parent.parent
#: Amazon's models, beside the repository (shared/ of the workplace), never inside it.
MODELS_DIR = ROOT.parent / "shared" / "amazon-models"
#: The Swagger models of the APIs the app calls (or may call) and the stand-ins imitate.
API_MODELS = (
    "orders_2026-01-01.json",
    "ordersV0.json",
    "shippingV2.json",
    "feeds_2021-06-30.json",
    "notifications.json",
    "tokens_2021-03-01.json",
)
#: Models judged when they are there: the Application Management API (rotateApplicationClientSecret,
#: local/spapi_application.py) is not yet among the models beside the repository.
OPTIONAL_MODELS = ("application_2023-11-30.json",)
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MARKETPLACE_ID = re.compile(r"A[0-9A-Z]{9,13}")


class ModelsMissing(FileNotFoundError):
    """Amazon's models are not beside the repository."""


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # format applies to strings only
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


FORMATS = FormatChecker(formats=())
FORMATS.checks("date-time")(_is_date_time)
FORMATS.checks("date")(_is_date)


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (operation, template, direction, JSON pointer) and which rule,
    never the offending value."""

    model: str
    operation: str
    template: str
    direction: str  # "request" or "response"
    pointer: str
    message: str

    def __str__(self) -> str:
        where = self.pointer or "(body)"
        return f"{self.operation} {self.direction} {self.template} at {where}: {self.message}"


def _nullable(node: Any) -> Any:
    """Swagger's `x-nullable: true` as Draft 4 understands it (a `null` type, or anyOf)."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items()}
    if out.get("x-nullable") is True:
        if "$ref" in out:
            return {"anyOf": [{"type": "null"}, {"$ref": out["$ref"]}]}
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _absolute_refs(node: Any, uri: str) -> Any:
    """A copy of `node` whose local refs (`#/definitions/X`) name the model's resource."""
    if isinstance(node, list):
        return [_absolute_refs(n, uri) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _absolute_refs(v, uri) for k, v in node.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        out["$ref"] = uri + ref
    return out


def _pointer(parts: Sequence[object]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _message(error: ValidationError) -> str:
    """The rule an error broke, in words that never quote the instance."""
    rule, expected, instance = error.validator, error.validator_value, error.instance
    if rule == "type":
        return f"type: expected {expected}, got {_json_type(instance)}"
    if rule == "required":
        present = instance if isinstance(instance, dict) else {}
        missing = [name for name in expected if name not in present]
        return "required: missing " + ", ".join(missing)
    if rule == "enum":
        return f"enum: not one of the {len(expected)} values the model allows"
    if rule == "format":
        return f"format: not a {expected}"
    if rule == "additionalProperties":
        return "additionalProperties: a property the model does not allow"
    if rule in ("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties"):
        return f"{rule}: the model's limit is {expected}"
    if rule in ("maximum", "minimum", "multipleOf"):
        return f"{rule}: the model's bound is {expected}"
    if rule == "pattern":
        return "pattern: does not match the model's pattern"
    if rule in ("anyOf", "oneOf", "allOf", "not"):
        return f"{rule}: matches the model's alternatives wrongly"
    if rule == "uniqueItems":
        return "uniqueItems: repeated items"
    return f"{rule}: broken"


@dataclass(frozen=True)
class Operation:
    model: str
    operation_id: str
    method: str
    template: str
    parameters: tuple[Mapping[str, Any], ...]
    responses: Mapping[str, Any]


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    literal: int  # characters outside {placeholders}: the more, the more specific
    operations: Mapping[str, Operation]


class AmazonModels:
    """Amazon's Swagger models, their path templates and compiled validators (thread-safe)."""

    def __init__(self, models: Mapping[str, Mapping[str, Any]]) -> None:
        registry: Registry[Any] = Registry()
        self._routes: list[_Route] = []
        self.models: dict[str, dict[str, Any]] = {}
        for name, raw in models.items():
            model = _nullable(copy.deepcopy(dict(raw)))
            self.models[name] = model
            registry = registry.with_resource(self.uri(name), Resource(model, DRAFT4))
            for template, item in (model.get("paths") or {}).items():
                self._routes.append(self._route(name, template, item))
        self._routes.sort(key=lambda r: -r.literal)
        self._registry = registry.crawl()
        self._validators: dict[tuple[str, str], Draft4Validator] = {}
        self._lock = threading.Lock()

    @staticmethod
    def uri(name: str) -> str:
        return f"urn:amazon-model:{name}"

    @classmethod
    def load(cls, directory: Path = MODELS_DIR, names: Sequence[str] = API_MODELS) -> AmazonModels:
        missing = [n for n in names if not (directory / n).is_file()]
        if missing:
            raise ModelsMissing(f"Amazon's models not found in {directory}: {', '.join(missing)}")
        present = [*names, *(n for n in OPTIONAL_MODELS if n not in names and (directory / n).is_file())]
        return cls({n: json.loads((directory / n).read_text(encoding="utf-8")) for n in present})

    @staticmethod
    def _route(name: str, template: str, item: Mapping[str, Any]) -> _Route:
        shared = [p for p in item.get("parameters") or [] if isinstance(p, dict)]
        operations = {}
        for method, op in item.items():
            if method not in METHODS or not isinstance(op, dict):
                continue  # "parameters", vendor extensions
            own = [p for p in op.get("parameters") or [] if isinstance(p, dict)]
            keys = {(p.get("name"), p.get("in")) for p in own}
            params = tuple(own + [p for p in shared if (p.get("name"), p.get("in")) not in keys])
            operations[method.upper()] = Operation(
                name, str(op.get("operationId") or method), method.upper(), template, params, op["responses"]
            )
        parts = re.split(r"(\{[^}]+\})", template)
        regex = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
        literal = len(re.sub(r"\{[^}]+\}", "", template))
        return _Route(re.compile(f"^{regex}$"), literal, operations)

    def operation(self, method: str, path: str) -> Operation | None:
        for route in self._routes:
            if route.pattern.match(path):
                found = route.operations.get(method.upper())
                if found is not None:
                    return found
        return None

    def operations(self) -> Iterator[Operation]:
        for route in self._routes:
            yield from route.operations.values()

    def validator(self, model: str, schema: Mapping[str, Any]) -> Draft4Validator:
        key = (model, json.dumps(schema, sort_keys=True))
        with self._lock:
            found = self._validators.get(key)
            if found is None:
                found = Draft4Validator(
                    _absolute_refs(schema, self.uri(model)),
                    registry=self._registry,
                    format_checker=FORMATS,
                )
                self._validators[key] = found
            return found

    def marketplace_ids(self) -> set[str]:
        """Every marketplace id the models name: the values (examples, defaults, enums) of their
        `marketplaceId`/`marketplaceIds` fields and parameters that have a marketplace id's shape."""
        found: set[str] = set()

        def walk(node: object, marketplace: bool) -> None:
            if isinstance(node, Mapping):
                named = marketplace or "marketplaceid" in str(node.get("name", "")).lower()
                for key, value in node.items():
                    walk(value, named or "marketplaceid" in str(key).lower())
            elif isinstance(node, list):
                for value in node:
                    walk(value, marketplace)
            elif marketplace and isinstance(node, str) and _MARKETPLACE_ID.fullmatch(node):
                found.add(node)

        walk(self.models, False)
        return found

    def schema_errors(self, model: str, schema: Mapping[str, Any], instance: object) -> list[tuple[str, str]]:
        """(JSON pointer, rule broken) for each way `instance` breaks `schema`, pointer order."""
        errors = self.validator(model, schema).iter_errors(instance)
        return sorted((_pointer(list(e.absolute_path)), _message(e)) for e in errors)


@functools.lru_cache(maxsize=4)
def _cached(directory: Path) -> AmazonModels:
    return AmazonModels.load(directory)


def load_models(directory: Path = MODELS_DIR) -> AmazonModels:
    """The models of `directory`, loaded once per process."""
    return _cached(directory)


# ---- parameters -------------------------------------------------------------------------------


def _values(raw: Sequence[str], param: Mapping[str, Any]) -> list[str]:
    """A query value as a list, split as its collectionFormat says (csv unless `multi`)."""
    separators = {"csv": ",", "ssv": " ", "tsv": "\t", "pipes": "|"}
    fmt = str(param.get("collectionFormat") or "csv")
    if fmt == "multi":
        return list(raw)
    return [part for value in raw for part in value.split(separators.get(fmt, ","))]


def _scalar_problem(value: str, spec: Mapping[str, Any]) -> str | None:
    kind = spec.get("type")
    if kind in {"integer", "number"}:
        try:
            number = int(value) if kind == "integer" else float(value)
        except ValueError:
            return f"type: expected {kind}"
        if "minimum" in spec and number < spec["minimum"]:
            return f"minimum: the model's bound is {spec['minimum']}"
        if "maximum" in spec and number > spec["maximum"]:
            return f"maximum: the model's bound is {spec['maximum']}"
    if kind == "boolean" and value not in ("true", "false"):
        return "type: expected boolean"
    if "enum" in spec and value not in [str(v) for v in spec["enum"]]:
        return f"enum: not one of the {len(spec['enum'])} values the model allows"
    if spec.get("format") == "date-time" and not _is_date_time(value):
        return "format: not a date-time"
    if "maxLength" in spec and len(value) > int(spec["maxLength"]):
        return f"maxLength: the model's limit is {spec['maxLength']}"
    if "minLength" in spec and len(value) < int(spec["minLength"]):
        return f"minLength: the model's limit is {spec['minLength']}"
    return None


def _parameter_problems(param: Mapping[str, Any], raw: Sequence[str] | None) -> list[str]:
    if raw is None:
        return ["required: missing"] if param.get("required") else []
    if param.get("type") == "array":
        values = _values(raw, param)
        problems = []
        if "maxItems" in param and len(values) > int(param["maxItems"]):
            problems.append(f"maxItems: the model's limit is {param['maxItems']}")
        if "minItems" in param and len(values) < int(param["minItems"]):
            problems.append(f"minItems: the model's limit is {param['minItems']}")
        items = param.get("items") or {}
        problems += sorted({p for v in values if (p := _scalar_problem(v, items)) is not None})
        return problems
    if len(raw) > 1:
        return ["repeated: the model declares one value"]
    problem = _scalar_problem(raw[0], param)
    return [problem] if problem else []


# ---- the judge --------------------------------------------------------------------------------


class Ledger:
    """Every judge of the process also reports here, so a test can see what all the stand-ins it
    started (in fixtures or inside the test) judged, without holding them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exchanges: Counter[str] = Counter()
        self._violations: list[Violation] = []
        self._unmodelled: Counter[str] = Counter()

    def record(self, operation: str, violations: Sequence[Violation]) -> None:
        with self._lock:
            self._exchanges[operation] += 1
            self._violations.extend(violations)

    def unmodelled(self, path: str) -> None:
        """Count an exchange no model beside the repository covers, by its path's first two
        segments (never an id deeper in it)."""
        area = "/" + "/".join(path.split("?", 1)[0].strip("/").split("/")[:2])
        with self._lock:
            self._unmodelled[area] += 1

    def take_unmodelled(self) -> Counter[str]:
        """The exchanges no model judged (per path area) since the last call."""
        with self._lock:
            taken, self._unmodelled = self._unmodelled, Counter()
            return taken

    def take(self) -> tuple[Counter[str], list[Violation]]:
        """The exchanges (per operationId) and violations since the last take."""
        with self._lock:
            taken = (self._exchanges, self._violations)
            self._exchanges, self._violations = Counter(), []
            return taken


LEDGER = Ledger()


class ModelJudge:
    """Checks exchanges against Amazon's models; keeps the violations and counts the exchanges.

    `judge()` returns False (and counts nothing) for a path no model covers (the LWA token
    endpoint, a presigned upload URL). Thread-safe: the stand-ins serve from many threads."""

    def __init__(self, models: AmazonModels | None) -> None:
        self.models = models
        self.violations: list[Violation] = []
        #: Exchanges checked, per operationId.
        self.exchanges: Counter[str] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def default(cls, directory: Path = MODELS_DIR) -> ModelJudge:
        """A judge with the models beside the repository; without models (they are not there)
        it judges nothing, and `missing` says so."""
        try:
            return cls(load_models(directory))
        except ModelsMissing:
            return cls(None)

    @classmethod
    def off(cls) -> ModelJudge:
        """A judge that judges nothing: for a test that sends what the models forbid on purpose
        (to see the stand-in refuse it)."""
        return cls(None)

    @property
    def missing(self) -> bool:
        return self.models is None

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.exchanges.values())

    def judge(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Sequence[str]],
        headers: Mapping[str, str],
        body: bytes,
        status: int,
        response: bytes,
    ) -> bool:
        if self.models is None:
            return False
        operation = self.models.operation(method, path)
        if operation is None:
            LEDGER.unmodelled(path)
            return False
        found = self.request_violations(operation, query, headers, body)
        found += self.response_violations(operation, status, response)
        with self._lock:
            self.exchanges[operation.operation_id] += 1
            self.violations.extend(found)
        LEDGER.record(operation.operation_id, found)
        return True

    def record(self, operation: str, violations: Sequence[Violation]) -> None:
        """Count one exchange judged outside `judge` (an ORDER_CHANGE notification checked against
        Amazon's JSON schema by local/spapi_notifications.py) and keep its violations."""
        with self._lock:
            self.exchanges[operation] += 1
            self.violations.extend(violations)
        LEDGER.record(operation, violations)

    def request_violations(
        self,
        operation: Operation,
        query: Mapping[str, Sequence[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> list[Violation]:
        assert self.models is not None  # noqa: S101 - judge() checked
        found: list[Violation] = []

        def add(pointer: str, message: str) -> None:
            found.append(
                Violation(
                    operation.model, operation.operation_id, operation.template, "request", pointer, message
                )
            )

        lowered = {k.lower(): v for k, v in headers.items()}
        for param in operation.parameters:
            where, name = param.get("in"), str(param.get("name"))
            if where == "query":
                for problem in _parameter_problems(param, query.get(name)):
                    add(f"?{name}", problem)
            elif where == "header":
                value = lowered.get(name.lower())
                for problem in _parameter_problems(param, None if value is None else [value]):
                    add(f"header {name}", problem)
            elif where == "body":
                if not body:
                    if param.get("required"):
                        add("", "required: the model requires a body")
                    continue
                try:
                    data = json.loads(body)
                except ValueError:
                    add("", "body is not JSON")
                    continue
                for pointer, message in self.models.schema_errors(
                    operation.model, param.get("schema") or {}, data
                ):
                    add(pointer, message)
        return found

    def response_violations(self, operation: Operation, status: int, response: bytes) -> list[Violation]:
        assert self.models is not None  # noqa: S101 - judge() checked

        def violation(pointer: str, message: str) -> Violation:
            return Violation(
                operation.model, operation.operation_id, operation.template, "response", pointer, message
            )

        declared = operation.responses.get(str(status)) or operation.responses.get("default")
        if declared is None:
            return [violation("", f"status {status} is not one the model declares")]
        schema = declared.get("schema")
        if schema is None:
            return []
        if not response:
            return [violation("", f"status {status} has no body where the model declares one")]
        try:
            data = json.loads(response)
        except ValueError:
            return [violation("", "body is not JSON")]
        return [violation(p, m) for p, m in self.models.schema_errors(operation.model, schema, data)]

    # ---- reporting ---------------------------------------------------------------------------

    def snapshot(self) -> tuple[int, list[Violation]]:
        with self._lock:
            return sum(self.exchanges.values()), list(self.violations)

    def clear(self) -> None:
        with self._lock:
            self.violations.clear()

    def report(self, limit: int = 20) -> str:
        return report(self.snapshot()[1], limit)

    def assert_clean(self) -> None:
        """Raises AssertionError naming every kind of violation (never a value)."""
        _, violations = self.snapshot()
        if violations:
            kinds = report(violations, 50)
            raise AssertionError(f"{len(violations)} violations of Amazon's models:\n{kinds}")


_INDEX = re.compile(r"/\d+(?=/|$)")


def report(violations: Sequence[Violation], limit: int = 20) -> str:
    """One line per kind of violation (array indices folded to `*`) with its count, PII-free."""
    counts = Counter(_INDEX.sub("/*", str(v)) for v in violations)
    lines = [f"{n} x {text}" for text, n in counts.most_common(limit)]
    if len(counts) > limit:
        lines.append(f"... and {len(counts) - limit} more kinds")
    return "\n".join(lines)
