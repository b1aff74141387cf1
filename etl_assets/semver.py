"""Module versions are MAJOR.MINOR.PATCH: parse, compare, bump."""

from __future__ import annotations

from collections.abc import Iterable

from etl_assets.metadata.base import SEMVER


def parse(version: str) -> tuple[int, int, int]:
    m = SEMVER.match(version)
    if not m:
        raise ValueError(f"not a MAJOR.MINOR.PATCH version: {version!r}")
    return int(m[1]), int(m[2]), int(m[3])


def is_version(text: str) -> bool:
    return bool(SEMVER.match(text))


def bump(version: str, part: str = "patch") -> str:
    major, minor, patch = parse(version)
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def latest(versions: Iterable[str]) -> str | None:
    valid = [v for v in versions if SEMVER.match(v)]
    return max(valid, key=parse) if valid else None


def next_version(base: str, existing: Iterable[str], part: str = "patch") -> str:
    """The version after both the metadata's `version` and every existing one."""
    top = latest([base, *existing]) or base
    return bump(top, part)
