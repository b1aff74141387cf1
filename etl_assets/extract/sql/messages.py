"""What a SQL source may say about a failure: the server's error, never a data value or a secret.

Server and driver messages quote values ("invalid input syntax for type integer: "Ann"",
"Incorrect string value: '\\xF0...'"), and connectorx's panics print the value it could not
convert. A message is cut to its first line, and every quoted part that is not text of the
statement we sent (or the database's name) is replaced by `'…'`: what is left came from the
metadata, never from the data. When something was hidden, the full text (secrets scrubbed) is
the error's `restricted_detail`, which the extract step keeps in the restricted zone.
"""

from __future__ import annotations

import re

QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
MYSQL_ERROR = re.compile(r"ERROR (\d+) \(([0-9A-Z]{5})\): (.*?)(?: \}|$)")
PG_ERROR = re.compile(r'code: SqlState\(E?([0-9A-Z]{5})\), message: "((?:[^"\\]|\\.)*)"')
UNESCAPE = re.compile(r"\\(.)")
PG_DB_ERROR = re.compile(r"db error: (?:ERROR|FATAL): (.*)")
LIMIT = 300

CONVERSION = (
    "connectorx cannot convert a value of the result (the value is not shown);"
    " cast that column to text in the query"
)


def _known(part: str, haystack: str) -> bool:
    """Whether `part` is text of the statement or names from it (a word, not a fragment)."""
    if not part:
        return True
    pattern = rf"(?<![\w$]){re.escape(part)}(?![\w$])"
    return re.search(pattern, haystack, flags=re.IGNORECASE) is not None


def mask_values(text: str, statement: str, database: str = "") -> str:
    """`text` with every quoted part that is not from the statement or the database name masked."""
    haystack = f"{statement}\n{database}"

    def keep(match: re.Match[str]) -> str:
        inner = match.group(0)[1:-1]
        if _known(inner, haystack) or all(_known(p, haystack) for p in inner.split(".")):
            return match.group(0)
        return f"{match.group(0)[0]}…{match.group(0)[0]}"

    return QUOTED.sub(keep, text)


def server_message(raw: str, statement: str, database: str = "") -> str:
    """The server's error inside a driver or connectorx message (code and first line), masked."""
    text = raw.strip()
    if m := MYSQL_ERROR.search(text):
        text = f"ERROR {m.group(1)} ({m.group(2)}): {m.group(3)}"
    elif m := PG_ERROR.search(text):  # Rust's debug text: the message's quotes are escaped
        message = UNESCAPE.sub(r"\1", m.group(2))
        text = f"ERROR {m.group(1)}: {message}"
    elif m := PG_DB_ERROR.search(text):
        text = m.group(1)
    text = text.splitlines()[0] if text else ""
    text = mask_values(text, statement, database)
    return text[:LIMIT] + ("…" if len(text) > LIMIT else "")


def reader_message(kind: str, raw: str, statement: str, database: str = "") -> str:
    """What the reader process reported: a server error, or (a panic) only that a value failed."""
    if kind == "PanicException":
        if MYSQL_ERROR.search(raw) or PG_ERROR.search(raw):
            return server_message(raw, statement, database)
        return CONVERSION
    return server_message(raw, statement, database)


def scrub(text: str, *secrets: str) -> str:
    """`text` without any of `secrets` (a driver that echoes what it was given)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def restricted_detail(raw: str, shown: str, *secrets: str) -> str | None:
    """The full text for the restricted zone when `shown` hid part of it, else None."""
    if "…" in shown or shown == CONVERSION:
        return scrub(raw, *secrets)
    return None
