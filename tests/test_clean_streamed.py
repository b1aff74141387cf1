"""The streamed clean stage (record-local rules per batch, table rules on compact columns) gives
exactly the whole-table path's records, counts, key map and quarantine, for every batch size."""

from __future__ import annotations

import itertools

import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_assets.clean.assets import key_columns
from etl_assets.clean.rules import dedupe
from etl_assets.clean.rules.dedupe import FETCH_SHARE
from etl_assets.clean.streamed import clean_streamed
from etl_assets.clean.table import clean_table
from etl_assets.metadata.references import table_order
from resources.staged import StagedTable, StagedWriter, write_staged
from tests.test_rules_fixtures import make_module
from tests.test_rules_properties import datasets, modules

_runs = itertools.count()


def _raw(records: list[dict], columns: list[str]) -> pa.Table:
    """Extracted records as a file connector hands them over: text, nulls as null."""
    return pa.table(
        {
            c: pa.array(
                [None if r.get(c) is None else str(r[c]) for r in records], type=pa.string()
            )
            for c in columns
        }
    )


def _staged(tmp_path, table: pa.Table, batch_rows: int) -> StagedTable:
    path = tmp_path / f"src{next(_runs)}.staged"
    return StagedTable.open(write_staged(path, [table]).path, batch_rows=batch_rows)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype(str).sort_values(list(df.columns)).reset_index(drop=True)


def _same(tmp_path, sources, table, module, parents, key_maps) -> pd.DataFrame:
    whole = clean_table(
        sources, table, module, version="1", parents=parents, parent_key_maps=key_maps
    )
    scratch = StagedWriter(tmp_path / f"scratch{next(_runs)}.staged")
    rejects = StagedWriter(tmp_path / f"rejects{next(_runs)}.staged")
    streamed = clean_streamed(
        sources,
        table,
        module,
        version="1",
        parents=parents,
        parent_key_maps=key_maps,
        scratch=scratch,
        rejects=rejects,
    )
    batches = list(streamed.batches(5))
    data = pa.concat_tables(batches).to_pandas(types_mapper=pd.ArrowDtype)
    pd.testing.assert_frame_equal(data, whole.data, check_index_type=False)
    assert streamed.counts == whole.counts
    pd.testing.assert_frame_equal(_sorted(streamed.quarantine), _sorted(whole.quarantine))
    assert (streamed.key_map is None) == (whole.key_map is None)
    if whole.key_map is not None:
        pd.testing.assert_frame_equal(streamed.key_map, whole.key_map)
    assert streamed.dropped_columns == whole.dropped_columns
    assert streamed.missing_columns == whole.missing_columns
    streamed.discard()
    assert not streamed.stored.path.exists() and not streamed.rejected.path.exists()
    return whole


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_streamed_clean_equals_the_whole_table_path(tmp_path_factory, data):
    tmp_path = tmp_path_factory.mktemp("streamed")
    module = data.draw(modules())
    records = data.draw(datasets(module))
    batch_rows = data.draw(st.integers(1, 7))
    # how soon dedupe fetches the candidates' records instead of reading columns whole
    dedupe.FETCH_SHARE = data.draw(st.sampled_from([0.0, 0.05, 1.0]))
    try:
        _clean_in_order(tmp_path, module, records, batch_rows)
    finally:
        dedupe.FETCH_SHARE = FETCH_SHARE


def _clean_in_order(tmp_path, module, records, batch_rows) -> None:
    cleaned, key_maps = {}, {}
    for name in table_order(module):
        table = module.table(name)
        columns = [c.name for c in table.columns] + ["_dm_source"]
        sources = [_staged(tmp_path, _raw(records[name], columns), batch_rows)]
        parents = {
            p: key_columns(cleaned[p], [c.name for c in module.table(p).columns]) for p in cleaned
        }
        whole = _same(tmp_path, sources, table, module, parents, key_maps)
        cleaned[name] = whole.data
        if whole.key_map is not None:
            key_maps[name] = whole.key_map


def test_ragged_sources_with_shards_and_undeclared_columns(tmp_path):
    """Two sources with different columns, a shard column on one, a non-strict table: the
    streamed records have the whole path's columns, nulls where a source lacks one."""
    module = make_module(
        [
            {
                "name": "t",
                "columns": [
                    {"name": "id", "dataType": "integer"},
                    {
                        "name": "v",
                        "dataType": "string",
                        "empty": {"strategy": "fill", "value": "x"},
                    },
                ],
                "primaryKey": "id",
                "onKeyConflict": "regenerate",
                "strict": False,
            }
        ],
        {"t": [("a", 0), ("b", 1)]},
    )
    table = module.table("t")
    a = pa.table(
        {
            "id": ["1", "2", "2", "3", "3", "4"],
            "v": ["p", None, None, "q", "r", ""],
            "note": ["n1", None, "n3", "n4", "n5", "n6"],
            "_dm_source": ["a"] * 6,
        }
    )
    b = pa.table(
        {
            "id": ["3", "5", "1", "1"],
            "v": ["q", "s", None, None],
            "_dm_shard": ["0", "0", "1", "1"],
            "_dm_source": ["b"] * 4,
        }
    )
    sources = [_staged(tmp_path, a, 2), _staged(tmp_path, b, 3)]
    whole = _same(tmp_path, sources, table, module, {}, {})
    assert "note" in whole.data.columns and "_dm_shard" in whole.data.columns
    assert whole.key_map is not None and len(whole.key_map)


def test_source_codes_are_narrow_for_few_sources_and_wide_for_many(tmp_path):
    from etl_assets.clean.streamed import _source_codes
    from etl_assets.quarantine import SOURCE_COLUMN

    for n_sources, index in ((3, pa.int8()), (200, pa.int32())):
        names = [f"s{i % n_sources}" for i in range(1000)]
        # the first batch has one source: a later batch with more than 127 decides the type
        table = pa.table({SOURCE_COLUMN: pa.array(["s0"] * 100 + names)})
        staged = _staged(tmp_path, table, batch_rows=500)
        codes = _source_codes(staged)
        assert codes.type == pa.dictionary(index, pa.string())
        assert codes.cast(pa.string()).to_pylist() == table.column(0).to_pylist()
