"""Pytest fixtures more than one suite uses, registered once (tests/conftest.py lists this plugin).

- ``stack_launcher``: ``support.stack.launch_stack``, for modules that need a daemon with settings of their own.
- ``stack_per_database(label, env)``: makes a module's ``stack`` fixture, one daemon per database kind.
- ``receiver``: ``receiver(delay=...)`` makes a ``CountingReceiver``; all are stopped after the test.
"""

from __future__ import annotations

import pytest

from support.receivers import CountingReceiver
from support.stack import launch_stack


@pytest.fixture(scope="session")
def stack_launcher():
    """``launch_stack``: a migrated database and a real `nexusctl daemon` on it."""
    return launch_stack


DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def stack_per_database(label: str, env=None):
    """A module's ``stack`` fixture (``stack = stack_per_database("proxy-stack", {...})``): one daemon on the
    emulators per database kind and module (``launch_stack``), with ``env`` added to its settings: a dict, or a
    function of the emulators giving one (a None value removes that setting)."""

    @pytest.fixture(scope="module", params=DATABASES)
    def stack(request, emulators, tmp_path_factory, pg_template):
        extra = env(emulators) if callable(env) else env
        with launch_stack(request.param, tmp_path_factory.mktemp(label), emulators, pg_template, extra) as made:
            yield made

    return stack


@pytest.fixture
def receiver():
    """Webhook receivers counting requests by webhook-id, made with ``receiver(delay=...)``."""
    made: list[CountingReceiver] = []

    def make(delay: float = 0.0) -> CountingReceiver:
        made.append(CountingReceiver(delay))
        return made[-1]

    yield make
    for r in made:
        r.stop()
