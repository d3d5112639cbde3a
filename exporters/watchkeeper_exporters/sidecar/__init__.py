"""The ``watchkeeper-exporter`` sidecar: Redis, PostgreSQL and PgBouncer targets, one process."""
