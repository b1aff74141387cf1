"""The SQL dialects a `sql` source reads: how each is checked, described, cast and kept read-only.

Before connectorx reads, the step connects with the database's own Python driver (PyMySQL,
psycopg) in a read-only transaction to check the login and the query and to learn the result's
column types: fast, with the server's own error codes, where connectorx's connection pool waits
30 s on any refusal. Types connectorx reads with loss or not at all (decimals beyond 28 digits,
MySQL zero dates, TIME beyond 24 h, intervals, ...) are cast to text in the read query, so every
value arrives as it is and the clean step types it. SQL Server has no Python driver here: its
query is read as connectorx maps it (documented as untested).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import psycopg
import pymysql
from pymysql.constants import CR, ER, FIELD_TYPE

from etl_assets.errors import ExtractionError
from etl_assets.extract.sql.messages import restricted_detail, scrub, server_message
from resources.postgres import PostgresResource
from resources.retry import ConnectionFailed, with_retries


@dataclass(frozen=True)
class Dialect:
    """One kind of SQL server: its name in messages, identifier quotes, session settings."""

    kind: str
    label: str
    quotes: tuple[str, str]
    # run by connectorx before the query, on the connection that reads it
    pre_execution: tuple[str, ...] = ()

    def quote(self, name: str) -> str:
        """`name` as a quoted identifier (the closing quote doubled inside)."""
        left, right = self.quotes
        return left + name.replace(right, right * 2) + right


DIALECTS = {
    "mysql": Dialect(
        "mysql",
        "MySQL/MariaDB",
        ("`", "`"),
        ("SET SESSION TRANSACTION READ ONLY", "SET time_zone = '+00:00'"),
    ),
    "postgres": Dialect(
        "postgres",
        "PostgreSQL",
        ('"', '"'),
        ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "SET TIME ZONE 'UTC'"),
    ),
    "mssql": Dialect("mssql", "SQL Server", ("[", "]")),
}

# MySQL result types read as they are: integers, floats, YEAR, and text/blob (blobs are turned
# into hexadecimal text after reading); BIT becomes an unsigned integer, GEOMETRY WKT text, and
# everything else (DECIMAL, dates and times, JSON, ENUM, SET, NULL) the server's own text
MYSQL_NATIVE = {
    FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG, FIELD_TYPE.INT24,
    FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE, FIELD_TYPE.YEAR, FIELD_TYPE.VARCHAR,
    FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.TINY_BLOB, FIELD_TYPE.MEDIUM_BLOB,
    FIELD_TYPE.LONG_BLOB, FIELD_TYPE.BLOB,
}  # fmt: skip
# PostgreSQL type oids read as they are: bool, int2/4/8, float4/8, text, varchar, bpchar, name;
# everything else arrives as the server's text (as the `postgres` connector's COPY gives it)
PG_NATIVE = {16, 20, 21, 23, 700, 701, 25, 1043, 1042, 19}
MYSQL_UNREACHABLE = {
    CR.CR_CONNECTION_ERROR, CR.CR_CONN_HOST_ERROR, CR.CR_UNKNOWN_HOST, CR.CR_SERVER_GONE_ERROR,
    CR.CR_SERVER_LOST,
}  # fmt: skip
MYSQL_REFUSED_LOGIN = {ER.ACCESS_DENIED_ERROR, 1698}  # 1698: access denied without a password


def select_expression(dialect: Dialect, name: str, type_code: int) -> str:
    """The outer SELECT's expression for one described column (cast where connectorx is lossy)."""
    ref = f"dm_q.{dialect.quote(name)}"
    if dialect.kind == "mysql":
        if type_code == FIELD_TYPE.BIT:
            ref = f"CAST({ref} AS UNSIGNED)"
        elif type_code == FIELD_TYPE.GEOMETRY:
            ref = f"ST_AsText({ref})"
        elif type_code not in MYSQL_NATIVE:
            ref = f"CAST({ref} AS CHAR)"
    elif dialect.kind == "postgres" and type_code not in PG_NATIVE:
        ref = f"CAST({ref} AS text)"
    return f"{ref} AS {dialect.quote(name)}"


def describe(dialect: Dialect, url: str, probe: str, where: str) -> list[tuple[str, int]] | None:
    """(name, type code) of every result column, from the database's own driver in a read-only
    transaction; None for SQL Server (no driver here). Errors name `where`, never a value."""
    if dialect.kind == "mysql":
        return _describe_mysql(url, probe, where)
    if dialect.kind == "postgres":
        return _describe_postgres(url, probe, where)
    return None


class _Unreachable(RuntimeError):
    """A MySQL connect that may work on a later attempt."""


def _mysql_connect(url: str, where: str) -> pymysql.connections.Connection:
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 3306
    user, password = unquote(parts.username or ""), unquote(parts.password or "")

    def connect() -> pymysql.connections.Connection:
        try:
            return pymysql.connect(
                host=host,
                port=port,
                user=user,
                password=password,
                database=unquote(parts.path.lstrip("/")) or None,
                charset="utf8mb4",
                connect_timeout=10,
                autocommit=False,
            )
        except pymysql.OperationalError as exc:
            code = exc.args[0] if exc.args else None
            text = scrub(str(exc.args[1] if len(exc.args) > 1 else exc), password)
            if code in MYSQL_UNREACHABLE:
                raise _Unreachable(text) from None
            if code in MYSQL_REFUSED_LOGIN:
                raise ExtractionError(
                    f"{where}: the server at {host}:{port} refused the login of user {user!r}"
                    " (check the connection's credentials)"
                ) from None
            detail = server_message(f"ERROR {code}: {text}", "", parts.path.lstrip("/"))
            raise ExtractionError(f"{where}: the server refused the connection: {detail}") from None

    try:
        return with_retries(
            connect,
            what=f"the server at {host}:{port}",
            retries=3,
            backoff_seconds=0.5,
            retry_on=(_Unreachable,),
        )
    except ConnectionFailed as exc:
        raise ExtractionError(f"{where}: {scrub(str(exc), password)}", retryable=True) from None


def _describe_mysql(url: str, probe: str, where: str) -> list[tuple[str, int]]:
    conn = _mysql_connect(url, where)
    database = unquote(urlsplit(url).path.lstrip("/"))
    try:
        with conn.cursor() as cur:
            cur.execute("START TRANSACTION READ ONLY")
            cur.execute(probe)
            columns = [(d[0], d[1]) for d in cur.description or ()]
        conn.rollback()
    except pymysql.MySQLError as exc:
        code, text = (exc.args + ("", ""))[:2]
        raw = f"ERROR {code}: {text}"
        shown = server_message(raw, probe, database)
        raise ExtractionError(
            f"{where}: the query failed: {shown}", restricted_detail=restricted_detail(raw, shown)
        ) from None
    finally:
        conn.close()
    return columns


def _describe_postgres(url: str, probe: str, where: str) -> list[tuple[str, int]]:
    database = unquote(urlsplit(url).path.lstrip("/"))
    password = unquote(urlsplit(url).password or "")
    try:
        with PostgresResource(url=url).connect() as pg:
            pg.read_only = True
            try:
                with pg.cursor() as cur:
                    cur.execute(probe)
                    return [(d.name, d.type_code) for d in cur.description or ()]
            except psycopg.Error as exc:
                shown = server_message(str(exc), probe, database)
                raise ExtractionError(
                    f"{where}: the query failed: {shown}",
                    restricted_detail=restricted_detail(str(exc), shown, password),
                ) from None
    except psycopg.OperationalError as exc:  # connecting failed after the resource's retries
        text = scrub(str(exc).strip().splitlines()[0], password)
        refused = "authentication" in text or "does not exist" in text or "pg_hba" in text
        raise ExtractionError(f"{where}: {text}", retryable=not refused) from None
