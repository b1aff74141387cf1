"""Turn JSON records (parsed from a script, a file or an API) into a DataFrame."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow as pa

from etl_assets.errors import ExtractionError


def parse_json_records(text: str, where: str, records_path: str | None = None) -> list[dict]:
    """Parse a JSON array of objects, an object holding one at `records_path`, or JSON Lines."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as first:
        data = []
        for lineno, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if lineno == 1:
                    raise ExtractionError(
                        f"{where}: expected a JSON array of records or JSON Lines;"
                        f" not JSON at line {first.lineno} column {first.colno}: {first.msg}"
                    ) from None
                raise ExtractionError(
                    f"{where}: line {lineno} of the JSON Lines output is not JSON: {exc.msg}"
                ) from None
    if records_path:
        for part in records_path.split("."):
            if not isinstance(data, dict) or part not in data:
                raise ExtractionError(f"{where}: no key {part!r} on the path {records_path!r}")
            data = data[part]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ExtractionError(f"{where}: expected a list of records, got {type(data).__name__}")
    bad = next((i for i, r in enumerate(data) if not isinstance(r, dict)), None)
    if bad is not None:
        raise ExtractionError(
            f"{where}: record {bad} is {type(data[bad]).__name__}, expected a JSON object"
        )
    return data


def _normalize(s: pd.Series) -> pd.Series:
    """Object columns (mixed or nested JSON values) become text; uniform ones keep their type."""
    if s.dtype != object:
        return s
    non_null = s.dropna()
    if non_null.empty:
        return s.astype(pd.ArrowDtype(pa.string()))
    nested = non_null.map(lambda v: isinstance(v, dict | list))
    if nested.any():
        s = s.map(lambda v: json.dumps(v) if isinstance(v, dict | list) else v)
    return s.astype("string").astype(pd.ArrowDtype(pa.string()))


def records_to_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame of the records: numeric fields stay numeric, everything else is text."""
    if not records:
        return pd.DataFrame()
    df = pd.DataFrame.from_records(records)
    return df.apply(_normalize)
