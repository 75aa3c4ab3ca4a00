"""The compliance map names only files that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_named_file_exists() -> None:
    text = (ROOT / "docs" / "compliance.md").read_text()
    paths = set(
        re.findall(r"`((?:shared|tests|infra|functions|docs|\.github)/[^`]*|azure-pipelines\.yml)`", text)
    )
    assert len(paths) > 30
    missing = sorted(p for p in paths if not (ROOT / p.rstrip("/")).exists())
    assert not missing, missing
