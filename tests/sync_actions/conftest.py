"""The provider emulators, for every sync action test here."""

from emulators.fixtures import emulators, fresh_emulators  # noqa: F401 - pytest fixtures
