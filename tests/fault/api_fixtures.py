"""Fixtures of the API fault suite (imported by its test modules, not a conftest).

``api`` is one real daemon per database kind and module (SQLite; PostgreSQL
with Redis), launched by tests/support/stack.py's ``launch_stack`` with the
provider emulators, the fake DNS and the receiver of tests/fault/apikit.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from apikit import FakeDNS, Receiver, World, api_stack, seed_world

DB_KINDS = ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])]


@dataclass
class Api:
    stack: object  # support.stack.Stack
    dns: FakeDNS
    receiver: Receiver
    world: World
    kind: str

    @property
    def base(self) -> str:
        return self.stack.base


@pytest.fixture(scope="module")
def receiver():
    made = Receiver()
    yield made
    made.close()


@pytest.fixture(scope="module", params=DB_KINDS)
def api(request, emulators, tmp_path_factory, pg_template, receiver):
    with api_stack(
        request.param, tmp_path_factory.mktemp(f"api-{request.param}"), emulators, pg_template, receiver
    ) as (stack, dns):
        yield Api(stack, dns, receiver, seed_world(stack, receiver), request.param)
