"""The clean stage of a table larger than one batch, in memory bounded by the batch and a few
compact columns, with the same result as the whole-table path (`table.clean_table`).

1. Each source batch is typed and given the record-local rules (empty values, ranges); every
   record, with its values after them, goes to a scratch staged table in step storage.
2. The rules that compare records (dedupe, primary keys, foreign keys) run on compact columns
   held in memory: the key columns and the sources (dictionary-encoded). Dedupe reads the other
   columns one at a time and fetches the few candidates' records at once; the foreign-key rule
   reads each reference column when it runs.
3. The cleaned records are the scratch table's batches filtered by the alive mask, with the
   columns a rule replaced (re-keyed records) swapped in.

Peak memory: one batch of every column, plus per record the alive mask, the compact columns and
one other column while dedupe narrows. Quarantine rows go to disk as they are found (a scratch
staged table, written on to the restricted zone batch by batch).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl_assets.clean.coerce import enforce_schema
from etl_assets.clean.rules.engine import (
    apply_record_rules,
    apply_table_rules,
    ordered_counts,
    stable_counts,
)
from etl_assets.clean.rules.stored_rows import POSITION, StoredRows
from etl_assets.clean.rules.working_set import QUARANTINE_DTYPE, WorkingSet
from etl_assets.clean.table import (
    Layout,
    Source,
    add_counts,
    clean_counts,
    source_columns,
    source_frames,
    source_layout,
)
from etl_assets.metadata import DataModule, Table
from etl_assets.quarantine import QUARANTINE_SCHEMA, SOURCE_COLUMN, quarantine_arrow
from etl_assets.results import CleanCounts
from resources.memory import trim_memory
from resources.staged import StagedTable, StagedWriter


@dataclass
class StreamedClean:
    stored: StagedTable
    """every typed record after the record-local rules (scratch: `discard()` removes it)"""
    alive: np.ndarray
    replaced: dict[str, pa.ChunkedArray]
    rejected: StagedTable
    """the quarantine rows (scratch too: a table's defects can be many)"""
    counts: CleanCounts
    key_map: pd.DataFrame | None
    dropped_columns: list[str]
    missing_columns: list[str]

    def batches(self, rows: int) -> Iterator[pa.Table]:
        """The cleaned records, at most `rows` per batch, in extraction order."""
        start = 0
        if not self.stored.num_rows:
            yield self.stored.schema.empty_table()
        for batch in self.stored.iter_batches(batch_rows=rows):
            n = batch.num_rows
            part = pa.Table.from_batches([batch])
            for name, values in self.replaced.items():
                index = part.schema.get_field_index(name)
                part = part.set_column(index, part.schema.field(index), values.slice(start, n))
            yield part.filter(pa.array(self.alive[start : start + n]))
            start += n

    @property
    def quarantine(self) -> pd.DataFrame:
        """The whole quarantine in memory (for tests and small tables)."""
        return self.rejected.read().to_pandas(types_mapper=lambda t: QUARANTINE_DTYPE)

    @property
    def rejected_rows(self) -> int:
        return self.rejected.num_rows

    def quarantine_batches(self) -> Iterator[pa.RecordBatch]:
        return self.rejected.iter_batches()

    def discard(self) -> None:
        StagedTable.remove(self.stored.path)
        StagedTable.remove(self.rejected.path)


def _conformed(df: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """`df` with every column of `layout`, in its order (undeclared ones missing here: null)."""
    for name in layout.order:
        if name not in df.columns:
            df[name] = pd.Series(pd.NA, index=df.index, dtype=pd.ArrowDtype(pa.string()))
    return df[layout.order]


def _changed_positions(ws: WorkingSet) -> np.ndarray:
    found = [e.positions for e in ws.entries if e.action == "modified"]
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


@dataclass
class _FirstPass:
    stored: StagedTable
    alive: np.ndarray
    originals: pa.Table | None
    typing_counts: dict[str, int]
    rule_counts: dict[str, int]


def _record_pass(
    sources: list[Source],
    layout: Layout,
    table: Table,
    module: DataModule,
    version: str,
    scratch: StagedWriter,
    rejects: StagedWriter,
) -> _FirstPass:
    originals, alive = [], []
    typing_counts: dict[str, int] = {}
    rule_counts: dict[str, int] = {}
    offset = 0
    for frame in source_frames(sources):
        typed = enforce_schema(frame, table, version)
        del frame
        rejects.write(quarantine_arrow(typed.quarantine))
        add_counts(typing_counts, typed.counts)
        ws = WorkingSet.start(_conformed(typed.data, layout), table, module, version)
        del typed
        apply_record_rules(ws)
        rejects.write(quarantine_arrow(ws.quarantine()))
        add_counts(rule_counts, ws.counts)
        changed = _changed_positions(ws)
        if len(changed):
            before = pa.Table.from_pandas(ws.original.iloc[changed], preserve_index=False)
            originals.append(before.append_column(POSITION, pa.array(changed + offset)))
        scratch.write(pa.Table.from_pandas(ws.data, preserve_index=False))
        alive.append(ws.alive)
        offset += len(ws.alive)
    return _FirstPass(
        stored=scratch.close(),
        alive=np.concatenate(alive) if alive else np.zeros(0, dtype=bool),
        originals=pa.concat_tables(originals) if originals else None,
        typing_counts=typing_counts,
        rule_counts=rule_counts,
    )


def _compact(stored: StagedTable, table: Table) -> pd.DataFrame:
    """The columns the table rules read for every record, held from dedupe to the end: keys
    and the source (references are read when their rule runs, after dedupe's peak)."""
    wanted = dict.fromkeys([*(table.primaryKey or []), SOURCE_COLUMN])
    names = [c for c in wanted if c in stored.columns]
    columns = {}
    for name in names:
        if name == SOURCE_COLUMN:  # a few distinct texts repeated per record: codes, batch-wise
            values = _source_codes(stored)
        else:
            values = stored.read([name]).column(name)
        columns[name] = pd.Series(pd.arrays.ArrowExtensionArray(values), copy=False)
        trim_memory(force=True)
    return pd.DataFrame(columns, copy=False)


def _source_codes(stored: StagedTable) -> pa.ChunkedArray:
    """The source column dictionary-encoded one batch at a time (its texts are never all held):
    8-bit codes while a batch has at most 127 sources (a table has a few), else 32-bit."""
    chunks = []
    for batch in stored.iter_batches([SOURCE_COLUMN]):
        codes = pc.dictionary_encode(batch.column(0))
        small = len(codes.dictionary) <= 127
        chunks.append(
            codes.cast(pa.dictionary(pa.int8(), codes.type.value_type)) if small else codes
        )
    if not chunks:
        text = stored.schema.field(SOURCE_COLUMN).type
        text = text.value_type if pa.types.is_dictionary(text) else text
        return pa.chunked_array([], type=pa.dictionary(pa.int8(), text))
    wide = any(c.type.index_type != pa.int8() for c in chunks)
    kind = pa.dictionary(pa.int32() if wide else pa.int8(), chunks[0].type.value_type)
    return pa.chunked_array([c.cast(kind) for c in chunks], type=kind)


def _as_text_source(key_map: pd.DataFrame | None) -> pd.DataFrame | None:
    if key_map is None or SOURCE_COLUMN not in key_map.columns:
        return key_map
    key_map[SOURCE_COLUMN] = key_map[SOURCE_COLUMN].astype(pd.ArrowDtype(pa.string()))
    return key_map


def clean_streamed(
    sources: list[Source],
    table: Table,
    module: DataModule,
    *,
    version: str,
    parents: Mapping[str, pd.DataFrame],
    scratch: StagedWriter,
    rejects: StagedWriter,
    parent_key_maps: Mapping[str, pd.DataFrame] | None = None,
) -> StreamedClean:
    """`clean_table`'s result for `sources`, streamed through the staged table `scratch`;
    the quarantine rows go to the staged table `rejects`."""
    sources = [s for s in sources if source_columns(s)]
    layout = source_layout(sources, table)
    try:
        first = _record_pass(sources, layout, table, module, version, scratch, rejects)
    except BaseException:
        scratch.abort()
        rejects.abort()
        raise
    trim_memory(force=True)  # the batches' leftovers, before the compact columns are read
    try:
        compact = _compact(first.stored, table)
        ws = WorkingSet(
            table=table,
            module=module,
            version=version,
            original=compact,
            data=compact.copy(deep=False),
            alive=first.alive,
            stored=StoredRows(first.stored, first.originals),
        )
        stable_counts(ws)
        for key, n in first.rule_counts.items():
            ws.count(key, n)
        key_map = apply_table_rules(ws, parents, parent_key_maps)
        trim_memory(force=True)
        rejects.write(quarantine_arrow(ws.quarantine()))
        rejected = rejects.close(QUARANTINE_SCHEMA)
    except BaseException:
        rejects.abort()
        StagedTable.remove(first.stored.path)
        raise
    rules = ordered_counts(ws.counts, len(first.alive), int(ws.alive.sum()))
    return StreamedClean(
        stored=first.stored,
        alive=ws.alive,
        replaced={c: ws.arrow(c) for c in ws.changed},
        rejected=rejected,
        counts=clean_counts(first.typing_counts, rules),
        key_map=_as_text_source(key_map),
        dropped_columns=layout.dropped,
        missing_columns=layout.missing,
    )
