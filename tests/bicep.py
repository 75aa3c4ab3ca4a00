"""The Bicep in infra/, parsed once per test session. pycep's parser (lark, the parser checkov
uses) takes about half a second to build and then parses a file in milliseconds, so every infra
test shares one parser and each file's parse. The parses are shared: read them, never change
them."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser


@cache
def _parser() -> BicepParser:
    return BicepParser()


@cache
def _parsed(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = _parser().parse(text=path.read_text(encoding="utf-8"))
    return parsed


def parse_bicep(path: Path) -> dict[str, Any]:
    """The file at `path`, parsed by pycep."""
    return _parsed(path.resolve())
