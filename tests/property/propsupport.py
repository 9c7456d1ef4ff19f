"""Shared by the property tests: run a hypothesis test under the pytest `seed`."""

from __future__ import annotations

from collections.abc import Callable

import hypothesis
from hypothesis import HealthCheck, settings


def run_seeded(seed: int, max_examples: int) -> Callable[[Callable[..., None]], None]:
    """Run a @given test under hypothesis with the pytest `seed`."""

    def run(test: Callable[..., None]) -> None:
        configured = settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            print_blob=True,
            suppress_health_check=[HealthCheck.too_slow],
        )(test)
        hypothesis.seed(seed)(configured)()

    return run
