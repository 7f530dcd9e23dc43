"""Helpers every domain uses (gates, check results, plots, review records, conventions).
They know no domain and nothing above them: domains import this package, never the reverse."""
