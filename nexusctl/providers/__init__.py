"""What we know about each provider, and their HTTP clients (see issue 4)."""
