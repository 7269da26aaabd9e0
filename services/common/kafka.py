"""Kafka connection options shared by every client the services create (aiokafka and faust)."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from services.common.settings import CommonSettings


def ssl_context(settings: CommonSettings) -> ssl.SSLContext | None:
    """A verifying TLS context when the protocol uses TLS, else None."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    return context


def client_kwargs(settings: CommonSettings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value() if password else None,
        )
    return kwargs
