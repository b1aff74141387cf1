"""Failure alerts, for real: an SMTP server (aiosmtpd), a chat webhook (http.server) and the
Kafka broker on loopback get exactly one message per failed run, across sensor restarts; none
quotes a record value. The run's log says what each rule rejected and each privacy model reached."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler

import dagster as dg
import pytest

from etl_assets.definitions import load_catalog
from resources.alerts import AlertsResource
from resources.deployment import SecretsResource
from resources.postgres import PostgresResource
from sensors import build_run_failure_sensor
from tests import servers
from tests.conftest import EXAMPLES
from tests.helpers import CONTEXT, run_version, write_module
from tests.servers import create_topic, free_port, http_server

kafka_bootstrap = servers.kafka_bootstrap  # the broker fixture
pytestmark = pytest.mark.integration
SECRET_VALUE = "Jane-Doe-1984"  # a record value the failing script quotes on stderr

MODULE = {
    "@context": CONTEXT,
    "@type": "DataModule",
    "name": "alerted",
    "version": "1.0.0",
    "autoUpload": True,
    "retry": {"maxRetries": 0},
    "connections": [{"name": "events", "type": "kafka", "urlEnv": "DM_TEST_KAFKA"}],
    "tables": [{"name": "people", "columns": [{"name": "name", "dataType": "string"}]}],
    "collection": [
        {"table": "people", "source": "crm", "extract": {"type": "script", "path": "crm.py"}}
    ],
}
FAILING = f"import sys\nsys.exit('cannot parse record name={SECRET_VALUE}')\n"


class Inbox:
    """What the SMTP server received."""

    def __init__(self):
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(envelope.content.decode("utf-8", errors="replace"))
        return "250 OK"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


@pytest.fixture
def webhook():
    posts: list[dict] = []
    lock = threading.Lock()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                posts.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    with http_server(Hook) as url:
        yield url, posts


def consume_all(bootstrap: str, topic: str) -> list[dict]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
         "auto.offset.reset": "earliest"}
    )  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    found, idle = [], 0
    try:
        while idle < 6:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                idle += 1
                continue
            idle = 0
            found.append(json.loads(msg.value()))
    finally:
        consumer.close()
    return found


def test_one_alert_per_failed_run_by_email_webhook_and_kafka(
    tmp_path, resources, pg_url, smtp, webhook, kafka_bootstrap, monkeypatch
):
    monkeypatch.setenv("DM_TEST_KAFKA", kafka_bootstrap)
    topic = f"alerts_{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic)
    folder = write_module(tmp_path / "mods" / "alerted", MODULE, {"crm.py": FAILING})
    loaded = load_catalog(tmp_path / "mods").module("alerted").loaded
    port, inbox = smtp
    hook_url, posts = webhook
    alerts = AlertsResource(
        urls=f"mailto://127.0.0.1:{port}?from=dm@example.org&to=ops@example.org"
        f" json://{hook_url.removeprefix('http://')}/hook",
        base_url="https://dagster.example.org/",
        kafka_topic=topic,
    )
    sensor = build_run_failure_sensor([loaded])
    defs = dg.Definitions(sensors=[sensor])
    res = {"alerts": alerts, "postgres": PostgresResource(url=pg_url), "secrets": SecretsResource()}

    def tick(instance, cursor):
        ctx = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=res, definitions=defs
        )
        return sensor.evaluate_tick(ctx).cursor

    with dg.instance_for_test() as instance:
        start = tick(instance, None)  # the first tick only starts the cursor
        result = run_version(folder, "1.0.1", resources, instance)
        assert not result.success
        after = tick(instance, start)
        assert tick(instance, after) == after  # nothing new: nothing sent
        tick(instance, start)  # a restart that lost the cursor: the registry stops a resend

    run_id = result.run_id
    assert len(inbox.messages) == 1 and len(posts) == 1
    events = consume_all(kafka_bootstrap, topic)
    assert len(events) == 1
    [event] = events
    assert (event["module"], event["version"], event["run_id"]) == ("alerted", "1.0.1", run_id)
    assert event["failed_steps"] == ["alerted__extract__people__crm"]
    assert event["url"] == f"https://dagster.example.org/runs/{run_id}"
    assert event["will_retry"] is False  # no run retries on a test instance
    assert event["root_cause"].startswith("people/crm: script crm.py exited with code 1")
    mail, post = inbox.messages[0], posts[0]
    for text in (mail, post["message"]):
        for needed in ("alerted", "1.0.1", "alerted__extract__people__crm", event["url"]):
            assert needed in text
    assert "alerted 1.0.1 failed" in post["title"]
    for text in (mail, json.dumps(post), json.dumps(event)):
        assert SECRET_VALUE not in text


def test_root_cause_names_only_the_class_of_an_unexpected_error():
    from dagster._utils.error import SerializableErrorInfo

    inner = SerializableErrorInfo(
        "ValueError: invalid literal for int(): 'Jane'\n", [], "ValueError"
    )
    outer = SerializableErrorInfo(
        "Error occurred while executing op", [], "DagsterExecutionStepExecutionError", inner
    )
    from sensors.run_failure import root_cause

    assert root_cause(outer) == "ValueError (its message may quote data: see the run's log)"
    failure = SerializableErrorInfo(
        "dagster._core.definitions.events.Failure: items: cannot reach postgresql://u:pw@h/db",
        [], "Failure",
    )  # fmt: skip
    assert root_cause(failure) == "items: cannot reach postgresql://u:***@h/db"


def test_run_log_says_what_each_rule_rejected_and_each_privacy_model_reached(
    resources, dagster_home
):
    with dg.instance_for_test() as instance:
        result = run_version(EXAMPLES / "clinic", "1.0.1", resources, instance)
        assert result.success
        lines = [e.user_message for e in instance.all_logs(result.run_id) if not e.is_dagster_event]
    clean = {ln.split(":")[0]: ln for ln in lines if "records extracted," in ln}
    assert set(clean) == {"wards", "patients", "visits"}
    assert "rejected_range_" in clean["patients"] and "per rule:" in clean["patients"]
    assert any("records in" in ln and "reached:" in ln for ln in lines)
    privacy = [ln for ln in lines if "privacy models:" in ln]
    assert privacy and all("reached" in ln for ln in privacy)


def test_one_event_per_published_version(
    tmp_path, resources, pg_url, webhook, kafka_bootstrap, monkeypatch
):
    from sensors import build_publish_sensor

    monkeypatch.setenv("DM_TEST_KAFKA", kafka_bootstrap)
    topic = f"published_{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic)
    ok = f'import json\nprint(json.dumps([{{"name": "{SECRET_VALUE}"}}, {{"name": "x"}}]))\n'
    folder = write_module(tmp_path / "mods" / "alerted", MODULE, {"crm.py": ok})
    loaded = load_catalog(tmp_path / "mods").module("alerted").loaded
    hook_url, posts = webhook
    alerts = AlertsResource(
        urls=f"json://{hook_url.removeprefix('http://')}/hook", kafka_topic=topic, on_publish=True
    )
    sensor = build_publish_sensor([loaded])
    defs = dg.Definitions(sensors=[sensor])
    res = {"alerts": alerts, "postgres": PostgresResource(url=pg_url), "secrets": SecretsResource()}

    def tick(instance, cursor):
        ctx = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=res, definitions=defs
        )
        return sensor.evaluate_tick(ctx).cursor

    with dg.instance_for_test() as instance:
        start = tick(instance, None)
        result = run_version(folder, "1.0.1", resources, instance)
        assert result.success
        tick(instance, tick(instance, start))
        tick(instance, start)  # evaluated again after a restart: not sent twice
    [event] = consume_all(kafka_bootstrap, topic)
    assert (event["event"], event["module"], event["version"]) == (
        "version_published", "alerted", "1.0.1",
    )  # fmt: skip
    assert event["rows"] == {"people": 2}
    assert len(posts) == 1 and "alerted 1.0.1 published" in posts[0]["title"]
    assert SECRET_VALUE not in json.dumps(event) + json.dumps(posts)
