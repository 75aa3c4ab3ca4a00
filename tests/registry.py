"""The app's registered functions, built once per test process, and a way to run one as the
host does on a runtime holding only the parts a test gives."""

import dataclasses
import functools
from typing import Any

from azure.functions.decorators.function_app import Function

import function_app
from shared.app import runtime


@functools.cache
def registered() -> tuple[Function, ...]:
    # get_functions() builds the index anew and refuses a second build in one process.
    return tuple(function_app.app.get_functions())


def run_function(name: str, parts: dict[str, Any], *calls: tuple[Any, ...]) -> None:
    """Calls the registered function `name` once per argument tuple in `calls`, on a runtime
    made of `parts` (every other part None), installed for the calls only."""
    (function,) = [f for f in registered() if f.get_function_name() == name]
    empty = {f.name: None for f in dataclasses.fields(runtime.Runtime)}
    runtime.install(runtime.Runtime(**{**empty, **parts}))
    try:
        for args in calls:
            function.get_user_function()(*args)
    finally:
        runtime.install(None)
