"""The oauth suite's ``stack``: a real `nexusctl daemon` wired to the provider emulators, per database kind.

``stack`` starts one daemon process per database kind and module
(``support.stack.launch_stack``); ``stack.connect(provider, user)`` walks the
whole browser journey and returns the query the frontend receives.
"""

from __future__ import annotations

import pytest

# Old names, kept for tests that import them from here (the code lives in tests/support).
from emulators.testkit import call  # noqa: F401
from support.daemons import (  # noqa: F401
    NEXUSCTL,  # noqa: F401
    PortTaken,
    start_on_free_port,
)
from support.daemons import launch as _start  # noqa: F401
from support.fixtures import stack_per_database
from support.ports import free_port as _free_port  # noqa: F401
from support.stack import ENCRYPTION_KEY, FRONTEND, Stack, launch_stack  # noqa: F401
from support.tokens import JWT_SECRET  # noqa: F401
from support.tokens import mint as token_for  # noqa: F401


@pytest.fixture(autouse=True)
def _earlier_connections_inactive(request):
    """A test on reset emulators (``fresh_emulators``) and a module's daemon (``stack``) starts without the
    connections earlier tests made there (``Stack.deactivate_earlier``): the emulators forgot their tokens, and
    the shared clock, which never goes back, would bring them into the sweep with this test's."""
    if "fresh_emulators" in request.fixturenames and "stack" in request.fixturenames:
        request.getfixturevalue("stack").deactivate_earlier()


# The WooCommerce store a user names is the emulator on 127.0.0.1: a user-supplied URL, so the SSRF guard refuses
# it unless the allow-list admits it, as a developer's local store would need.
stack = stack_per_database("oauth-stack", {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32"})
