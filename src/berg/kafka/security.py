"""Who a Berg client is on the broker: the security settings of every Kafka client Berg builds.

Every producer, consumer and admin client takes ``**client_security(settings)``, so a
deployment that turns on SASL or TLS (``BERG_<SERVICE>_KAFKA__SECURITY_PROTOCOL`` and the
fields beside it in :class:`~berg.settings.KafkaSettings`) turns it on for all of them.

Example:
    >>> KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, **client_security(settings))
"""

from __future__ import annotations

from typing import Any

from berg.settings import KafkaSettings

__all__ = ["client_security"]


def client_security(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python's keyword arguments for the protocol, SASL credentials and CA of ``settings``.

    Only what the protocol uses is passed: kafka-python's defaults stand for the rest. The
    password is revealed here and only here, into the client's own configuration.

    Raises:
        ValueError: a ``SASL_*`` protocol without a username or password (settings built
            without validation; :class:`~berg.settings.KafkaSettings` refuses them at start-up).
    """
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol.startswith("SASL_"):
        if settings.sasl_username is None or settings.sasl_password is None:
            raise ValueError(f"security_protocol {settings.security_protocol} needs sasl_username and sasl_password")
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    if settings.security_protocol.endswith("SSL") and settings.ssl_cafile is not None:
        options["ssl_cafile"] = str(settings.ssl_cafile)
    return options
