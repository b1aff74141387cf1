"""Uploads switch `<schema>.<table>` without making readers wait for the load, and keep the views
consumers built on it working (issue 10 item 4)."""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pandas as pd
import psycopg
import pytest

from etl_assets.publish.pg_swap import SwapError, view_columns
from etl_assets.publish.postgres import publish
from etl_assets.registry import list_versions

ROWS = 200_000


def frame(n: int, extra: bool = False) -> pd.DataFrame:
    df = pd.DataFrame({"id": np.arange(n), "value": np.random.default_rng(n).random(n)})
    df["label"] = pd.Series(np.arange(n) % 97).astype(str)
    if extra:
        df["added"] = df["id"] * 2
    return df


def up(conn, version: str, df: pd.DataFrame, module: str = "swap"):
    return publish(conn, module=module, version=version, schema=f"dm_{module}",
                   tables={"t": df}, quarantine=None, metadata_hash=f"h{version}")  # fmt: skip


def read_loop(url: str, relation: str, ready, stop, out) -> None:
    """Count the consumer's view in a loop on its own connection, in its own process (so the
    uploader's CPU work does not delay it), and send (start, end, count) of every query;
    perf_counter is the machine's monotonic clock, comparable across processes."""
    samples = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                start = time.perf_counter()
                n = conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
                samples.append((start, time.perf_counter(), n))
                ready.set()
        out.send(samples)
    except BaseException as exc:  # surfaced by the test
        out.send(repr(exc))


class Reader:
    def __init__(self, url: str, relation: str):
        ctx = mp.get_context("spawn")
        self.ready, self.stop = ctx.Event(), ctx.Event()
        self._receive, send = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=read_loop, args=(url, relation, self.ready, self.stop, send)
        )

    def start(self) -> None:
        self.process.start()
        assert self.ready.wait(timeout=60), "the reader never answered"

    def finish(self) -> list[tuple[float, float, int]]:
        self.stop.set()
        samples = self._receive.recv()
        self.process.join(timeout=30)
        assert not isinstance(samples, str), samples
        return samples


def overlaps(sample, windows) -> bool:
    return any(sample[0] < end and sample[1] > start for start, end in windows)


def test_readers_wait_only_for_the_swap_and_consumer_views_survive(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        up(conn, "1.0.1", frame(ROWS))
        conn.execute("CREATE SCHEMA consumer_app")
        conn.execute("CREATE VIEW consumer_app.recent AS SELECT * FROM dm_swap.t WHERE id >= 0")
        reader = Reader(pg_url, "consumer_app.recent")
        reader.start()
        counts = {"1.0.1": ROWS}
        loads, swaps = [], []
        # three new versions, then the current one re-published (its table is replaced)
        for i, version in enumerate(["1.0.2", "1.0.3", "1.0.4", "1.0.4"], start=1):
            n = ROWS + 1000 * i
            counts[version if i < 4 else "1.0.4 again"] = n
            started = time.perf_counter()
            result = up(conn, version, frame(n, extra=version >= "1.0.3"))  # 1.0.3 adds a column
            ended = time.perf_counter()
            swaps.append((ended - result.swap_seconds, ended))
            loads.append((started, started + result.load_seconds))
            assert result.current == version and result.views == {"t": "replaced"}
            time.sleep(0.2)
        samples = reader.finish()
        assert conn.execute("SELECT count(*) FROM consumer_app.recent").fetchone()[0] == n
        assert "added" in [
            d.name for d in conn.execute("SELECT * FROM dm_swap.t LIMIT 0").description
        ]
    # only complete versions: every count is exactly one version's row count
    assert {n for _, _, n in samples} <= set(counts.values())
    assert samples[-1][2] == counts["1.0.4 again"]
    # the load does not block readers: queries ran (start to end) inside the load windows
    during_load = [s for s in samples if any(a <= s[0] and s[1] <= b for a, b in loads)]
    assert during_load, "no reader query completed while a version was loading"
    # no reader waited longer than the swap transaction (beyond a query's own unblocked time)
    latency = [end - start for start, end, _ in samples]
    unblocked = max(end - start for start, end, _ in samples if not overlaps((start, end), swaps))
    longest_swap = max(end - start for start, end in swaps)
    longest_load = max(end - start for start, end in loads)
    print(
        f"reader: {len(samples)} queries, max wait {max(latency) * 1000:.1f} ms;"
        f" unblocked max {unblocked * 1000:.1f} ms; longest swap {longest_swap * 1000:.1f} ms;"
        f" longest load {longest_load * 1000:.1f} ms; {len(during_load)} queries during loads"
    )
    assert max(latency) <= longest_swap + unblocked


def test_a_column_change_under_a_consumer_view_fails_before_loading_and_says_why(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        up(conn, "1.0.1", frame(10))
        conn.execute("CREATE VIEW public.mine AS SELECT id, label FROM dm_swap.t")
        changed = frame(20).drop(columns=["value"])
        with pytest.raises(SwapError) as err:
            up(conn, "1.0.2", changed)
        message = str(err.value)
        assert "dm_swap.t: version 1.0.2 column value is gone" in message
        assert "the views public.mine depend on it" in message
        assert "Drop those views, publish the version, then create them again" in message
        # nothing changed: the view serves 1.0.1, no 1.0.2 relation, not in the registry
        assert conn.execute("SELECT count(*) FROM public.mine").fetchone()[0] == 10
        assert [v["version"] for v in list_versions(conn, "swap")] == ["1.0.1"]
        assert (
            conn.execute("SELECT to_regclass('dm_swap__staging.t__v1_0_2')").fetchone()[0] is None
        )
        # without the consumer's view the view is dropped and created again, in the swap
        conn.execute("DROP VIEW public.mine")
        result = up(conn, "1.0.2", changed)
        assert result.views == {"t": "recreated"}
        names = [d.name for d in conn.execute("SELECT * FROM dm_swap.t LIMIT 0").description]
        assert names == ["id", "label"]


def test_republishing_a_version_replaces_its_relation_unless_someone_selects_from_it(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        up(conn, "1.0.1", frame(10))
        conn.execute("CREATE VIEW public.on_live AS SELECT * FROM dm_swap.t")
        result = up(conn, "1.0.1", frame(12))  # a re-run of the current version
        assert result.tables == {"t": "dm_swap.t__v1_0_1"}
        assert conn.execute("SELECT count(*) FROM public.on_live").fetchone()[0] == 12
        conn.execute("CREATE VIEW public.pinned AS SELECT * FROM dm_swap.t__v1_0_1")
        with pytest.raises(SwapError, match=r"dm_swap.t__v1_0_1 cannot be replaced: public.pinned"):
            up(conn, "1.0.1", frame(14))
        assert conn.execute("SELECT count(*) FROM public.pinned").fetchone()[0] == 12
        leftovers = conn.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE '\\_dm\\_replaced\\_%'"
        ).fetchall()
        assert leftovers == []


def test_view_columns_keep_the_current_order_and_name_what_breaks():
    current = [("id", "bigint"), ("label", "text")]
    assert view_columns(current, [("label", "text"), ("x", "date"), ("id", "bigint")]) == (
        ["id", "label", "x"],
        [],
    )
    _, problems = view_columns(current, [("id", "text")])
    assert problems == ["column id changes from bigint to text", "column label is gone"]


def test_what_a_killed_load_left_in_staging_goes_with_the_next_upload(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        up(conn, "1.0.1", frame(10))
        # what an upload killed between its load and its swap leaves behind
        conn.execute("CREATE TABLE dm_swap__staging.t__v1_0_7 (id bigint)")
        conn.execute("CREATE TABLE dm_swap__staging.other__v1_0_7 (id bigint)")  # not this table's
        up(conn, "1.0.2", frame(11))
        left = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'dm_swap__staging' ORDER BY 1"
        ).fetchall()
    assert left == [("other__v1_0_7",)]
