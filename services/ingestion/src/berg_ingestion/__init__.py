"""Berg ingestion service."""
