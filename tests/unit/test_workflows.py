"""The scheduled security pipelines (GitHub Actions and Azure Pipelines) parse, run weekly, and
call the same make targets and pip-audit commands; every make target they call exists."""

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".github" / "workflows" / "security.yml"
AZURE = ROOT / "azure-pipelines.yml"
INSTALL = ROOT / ".github" / "workflows" / "install.yml"
MAKE = re.compile(r"^\s*make\s+([^\n]*)", re.MULTILINE)
GATES = {"security", "checkov", "sbom-check"}


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _github_commands() -> list[str]:
    jobs = _load(GITHUB)["jobs"]
    return [step["run"] for job in jobs.values() for step in job["steps"] if "run" in step]


def _azure_commands() -> list[str]:
    jobs = _load(AZURE)["jobs"]
    return [step["script"] for job in jobs for step in job["steps"] if "script" in step]


def _make_targets(commands: list[str]) -> set[str]:
    targets = set()
    for command in commands:
        for args in MAKE.findall(command):
            targets |= {a for a in args.split() if "=" not in a and not a.startswith("-")}
    return targets


def _audit_lines(commands: list[str]) -> list[str]:
    return [line.strip() for c in commands for line in c.splitlines() if "pip-audit" in line]


def _weekly(cron: str) -> bool:
    _minute, _hour, day, month, weekday = cron.split()
    return day == "*" and month == "*" and weekday not in ("*", "?")


def test_both_pipelines_run_weekly_and_on_push() -> None:
    github = _load(GITHUB)
    # YAML 1.1 reads the bare key `on` as True.
    triggers = github.get("on", github.get(True))
    assert any(_weekly(s["cron"]) for s in triggers["schedule"])
    assert "push" in triggers
    azure = _load(AZURE)
    assert any(_weekly(s["cron"]) and s["always"] for s in azure["schedules"])
    assert "main" in azure["trigger"]["branches"]["include"]


def test_both_pipelines_call_the_same_make_targets() -> None:
    github, azure = _make_targets(_github_commands()), _make_targets(_azure_commands())
    assert github == azure
    assert github >= GATES


def test_every_target_they_call_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    defined = set(re.findall(r"^([A-Za-z0-9_./$()-]+):", makefile, re.MULTILINE))
    defined = {t.replace("$(VENV)", ".venv") for t in defined}
    assert _make_targets(_github_commands()) <= defined


def test_both_audit_every_requirements_file_against_osv_and_pypi() -> None:
    github, azure = _audit_lines(_github_commands()), _audit_lines(_azure_commands())
    assert github == azure
    joined = "\n".join(github)
    assert "--vulnerability-service osv" in joined and "--vulnerability-service pypi" in joined
    assert all("--require-hashes" in line for line in github)
    listed = " ".join(_github_commands())
    for requirements in ROOT.glob("requirements*.txt"):
        assert requirements.name in listed, f"{requirements.name} is not audited"


def test_a_daily_workflow_installs_every_lock_in_clean_venvs() -> None:
    install = _load(INSTALL)
    triggers = install.get("on", install.get(True))
    assert any(s["cron"].split()[2:] == ["*", "*", "*"] for s in triggers["schedule"])
    commands = [step["run"] for job in install["jobs"].values() for step in job["steps"] if "run" in step]
    assert _make_targets(commands) == {"test-install", ".venv-checkov/.installed"}
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert makefile.count("--require-hashes --no-deps") == 3
    assert makefile.count("-m pip check") == 3
