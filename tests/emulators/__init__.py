"""Local emulators of the 20 providers nexusctl connects to, strict about each protocol.

    from tests.emulators import Emulators

    with Emulators() as emu:          # one aiohttp server on 127.0.0.1:<free port>
        env = emu.env()               # <P>_CLIENT_ID / _CLIENT_SECRET / _AUTH_URL / _TOKEN_URL / _API_URL / _REVOKE_URL
        emu["TIKTOK"].fail_next("refresh", status=503)

Every real URL ``https://{host}{path}`` is served at ``{emu.base_url}/{provider_lower}/{host}{path}``.
The pytest fixture ``emulators`` (session-scoped) lives in ``tests.emulators.fixtures``
(registered once by tests/conftest.py).
"""

from .base import Provider
from .server import PROVIDERS, Emulators

__all__ = ["PROVIDERS", "Emulators", "Provider"]
