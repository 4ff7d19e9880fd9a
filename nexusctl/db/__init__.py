"""Persistence: database binding, models, portable fields, migrations."""
