"""Test support shared by every suite: one definition of each helper.

Import it as ``support`` (tests/ is on sys.path through the root conftest, the
same way ``pg_pool`` and ``emulators`` are reached):

- ``support.ports``: ``free_port`` (for servers we do not bind ourselves) and ``closed_port``.
- ``support.waiting``: ``wait_for``, polling a condition with a deadline.
- ``support.clock``: the shared clock (``now``, ``pass_until``, ``moved``): time moves for daemons and emulators.
- ``support.tokens``: ``mint`` and ``auth_header``, HS256 bearer tokens as the daemon verifies them.
- ``support.receivers``: webhook receivers on their own threads (counting, behaving, two-address).
- ``support.servers``: a PostgreSQL cluster and a redis-server of the test's own.
- ``support.daemons``: `nexusctl daemon` processes started ready and stopped for sure.
- ``support.terminal``: nexusctl with stderr on a pseudo-terminal (``stderr_on_pty``) or piped (``piped_run``).
- ``support.stack``: a daemon wired to the provider emulators on a fresh database (``launch_stack``).
- ``support.callers``: what a service calling a stack's daemon does (``connected``, ``bearer``, ``proxy``,
  ``raw_request``, ``download``).
- ``support.fixtures``: the pytest fixtures several suites use, registered once by tests/conftest.py.
"""
