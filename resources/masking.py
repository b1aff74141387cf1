"""Secrets out of everything we write: URLs with their password parsed the way users type them,
and one `Masker` built from the secret values a run uses, applied to error texts, log lines,
captured script output and the CLI's output.

A password in a URL may hold `@`, `:` or `/` unescaped (`postgresql://bob:p@ss/w@db:5432/x`):
libpq would split it at the first `@` or `/` and show the rest as a host or a port. The userinfo
of such a URL ends at its LAST `@`; `normalize_url` percent-encodes user and password so every
client reads the URL as meant, and `redact_url` hides the whole password.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words; such secrets are not masked

# scheme://userinfo@rest, the userinfo running to the last "@" before the query or fragment
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^?#]*)@(?P<rest>[^@]*)$")
# in free text: scheme://user:password@, the password running to the last "@" of the token
_LIBPQ_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*'?([^\s']+)")
_URL_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+):\S*@")


@dataclass(frozen=True)
class UrlCredentials:
    user: str
    password: str | None


def url_credentials(url: str) -> UrlCredentials | None:
    """The user and password of `scheme://user:password@host...` (decoded), or None."""
    m = _URL.match(url.strip())
    if not m:
        return None
    user, sep, password = m["userinfo"].partition(":")
    return UrlCredentials(unquote(user), unquote(password) if sep else None)


def normalize_url(url: str) -> str:
    """The URL with user and password percent-encoded (an unescaped `@`, `:` or `/` in the
    password included); a URL without credentials, or a libpq key=value string, unchanged."""
    m = _URL.match(url.strip())
    if not m:
        return url
    creds = url_credentials(url)
    assert creds is not None
    auth = quote(creds.user, safe="")
    if creds.password is not None:
        auth += ":" + quote(creds.password, safe="")
    return f"{m['scheme']}{auth}@{m['rest']}"


def redact_url(text: str) -> str:
    """Text with the password of every `scheme://user:password@` in it replaced by ***."""
    return _URL_IN_TEXT.sub(rf"\1:{MASK}@", str(text))


class Masker:
    """Replaces every known secret value (and its percent-encoded form) by ***, longest first,
    then any URL password left in the text."""

    def __init__(self, secrets: Iterable[str | None] = ()):
        forms: set[str] = set()
        for value in secrets:
            if not value:
                continue
            creds = url_credentials(value)
            candidates = [value]
            if creds is not None and creds.password:
                candidates.append(creds.password)
            candidates += _LIBPQ_PASSWORD.findall(value)  # host=… password=… strings
            for c in candidates:
                forms.update({c, quote(c, safe=""), quote(c)})
        self._secrets = sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len)[::-1]

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __call__(self, text: str) -> str:
        text = str(text)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return redact_url(text)

    def __repr__(self) -> str:  # never the values
        return f"Masker({len(self._secrets)} values)"
