"""Amazon's models judge every SP-API stand-in an integration test talks to (issue 23).

Each stand-in (SP-API orders, Shipping v2, Feeds) checks the requests the app sends it and the
JSON it answers against Amazon's own models (local/amazon_models.py) and reports to one ledger
for the process. After every integration test this fixture fails the test on any violation
(printed as operation, path template, JSON pointer and rule, never a value); the exchanges
judged over the session are counted in the terminal summary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from local.amazon_models import LEDGER, report

_EXCHANGES: Counter[str] = Counter()  # per operationId, over the session
_VIOLATIONS: list[int] = [0]


@pytest.fixture(autouse=True)
def amazon_models_judge_the_stand_ins() -> Iterator[None]:
    LEDGER.take()  # what earlier (unit) tests' stand-ins judged is theirs
    yield
    exchanges, violations = LEDGER.take()
    _EXCHANGES.update(exchanges)
    _VIOLATIONS[0] += len(violations)
    if violations:
        pytest.fail(
            f"{len(violations)} violations of Amazon's models in this test:\n{report(violations, 50)}",
            pytrace=False,
        )


@pytest.fixture(scope="session", autouse=True)
def amazon_models_count(judged: Callable[[str, str], None]) -> Iterator[None]:
    """What the models judged over the session, in make test's summary of outside judges."""
    yield
    total = sum(_EXCHANGES.values())
    if total or _VIOLATIONS[0]:
        operations = ", ".join(f"{op} {n}" for op, n in sorted(_EXCHANGES.items()))
        # Said beside the count, so no one reads it as covering them: e.g. LWA's token endpoint,
        # which has no Swagger model, and any API whose model is not beside the repository.
        unmodelled = ", ".join(f"{area} {n}" for area, n in sorted(LEDGER.take_unmodelled().items()))
        judged(
            "model validation of the stand-in exchanges (Amazon's models)",
            f"{total} exchanges in integration tests ({operations}), {_VIOLATIONS[0]} violations;"
            f" not judged, no model beside the repository: {unmodelled or 'none'}",
        )
