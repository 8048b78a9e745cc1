"""Berg validation service."""
