"""Alerts to people: email and chat webhooks through apprise, and JSON events on Kafka.

The apprise URLs (`DM_ALERT_URLS`, separated by spaces or new lines) may carry passwords, so they
stay an `EnvVar` read where the sensor runs; they are never logged (errors name the scheme only).
Examples: `mailtos://user:pass@smtp.example.org?to=ops@example.org`, `json://chat.example.org/hook`,
`slack://…`, `msteams://…` — every service apprise knows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import apprise
import dagster as dg
from pydantic import Field

from resources.kafka import KafkaResource


@dataclass(frozen=True)
class Delivery:
    """Where one alert went: each channel's scheme and whether it accepted the message."""

    channel: str
    ok: bool


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go, and the UI's address for links to a run."""

    urls: str | None = Field(default=None, description="apprise URLs (secret: may hold passwords)")
    base_url: str = Field(default="http://127.0.0.1:3000", description="the Dagster UI's address")
    kafka_topic: str = Field(default="dm.alerts", description="topic of the Kafka alert events")
    on_publish: bool = Field(
        default=False, description="also message the URLs per published version"
    )

    def url_list(self) -> list[str]:
        return [u for u in (self.urls or "").split() if u]

    def run_url(self, run_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/runs/{run_id}"

    def notify(self, title: str, body: str) -> list[Delivery]:
        """Send to every configured URL, one at a time so a failing one does not hide others."""
        sent = []
        for url in self.url_list():
            scheme = url.split("://", 1)[0]
            target = apprise.Apprise()
            if not target.add(url):
                sent.append(Delivery(f"{scheme} (not a valid apprise URL)", False))
                continue
            sent.append(Delivery(scheme, bool(target.notify(title=title, body=body))))
        return sent

    def publish_event(self, kafka: KafkaResource, key: str, event: Mapping[str, Any]) -> Delivery:
        """One JSON event on the alert topic, delivered (flushed) before this returns."""
        producer = kafka.producer()
        failed: list[str] = []
        producer.produce(
            self.kafka_topic,
            key=key.encode(),
            value=json.dumps(event, sort_keys=True).encode(),
            on_delivery=lambda err, _msg: failed.append(str(err)) if err else None,
        )
        left = producer.flush(kafka.timeout_seconds)
        return Delivery(f"kafka {kafka.name} {self.kafka_topic}", not failed and left == 0)
