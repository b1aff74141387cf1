"""What assets record about their data: column schema, column lineage, previews, summaries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import dagster as dg
import pandas as pd
import pyarrow as pa

from etl_assets.distinct import DistinctCounter
from resources.behind import Behind
from resources.staged import StagedTable

PROFILE_AHEAD = 2  # batches a profile may lag behind the writer (each held until counted)
PREVIEW_ROWS = 5
PREVIEW_CELL = 40


def column_schema(df: pd.DataFrame) -> dg.TableSchema:
    cols = []
    for name, dtype in df.dtypes.items():
        kind = str(dtype.pyarrow_dtype) if isinstance(dtype, pd.ArrowDtype) else str(dtype)
        cols.append(dg.TableColumn(name=str(name), type=kind))
    return dg.TableSchema(columns=cols)


def column_lineage(
    columns: list[str], upstream: dict[dg.AssetKey, list[str]]
) -> dg.TableColumnLineage:
    """Each column comes from the same-named column of every upstream asset that has it."""
    deps = {}
    for col in columns:
        found = [
            dg.TableColumnDep(asset_key=key, column_name=col)
            for key, cols in upstream.items()
            if col in cols
        ]
        if found:
            deps[col] = found
    return dg.TableColumnLineage(deps_by_column=deps)


def _cell(v: object) -> str:
    text = "" if v is None or (not isinstance(v, str | bytes) and pd.isna(v)) else str(v)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= PREVIEW_CELL else text[: PREVIEW_CELL - 1] + "…"


def markdown_preview(
    df: pd.DataFrame, rows: int = PREVIEW_ROWS, total: int | None = None
) -> dg.MetadataValue:
    """The first `rows` records of `df` (of `total` records when `df` is only their head)."""
    head = df.head(rows)
    total = len(df) if total is None else total
    cols = [str(c) for c in head.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for record in head.itertuples(index=False):  # at most PREVIEW_ROWS rows
        lines.append("| " + " | ".join(_cell(v) for v in record) + " |")
    if total > rows:
        lines.append(f"\n_{total - rows:,} more rows_")
    return dg.MetadataValue.md("\n".join(lines))


RESTRICTED_PREFIX = "dm/restricted/"


def table_metadata(df: pd.DataFrame, total: int | None = None) -> dict[str, object]:
    """Metadata of a published-zone table (anonymized data): row count, schema and a preview
    (`df` may be only the first rows of a table of `total` records)."""
    total = len(df) if total is None else total
    return {
        "dagster/row_count": dg.MetadataValue.int(total),
        "dagster/column_schema": column_schema(df),
        "preview": markdown_preview(df, total=total),
    }


def head_frame(staged: StagedTable, rows: int = PREVIEW_ROWS) -> pd.DataFrame:
    """The first `rows` records of a staged table (its columns even when it has none)."""
    head = next(staged.iter_batches(batch_rows=rows), None)
    if head is None:
        return staged.schema.empty_table().to_pandas(types_mapper=pd.ArrowDtype)
    return head.slice(0, rows).to_pandas(types_mapper=pd.ArrowDtype)


def profile(df: pd.DataFrame) -> dg.MetadataValue:
    """Per column its type and the fractions of nulls and of distinct values: no values, no
    minimum or maximum (what a restricted-zone table may show)."""
    n = len(df)
    lines = ["| column | type | null | distinct |", "|---|---|---|---|"]
    for name, dtype in df.dtypes.items():
        kind = str(dtype.pyarrow_dtype) if isinstance(dtype, pd.ArrowDtype) else str(dtype)
        nulls = int(df[name].isna().sum())
        distinct = int(df[name].nunique(dropna=True))
        lines.append(_profile_line(str(name), kind, nulls, distinct, n))
    return dg.MetadataValue.md("\n".join(lines))


def restricted_metadata(df: pd.DataFrame, previews: bool = False) -> dict[str, object]:
    """Metadata of a restricted-zone table (extracted or clean records): row count, schema and
    a profile; rows only when the deployment opted in, under `dm/restricted/` (which
    `dmetl serve` shows only to data managers and admins)."""
    metadata: dict[str, object] = {
        "dagster/row_count": dg.MetadataValue.int(len(df)),
        "dagster/column_schema": column_schema(df),
        "dm/profile": profile(df),
    }
    if previews:
        metadata[RESTRICTED_PREFIX + "preview"] = markdown_preview(df)
    return metadata


def _profile_line(
    name: str, kind: str, nulls: int, distinct: int, n: int, estimated: bool = False
) -> str:
    if not n:
        return f"| {name} | {kind} | - | - |"
    return f"| {name} | {kind} | {nulls / n:.1%} | {'≈' if estimated else ''}{distinct / n:.1%} |"


class TableProfile:
    """The profile of a table fed batch by batch as it is written (so it is not read again):
    per column its nulls and a distinct counter (exact up to `distinct.EXACT_LIMIT` values,
    estimated beyond)."""

    def __init__(self) -> None:
        self._counters: dict[str, DistinctCounter] = {}
        self._nulls: dict[str, int] = {}
        self._rows: dict[str, int] = {}

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        for name, values in zip(batch.schema.names, batch.columns, strict=True):
            self._counters.setdefault(name, DistinctCounter()).add(values)
            self._nulls[name] = self._nulls.get(name, 0) + values.null_count
            self._rows[name] = self._rows.get(name, 0) + len(values)

    def watch(self, batches: Iterable[pa.RecordBatch | pa.Table]) -> Iterator:
        """`batches` unchanged, each added on its way through: in a worker thread, while the
        caller writes it (the counting is Arrow and numpy work that lets go of the GIL, and a
        step otherwise keeps one of the cores idle). At most `PROFILE_AHEAD` batches are
        waiting to be counted; the profile is complete when the iteration is, and an error
        in counting is raised there."""
        counting = Behind("dm-profile", PROFILE_AHEAD)
        try:
            for batch in batches:
                counting.submit(self.add, batch)
                yield batch
            counting.drain()
        finally:
            counting.close()  # the caller stopped early: nothing more is counted

    def markdown(self, schema: pa.Schema, n: int) -> dg.MetadataValue:
        lines = ["| column | type | null | distinct |", "|---|---|---|---|"]
        for f in schema:
            counter = self._counters.get(f.name, DistinctCounter())
            # a column some parts lack is null in their rows
            nulls = self._nulls.get(f.name, 0) + n - self._rows.get(f.name, 0)
            lines.append(
                _profile_line(f.name, str(f.type), nulls, counter.count(), n, not counter.exact)
            )
        return dg.MetadataValue.md("\n".join(lines))


def staged_metadata(
    staged: StagedTable, profile: TableProfile, previews: bool = False
) -> dict[str, object]:
    """`restricted_metadata` of a staged table, from the `profile` fed as it was written (the
    table is not read again): distinct counts are exact up to `distinct.EXACT_LIMIT` values,
    estimated (≈, ~1%) beyond."""
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in staged.schema]
    )
    metadata: dict[str, object] = {
        "dagster/row_count": dg.MetadataValue.int(staged.num_rows),
        "dagster/column_schema": schema,
        "dm/profile": profile.markdown(staged.schema, staged.num_rows),
    }
    if previews:
        metadata[RESTRICTED_PREFIX + "preview"] = markdown_preview(
            head_frame(staged), total=staged.num_rows
        )
    return metadata


def arrow_bytes(df: pd.DataFrame) -> int:
    return pa.Table.from_pandas(df, preserve_index=False).nbytes


def quarantine_summary(quarantine: pd.DataFrame | Iterable[pa.RecordBatch]) -> dg.MetadataValue:
    """Records in the quarantine per action, rule and reason (counts only, never values); the
    quarantine whole or batch by batch."""
    parts = [quarantine] if isinstance(quarantine, pd.DataFrame) else quarantine
    keys = ["action", "rule", "reason"]
    counts: dict[tuple, int] = {}
    for part in parts:
        frame = part if isinstance(part, pd.DataFrame) else part.select(keys).to_pandas()
        for key, n in frame.groupby(keys, dropna=False).size().items():
            counts[key] = counts.get(key, 0) + int(n)
    lines = ["| action | rule | reason | records |", "|---|---|---|---|"]
    lines += [f"| {a} | {r} | {why} | {n} |" for (a, r, why), n in sorted(counts.items(), key=str)]
    return dg.MetadataValue.md("\n".join(lines))


CONSOLE_LINK = "dm/console"


def console_url(web_url: str, module: str) -> str:
    """The console page of `module` on the `dmetl serve` at `web_url`."""
    return f"{web_url.rstrip('/')}/console/modules/{module}"


def with_console_links(assets: list, web_url: str) -> list:
    """Every asset of a module (its group) carries a link to the module's console page."""

    def link(spec: dg.AssetSpec) -> dg.AssetSpec:
        module = spec.group_name or spec.key.path[0]
        url = dg.MetadataValue.url(console_url(web_url, module))
        return spec.merge_attributes(metadata={CONSOLE_LINK: url})

    return list(dg.map_asset_specs(link, assets))
