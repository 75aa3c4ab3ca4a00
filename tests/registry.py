"""The app's registered functions, built once per test process."""

import functools

from azure.functions.decorators.function_app import Function

import function_app


@functools.cache
def registered() -> tuple[Function, ...]:
    # get_functions() builds the index anew and refuses a second build in one process.
    return tuple(function_app.app.get_functions())
