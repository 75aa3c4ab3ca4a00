"""The security gates fail when they should: in a temporary clone of the repository, a planted
key makes `make secret-scan` fail, and a planted shell injection makes bandit fail."""

import random
import shlex
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
GIT = shutil.which("git") or "git"
MAKE = shutil.which("make") or "make"

pytestmark = [
    pytest.mark.gate,
    pytest.mark.skipif(
        shutil.which("git") is None or shutil.which("make") is None or not (ROOT / ".git").exists(),
        reason="needs the git work tree",
    ),
]


def _clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    argv = [GIT, "clone", "--quiet", str(ROOT), str(clone)]
    subprocess.run(argv, check=True, timeout=120)  # noqa: S603 - fixed argv, no shell
    return clone


def _makefile_bandit_command() -> list[str]:
    """The bandit command line of `make security`, so the test runs exactly what the gate runs."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (line,) = [ln.strip() for ln in makefile.splitlines() if ln.strip().startswith("$(VENV)/bin/bandit")]
    return shlex.split(line.replace("$(VENV)", str(VENV)))


def _fake_aws_key() -> str:
    # Built at run time so that no key-shaped literal sits in this file.
    return "AKIA" + "".join(random.choices(string.ascii_uppercase + string.digits, k=16))


def test_secret_scan_fails_on_a_planted_key(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    target = clone / "function_app.py"
    target.write_text(
        target.read_text(encoding="utf-8") + f'\nBACKUP_ACCESS_KEY_ID = "{_fake_aws_key()}"\n',
        encoding="utf-8",
    )
    result = subprocess.run(  # noqa: S603 - fixed argv from this repo, no shell
        [MAKE, "--no-print-directory", "-C", str(clone), "secret-scan", f"VENV={VENV}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "function_app.py" in result.stdout
    assert "AWS Access Key" in result.stdout


def test_bandit_fails_on_a_planted_shell_injection(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    planted = clone / "shared" / "planted.py"
    planted.write_text(
        "import subprocess\n\n\ndef run(command: str) -> None:\n    subprocess.call(command, shell=True)\n",
        encoding="utf-8",
    )
    result = subprocess.run(  # noqa: S603 - fixed argv from this repo, no shell
        _makefile_bandit_command(),
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "B602" in result.stdout and "planted.py" in result.stdout
