"""The emulator fixtures for this package's own tests."""

from .fixtures import emulators, fresh_emulators  # noqa: F401 - pytest fixtures
