"""Observability shared by every service: JSON logs and health/readiness checks."""
