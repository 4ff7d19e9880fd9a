"""Sync actions: each provider's real list endpoints, page by page (see base.py)."""
