"""Microsoft's Python worker library indexes function_app.py as the host's worker does, in its
own Python 3.13 venv (.venv-worker, from requirements-worker.txt): the app loads, and each
function has exactly the bindings of the table test_wiring also holds the library to."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.function_table import FUNCTIONS, by_name

ROOT = Path(__file__).resolve().parents[2]
WORKER_PYTHON = ROOT / ".venv-worker" / "bin" / "python"

pytestmark = pytest.mark.gate


def _index(app_dir: Path) -> dict[str, Any]:
    assert WORKER_PYTHON.exists(), "no worker venv: run `make .venv-worker/.installed` (make test does)"
    done = subprocess.run(  # noqa: S603  our own script, in our own venv
        [str(WORKER_PYTHON), str(ROOT / "tests" / "worker" / "index_app.py"), str(app_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def indexed() -> dict[str, Any]:
    return _index(ROOT)


def test_the_worker_loads_the_app(indexed: dict[str, Any]) -> None:
    assert indexed["init"] == {"ok": True, "error": None}
    assert indexed["metadata"] == {"ok": True, "error": None}


def test_the_worker_indexes_exactly_the_functions_and_bindings_of_the_table(
    indexed: dict[str, Any], judged: Any
) -> None:
    functions = indexed["functions"]
    assert set(functions) == set(FUNCTIONS)
    for name, expected in FUNCTIONS.items():
        assert by_name(functions[name]["bindings"]) == by_name(expected), name
    judged(
        "worker indexing (azure-functions-runtime)", f"{len(functions)} functions, bindings as in the table"
    )


def test_the_worker_finds_no_retry_policy(indexed: dict[str, Any]) -> None:
    assert [name for name, fn in indexed["functions"].items() if fn["retry"]] == []


def test_the_worker_refuses_an_annotation_it_cannot_bind(tmp_path: Path) -> None:
    # The check this test relies on can fail: Out[list[str]] is what the app once had.
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp()\n"
        "@app.queue_trigger(arg_name='msg', queue_name='q', connection='STORAGE')\n"
        "@app.queue_output(arg_name='out', queue_name='o', connection='STORAGE')\n"
        "def f(msg: func.QueueMessage, out: func.Out[list[str]]) -> None: ...\n"
    )
    result = _index(tmp_path)
    assert result["init"]["ok"] is False
    assert "invalid non-type annotation" in result["init"]["error"]
