"""The long-running side: HTTP API, OAuth callback, delivery worker, jobs."""
