"""Data for bench/sql_sources.py: a bulk table and a table of edge values on PostgreSQL and
MariaDB/MySQL, and the values each fidelity check expects back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg

from bench.common import mysql_connect

# the bulk table: 10 columns of the kinds a module reads (text with NULL and '', numbers, dates)
PG_BULK = """
CREATE TABLE bench (id bigint PRIMARY KEY, i int, amount numeric(12,2), f double precision,
  flag boolean, name text, day date, ts timestamp, tstz timestamptz, note text);
INSERT INTO bench SELECT g, (g * 7919) % 100000, round((g % 100000) / 100.0, 2), g * 0.5,
  g % 2 = 0, CASE WHEN g % 20 = 0 THEN NULL WHEN g % 20 = 1 THEN '' ELSE 'name-' || g END,
  DATE '2000-01-01' + (g % 9000)::int, TIMESTAMP '2000-01-01' + g * interval '1 second',
  TIMESTAMPTZ '2000-01-01 00:00:00+00' + g * interval '1 minute', repeat('x', (g % 40)::int)
FROM generate_series(1::bigint, %(n)s) AS g;
"""
MY_BULK = [
    "CREATE TABLE digits (d INT)",
    "INSERT INTO digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)",
    """CREATE TABLE bench (id BIGINT PRIMARY KEY, i INT, amount DECIMAL(12,2), f DOUBLE,
      flag BOOLEAN, name VARCHAR(64), day DATE, ts DATETIME(6), tstz TIMESTAMP(6) NULL, note TEXT)
      CHARACTER SET utf8mb4""",
    """INSERT INTO bench SELECT g, (g * 7919) % 100000, (g % 100000) / 100, g * 0.5, g % 2 = 0,
      CASE WHEN g % 20 = 0 THEN NULL WHEN g % 20 = 1 THEN '' ELSE CONCAT('name-', g) END,
      DATE '2000-01-01' + INTERVAL (g % 9000) DAY,
      TIMESTAMP '2000-01-01 00:00:00' + INTERVAL g SECOND,
      TIMESTAMP '2000-01-01 00:00:00' + INTERVAL g MINUTE, REPEAT('x', g % 40)
    FROM (SELECT 1 + a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 100000 * h.d AS g
          FROM digits a, digits b, digits c, digits e, digits f, digits h) AS s
    WHERE g <= %(n)s""",
]
BULK_QUERY = "SELECT id, i, amount, f, flag, name, day, ts, tstz, note FROM bench"

# three rows of edge values; the session time zone is +02:00 while they are written, so the
# zoned column's instants are 11:14:15.123456 UTC and 00:00:01 UTC
PG_EDGE = """
SET TIME ZONE '+02:00';
CREATE TABLE edge (id int PRIMARY KEY, txt text, big bigint, dec numeric(38,9),
  d2 numeric(10,2), day date, ts timestamp(6), tstz timestamptz(6), flag boolean, uni text,
  tm time);
INSERT INTO edge VALUES
 (1, '', 9223372036854775807, 12345678901234567890.123456789, 12.34, '2024-02-29',
  '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456+02', true, 'Grüße 😀', '12:34:56'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 'x', -9223372036854775808, -0.000000001, -0.01, '1000-01-01', '1970-01-01 00:00:00',
  '1970-01-01 02:00:01+02', false, '', '23:59:59');
"""
MY_EDGE = [
    "SET time_zone = '+02:00'",
    """CREATE TABLE edge (id INT PRIMARY KEY, txt TEXT, big BIGINT, `dec` DECIMAL(38,9),
      d2 DECIMAL(10,2), day DATE, ts DATETIME(6), tstz TIMESTAMP(6) NULL, flag BOOLEAN,
      uni VARCHAR(20), tm TIME) CHARACTER SET utf8mb4""",
    """INSERT INTO edge VALUES
     (1, '', 9223372036854775807, 12345678901234567890.123456789, 12.34, '2024-02-29',
      '2024-02-29 13:14:15.123456', '2024-02-29 13:14:15.123456', TRUE, 'Grüße 😀', '12:34:56'),
     (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
     (3, 'x', -9223372036854775808, -0.000000001, -0.01, '1000-01-01', '1970-01-01 00:00:00',
      '1970-01-01 02:00:01', FALSE, '', '-838:59:59')""",
    # values a legacy MySQL schema holds when sql_mode allowed them
    "SET SESSION sql_mode = ''",
    "CREATE TABLE legacy (id INT PRIMARY KEY, day DATE)",
    "INSERT INTO legacy VALUES (1, '0000-00-00'), (2, '2024-00-10')",
]
EDGE_QUERY = "SELECT id, txt, big, dec, d2, day, ts, tstz, flag, uni, tm FROM edge ORDER BY id"
MY_EDGE_QUERY = EDGE_QUERY.replace(" dec,", " `dec`,")
LEGACY_QUERY = "SELECT id, day FROM legacy ORDER BY id"
PG_TIME_LAST = "23:59:59"
MY_TIME_LAST = "-838:59:59"


def seed_postgres(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(PG_BULK.replace("%(n)s", str(int(rows))))
        conn.execute(PG_EDGE)


def seed_mysql(url: str, rows: int) -> None:
    with mysql_connect(url) as conn, conn.cursor() as cur:
        for stmt in MY_BULK:
            cur.execute(stmt.replace("%(n)s", str(int(rows))))
        for stmt in MY_EDGE:
            cur.execute(stmt)


def canon(v: Any) -> Any:
    """A value in a form that compares across libraries (JSON-safe)."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        return v.isoformat(sep=" ")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def _dec(v: Any) -> Decimal | None:
    try:
        return None if v is None else Decimal(str(v))
    except InvalidOperation:
        return Decimal("NaN")


def _when(v: Any) -> dt.datetime | None:
    if v is None:
        return None
    when = dt.datetime.fromisoformat(str(v))
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def _bool(v: Any) -> bool | None:
    return None if v is None else str(v).lower() in ("true", "t", "1")


def fidelity(cols: dict[str, list], engine: str) -> dict[str, str]:
    """Per property: 'ok', or what came back instead (the rows are EDGE's three)."""
    time_last = PG_TIME_LAST if engine == "pg" else MY_TIME_LAST
    checks = {
        "null_vs_empty_text": (cols["txt"], ["", None, "x"]),
        "bigint_extremes": ([None if v is None else int(v) for v in cols["big"]],
                            [2**63 - 1, None, -(2**63)]),
        "decimal_38_9_exact": ([_dec(v) for v in cols["dec"]],
                               [Decimal("12345678901234567890.123456789"), None,
                                Decimal("-0.000000001")]),
        "decimal_10_2_exact": ([_dec(v) for v in cols["d2"]],
                               [Decimal("12.34"), None, Decimal("-0.01")]),
        "date": ([None if v is None else str(v)[:10] for v in cols["day"]],
                 ["2024-02-29", None, "1000-01-01"]),
        "datetime_naive": ([_when(v) for v in cols["ts"]],
                           [dt.datetime(2024, 2, 29, 13, 14, 15, 123456), None,
                            dt.datetime(1970, 1, 1)]),
        "datetime_zoned_instant_utc": ([_when(v) for v in cols["tstz"]],
                                       [dt.datetime(2024, 2, 29, 11, 14, 15, 123456), None,
                                        dt.datetime(1970, 1, 1, 0, 0, 1)]),
        "boolean": ([_bool(v) for v in cols["flag"]], [True, None, False]),
        "unicode_text": (cols["uni"], ["Grüße 😀", None, ""]),
        "time_of_day": ([None if v is None else str(v) for v in cols["tm"]],
                        ["12:34:56", None, time_last]),
    }  # fmt: skip
    return {k: "ok" if got == want else f"got {got!r}"[:120] for k, (got, want) in checks.items()}


def legacy_dates(cols: dict[str, list] | None, error: str | None) -> str:
    """MariaDB zero/invalid dates: they must arrive as they are (for the clean step to reject
    and quarantine) or fail loudly; silently null or shifted is the failure."""
    if error is not None:
        return f"error ({error})"
    got = [None if v is None else str(v)[:10] for v in cols["day"]]
    if got == ["0000-00-00", "2024-00-10"]:
        return "ok"
    return f"silently changed to {got!r}"
