"""Cluster deployment: PostgreSQL, Redis, the dagster-daemon and Celery workers (docs/scaling-out.md)."""
