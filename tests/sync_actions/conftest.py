"""The provider emulators, for every sync action test here."""
