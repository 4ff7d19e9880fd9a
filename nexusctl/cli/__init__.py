"""The Typer CLI: one sub-app per noun; a command is parse -> core call -> render."""
