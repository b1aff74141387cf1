"""Kafka (confluent-kafka): consumers and producers for a named connection, with retries."""

from __future__ import annotations

from typing import Any

import dagster as dg
from confluent_kafka import Consumer, KafkaException, Producer
from pydantic import Field

from resources.retry import with_retries


class KafkaResource(dg.ConfigurableResource):
    """A Kafka cluster; `bootstrap_servers` and SASL secrets come from `EnvVar`s."""

    name: str = Field(default="kafka", description="the connection's name, used in errors")
    bootstrap_servers: str = Field(description="host:port[,host:port...]")
    security_protocol: str | None = Field(default=None, description="e.g. SASL_SSL")
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = Field(default=None, description="never logged")
    connect_retries: int = Field(default=3, ge=0)
    connect_backoff_seconds: float = Field(default=0.5, ge=0)
    timeout_seconds: float = Field(default=10, gt=0)

    @classmethod
    def from_connection(cls, conn: Any) -> KafkaResource:
        """From an `etl_assets.connections.ResolvedConnection` of type kafka."""
        s = conn.settings
        return cls(
            name=conn.name,
            bootstrap_servers=conn.url or conn.require("bootstrap_servers"),
            security_protocol=s.get("security_protocol"),
            sasl_mechanism=s.get("sasl_mechanism"),
            sasl_username=s.get("sasl_username") or s.get("username"),
            sasl_password=s.get("sasl_password") or s.get("password"),
        )

    def client_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        for key, value in (
            ("security.protocol", self.security_protocol),
            ("sasl.mechanism", self.sasl_mechanism),
            ("sasl.username", self.sasl_username),
            ("sasl.password", self.sasl_password),
        ):
            if value:
                cfg[key] = value
        return cfg

    def _scrub(self, text: str) -> str:
        return text.replace(self.sasl_password, "***") if self.sasl_password else text

    def _check(self, client: Any) -> None:
        """Fetch cluster metadata, retrying with backoff: fails fast on an unreachable broker."""
        with_retries(
            lambda: client.list_topics(timeout=self.timeout_seconds),
            what=f"Kafka connection {self.name!r} ({self.bootstrap_servers})",
            retries=self.connect_retries,
            backoff_seconds=self.connect_backoff_seconds,
            retry_on=(KafkaException,),
            scrub=self._scrub,
        )

    def consumer(self, group_id: str, **overrides: Any):
        """A consumer without auto-commit: offsets are committed explicitly."""
        cfg = {
            **self.client_config(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            **overrides,
        }
        consumer = Consumer(cfg)
        try:
            self._check(consumer)
        except Exception:
            consumer.close()
            raise
        return consumer

    def producer(self, **overrides: Any):
        producer = Producer(
            {**self.client_config(), "linger.ms": 20, "enable.idempotence": False, **overrides}
        )
        self._check(producer)
        return producer
