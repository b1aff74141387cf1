"""Read a metadata file into plain JSON values, within bounds, or say exactly what is wrong.

Metadata is user input: parsing is bounded (file size, nesting depth, YAML aliases) and strict
(duplicate keys, NaN/Infinity, integers too long to be numbers, lone surrogates are errors, never
silently resolved). YAML-LD is accepted with the JSON data model: no anchors or aliases, no tags,
and dates become their ISO text.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import yaml

from etl_assets.errors import MetadataError, Problem

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 48
MAX_INT_DIGITS = 20


class _Duplicates(dict):
    """An object that had a key twice; `parse_document` reports where."""

    def __init__(self, pairs: list[tuple[str, Any]], duplicates: list[str]):
        super().__init__(pairs)
        self.duplicates = duplicates


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    dupes = []
    for key, _ in pairs:
        if key in seen:
            dupes.append(key)
        seen.add(key)
    return _Duplicates(pairs, dupes) if dupes else dict(pairs)


class _Invalid(ValueError):
    """A JSON value the data model does not admit."""


def _constant(name: str) -> float:
    raise _Invalid(f"{name} is not a JSON number; write a number or null")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Invalid(f"the number {text[:20]} is too large")
    return value


def _int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > MAX_INT_DIGITS:
        raise _Invalid(
            f"an integer of {len(digits)} digits is too large (at most {MAX_INT_DIGITS})"
        )
    return int(text)


def _nesting(text: str) -> int:
    """The deepest nesting of [ and { outside strings (bounded before any recursive parser)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _parse_json(text: str) -> Any:
    try:
        return json.loads(
            text,
            object_pairs_hook=_object,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
        )
    except json.JSONDecodeError as exc:
        raise _Invalid(
            f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that keeps duplicate keys visible (anchors and aliases are refused before)."""


def _yaml_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[str, Any]:
    loader.flatten_mapping(node)
    pairs = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise _Invalid(f"line {key_node.start_mark.line + 1}: keys must be text, got {key!r}")
        pairs.append((key, loader.construct_object(value_node, deep=True)))
    return _object(pairs)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _yaml_mapping)


def _check_yaml_events(text: str) -> None:
    depth = deepest = 0
    for event in yaml.parse(text, Loader=_StrictLoader):
        where = f"line {event.start_mark.line + 1}"
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _Invalid(f"{where}: YAML anchors and aliases are not supported in metadata")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                raise _Invalid(f"{where}: nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _parse_yaml(text: str) -> Any:
    try:
        _check_yaml_events(text)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _Invalid(f"not valid YAML: {exc}") from None
    except (ValueError, OverflowError) as exc:  # a scalar YAML resolves but cannot construct
        raise _Invalid(f"a YAML value cannot be read: {str(exc)[:120]}") from None


def _plain(value: Any, path: str, problems: list[Problem]) -> Any:
    """JSON values only: YAML dates become ISO text; bad text and duplicate keys are reported."""
    if isinstance(value, dict):
        for key in getattr(value, "duplicates", []):
            problems.append(Problem(_join(path, key), "this key is given twice; keep one"))
        return {k: _plain(v, _join(path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(Problem(path, "not a finite number"))
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**MAX_INT_DIGITS:
        problems.append(
            Problem(path, f"an integer of more than {MAX_INT_DIGITS} digits is too large")
        )
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(Problem(path, "text holds an unpaired surrogate (not valid Unicode)"))
    if isinstance(value, bytes | set | tuple):
        problems.append(Problem(path, f"a YAML {type(value).__name__} has no JSON form"))
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def parse_document(file: Path, shown: str) -> dict[str, Any]:
    """The file as a JSON object; `MetadataError` (naming `shown`) for anything else."""
    try:
        size = file.stat().st_size
        if size > MAX_BYTES:
            raise MetadataError(
                shown,
                [Problem("", f"the file has {size:,} bytes; metadata is at most {MAX_BYTES:,}")],
            )
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetadataError(
            shown, [Problem("", f"not UTF-8 text (byte {exc.start}: {exc.reason})")]
        ) from None
    except OSError as exc:
        raise MetadataError(shown, [Problem("", f"cannot read the file: {exc.strerror}")]) from None
    try:
        if file.suffix in (".yaml", ".yml"):
            doc = _parse_yaml(text)
        else:
            if _nesting(text) > MAX_DEPTH:
                raise _Invalid(f"nested more than {MAX_DEPTH} levels deep")
            doc = _parse_json(text)
    except (_Invalid, RecursionError) as exc:
        message = str(exc) if isinstance(exc, _Invalid) else "nested too deeply"
        raise MetadataError(shown, [Problem("", message)]) from None
    if not isinstance(doc, dict):
        raise MetadataError(shown, [Problem("", "expected an object at the top level")])
    problems: list[Problem] = []
    plain = _plain(doc, "", problems)
    if problems:
        raise MetadataError(shown, problems)
    return plain
