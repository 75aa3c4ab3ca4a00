"""Indexes the function app with Microsoft's Python worker library, as the host's worker does.

Run by `tests/unit/test_worker_indexing.py` inside the Python 3.13 venv that holds
`azure-functions-runtime` (requirements-worker.txt): worker init (which indexes
`function_app.py`), then the functions metadata request. Prints one JSON object: the status of
each step, the failure text if any, and each function's metadata as the worker reports it.

The worker's proto message classes are generated inside the host's proxy worker, which is not
published on PyPI, so `protos` here is a namespace whose classes keep the fields the library
sets; every check that decides whether a function loads is the library's own.
"""

import asyncio
import json
import sys
from types import SimpleNamespace
from typing import Any


class _Message:
    """A proto message: keeps the fields the worker library sets on it."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class _StatusResult(_Message):
    Success = 1
    Failure = 0


def _protos() -> SimpleNamespace:
    names = [
        "WorkerInitResponse",
        "FunctionMetadataResponse",
        "RpcFunctionMetadata",
        "BindingInfo",
        "RpcRetryOptions",
        "RpcException",
        "WorkerMetadata",
        "RpcDataType",
    ]
    messages = {name: type(name, (_Message,), {}) for name in names}
    # Enum values as FunctionRpc.proto numbers them (BindingInfo.Direction and .DataType).
    for value, number in {
        "out": 1,
        "inout": 2,
        "undefined": 0,
        "string": 1,
        "binary": 2,
        "stream": 3,
    }.items():
        setattr(messages["BindingInfo"], value, number)
    setattr(messages["BindingInfo"], "in", 0)
    return SimpleNamespace(StatusResult=_StatusResult, **messages)


def _request(kind: str, payload: Any, protos: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(
        request=SimpleNamespace(**{kind: payload}), properties={"host": "127.0.0.1", "protos": protos}
    )


def _status(response: Any) -> dict[str, Any]:
    result = response.result
    exception = getattr(result, "exception", None)
    return {
        "ok": result.status == _StatusResult.Success,
        "error": getattr(exception, "message", None) if exception is not None else None,
    }


async def _index(app_dir: str) -> dict[str, Any]:
    from azure_functions_runtime import handle_event

    protos = _protos()
    init = SimpleNamespace(capabilities={}, function_app_directory=app_dir)
    init_response = await handle_event.worker_init_request(_request("worker_init_request", init, protos))
    out: dict[str, Any] = {"init": _status(init_response), "functions": {}}
    if not out["init"]["ok"]:
        return out
    metadata = await handle_event.functions_metadata_request(
        _request("functions_metadata_request", None, protos)
    )
    out["metadata"] = _status(metadata)
    for fn in metadata.function_metadata_results or []:
        out["functions"][fn.name] = {
            "bindings": [json.loads(raw) for raw in fn.raw_bindings],
            "retry": fn.retry_options is not None,
        }
    return out


def main() -> None:
    app_dir = sys.argv[1]
    sys.path.insert(0, app_dir)
    print(json.dumps(asyncio.run(_index(app_dir))))


if __name__ == "__main__":
    main()
