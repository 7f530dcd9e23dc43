"""Entry points above the code location: the CLI, the UI launcher and the demo runner."""
