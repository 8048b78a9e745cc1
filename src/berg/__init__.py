"""Berg core library: settings, event contracts, Kafka I/O, observability, the web app factory and the local stack."""

__all__ = ["__version__"]

__version__ = "0.1.0"
