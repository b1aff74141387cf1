"""Staged tables between assets: written batch by batch, restricted, atomic; a module run in tiny
batches publishes exactly what a run in one batch publishes."""

from __future__ import annotations

import json
import shutil
import stat
import threading

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import psycopg.sql
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import resources.staged as staged_module
from etl_assets.anonymize.batches import anonymize_staged, batch_local
from etl_assets.anonymize.operations import PseudonymMemo, pseudonymize
from etl_assets.anonymize.table import anonymize_for_module, drop_orphans
from etl_assets.asset_metadata import TableProfile, staged_metadata
from etl_assets.clean.coerce import enforce_schema
from etl_assets.clean.table import type_sources
from etl_assets.extract.entry import extract_entry, extract_entry_batches
from etl_assets.metadata import CollectionEntry, Column, Table
from etl_assets.metadata.loader import load_module
from etl_assets.publish.pg_copy import ParquetSource, copy_arrow, create_table, to_arrow
from etl_assets.quarantine import RAW_COLUMN
from resources.deployment import Deployment, DeploymentError
from resources.io_manager import IO_MANAGER_KEY, ParquetIOManager
from resources.staged import StagedTable, StagedWriter, write_staged
from tests.conftest import EXAMPLES, local_resources
from tests.helpers import run_version


def test_a_staged_table_unions_its_parts_and_reads_in_bounded_batches(tmp_path):
    first = pa.table({"a": ["1", "2", "3"], "b": ["x", "y", "z"]})
    ragged = pa.table({"a": [None], "b": [None], RAW_COLUMN: ["1,2,3,4"]}).cast(
        pa.schema([("a", pa.string()), ("b", pa.string()), (RAW_COLUMN, pa.string())])
    )
    staged = write_staged(tmp_path / "base" / "t.staged", [first, ragged], base=tmp_path / "base")
    assert staged.num_rows == 4
    assert staged.columns == ["a", "b", RAW_COLUMN]
    batches = list(staged.iter_batches(batch_rows=2))
    assert [b.num_rows for b in batches] == [2, 1, 1]
    table = pa.Table.from_batches(batches)
    assert table.column("a").to_pylist() == ["1", "2", "3", None]
    assert table.column(RAW_COLUMN).to_pylist() == [None, None, None, "1,2,3,4"]
    assert staged.read(["b"]).column_names == ["b"]
    # restricted zone: folders 0700, parts 0600, no temporary file left behind
    assert stat.S_IMODE(staged.path.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "base").stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in staged.path.iterdir()} == {0o600}
    assert [p.name for p in staged.path.parent.iterdir()] == ["t.staged"]


def test_a_staged_table_opens_as_written_and_reads_the_parquet_parts_of_earlier_versions(
    tmp_path,
):
    ints = pa.table({"a": pa.array([1, 2, 3], pa.int64()), "b": ["x", None, "z"]})
    staged = write_staged(tmp_path / "t.staged", [ints, ints.slice(0, 1)], batch_rows=2)
    # the writer records each part's rows, so opening reads no batch
    assert json.loads((staged.path / "rows.json").read_text()) == {"part-00000.arrow": 4}
    opened = StagedTable.open(staged.path, batch_rows=2)
    assert (opened.schema, opened.num_rows) == (staged.schema, staged.num_rows) == (ints.schema, 4)
    # written batches are gathered to batch_rows; no column asked for: rows with no columns
    assert [b.num_rows for b in staged.iter_batches(columns=[])] == [2, 2]
    assert staged.read(["b"]).column("b").to_pylist() == ["x", None, "z", "x"]
    # a table an earlier version wrote as Parquet parts, with one part of the new kind
    old = tmp_path / "old.staged"
    old.mkdir()
    pq.write_table(ints, old / "part-00000.parquet")
    shutil.copy(next(staged.path.glob("part-*.arrow")), old / "part-00001.arrow")
    table = StagedTable.open(old)
    assert table.num_rows == 7
    assert table.read()["a"].to_pylist() == [1, 2, 3, 1, 2, 3, 1]


def test_rewriting_a_staged_table_replaces_it_and_a_failed_write_leaves_the_old_one(tmp_path):
    path = tmp_path / "t.staged"
    write_staged(path, [pa.table({"a": [1, 2]})])
    again = write_staged(path, [pa.table({"a": [3]})])
    assert again.read().column("a").to_pylist() == [3]

    def failing():
        yield pa.table({"a": [4, 5]})
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError):
        write_staged(path, failing())
    assert StagedTable.open(path).read().column("a").to_pylist() == [3]
    assert [p.name for p in tmp_path.iterdir()] == ["t.staged"]
    empty = write_staged(tmp_path / "e.staged", [], empty_schema=pa.schema([("a", pa.int64())]))
    assert (empty.num_rows, empty.columns) == (0, ["a"])


def test_a_write_that_fails_on_the_writer_thread_fails_the_write_and_leaves_nothing(
    tmp_path, monkeypatch
):
    """Parts are written behind the caller: an error there (a full disk) is raised to the
    caller, by a later `write` or by `close`, and the half-written table is removed."""
    path = tmp_path / "t.staged"
    write_staged(path, [pa.table({"a": [1]})])
    real = staged_module._PartWriter.write
    seen = []

    def disk_full(self, batch):
        seen.append(batch.num_rows)
        if len(seen) == 3:
            raise OSError(28, "No space left on device")
        real(self, batch)

    monkeypatch.setattr(staged_module._PartWriter, "write", disk_full)
    batches = [pa.table({"a": list(range(i, i + 10))}) for i in range(0, 100, 10)]
    with pytest.raises(OSError, match="No space left"):
        write_staged(path, batches, batch_rows=10)
    assert StagedTable.open(path).read().column("a").to_pylist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["t.staged"]
    monkeypatch.setattr(staged_module._PartWriter, "write", real)
    again = write_staged(path, batches, batch_rows=10)  # and the writer order is kept
    assert again.read().column("a").to_pylist() == list(range(100))


def test_batches_are_read_ahead_on_a_thread_that_stops_with_the_consumer(tmp_path, monkeypatch):
    """A staged table is read a few batches before they are asked for: in order, all of them;
    a consumer that stops early leaves no reading thread behind; a read that fails fails the
    iteration."""
    table = pa.table({"a": list(range(100))})
    staged = StagedTable.open(write_staged(tmp_path / "t.staged", [table]).path, batch_rows=10)
    assert [b.column(0).to_pylist() for b in staged.iter_batches()] == [
        list(range(i, i + 10)) for i in range(0, 100, 10)
    ]
    batches = staged.iter_batches()
    assert next(batches).num_rows == 10
    batches.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("dm-read")]
    real = staged_module._part_batches

    def failing(part, columns, size):
        batches = real(part, columns, size)
        yield next(batches)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(staged_module, "_part_batches", failing)
    with pytest.raises(OSError, match="Input/output"):
        list(staged.iter_batches())


def _orders_csv(tmp_path, rows: int) -> CollectionEntry:
    lines = ["id,amount,when"]
    for i in range(rows):
        amount = "many" if i % 17 == 0 else f"{i * 1.5}"
        when = "" if i % 23 == 0 else f"2024-01-{1 + i % 28:02d}"
        lines.append(f"{i},{amount},{when}" + (",extra" if i % 41 == 5 else ""))
    (tmp_path / "orders.csv").write_text("\n".join(lines) + "\n")
    return CollectionEntry.model_validate(
        {"table": "orders", "source": "csv", "extract": {"type": "file", "path": "orders.csv"}}
    )


def test_extraction_streams_in_batches_of_at_most_batch_rows(tmp_path):
    entry = _orders_csv(tmp_path, 2500)
    batches = list(extract_entry_batches(entry, tmp_path, batch_rows=1000))
    assert max(b.num_rows for b in batches) <= 1000
    staged = write_staged(tmp_path / "x.staged", batches)
    whole = extract_entry(entry, tmp_path)
    streamed = staged.to_pandas()
    assert len(streamed) == len(whole) == 2500
    pd.testing.assert_frame_equal(streamed[list(whole.columns)], whole, check_dtype=False)


def test_typing_batch_by_batch_equals_typing_the_whole_table(tmp_path):
    entry = _orders_csv(tmp_path, 3000)
    table = Table(
        name="orders",
        columns=[
            Column(name="id", dataType="integer", nullable=False),
            Column(name="amount", dataType="number"),
            Column(name="when", dataType="date", nullable=False),
        ],
    )
    staged = write_staged(
        tmp_path / "x.staged", extract_entry_batches(entry, tmp_path, batch_rows=1000)
    )
    batched = type_sources([StagedTable.open(staged.path, batch_rows=700)], table, "1.0.0")
    whole = enforce_schema(extract_entry(entry, tmp_path), table, "1.0.0")
    pd.testing.assert_frame_equal(batched.data, whole.data)
    assert batched.counts == whole.counts
    assert batched.counts["rejected_ragged_row"] > 0 and batched.counts["rows_typed"] > 0
    key = ["rule", "reason", "column", "record"]
    pd.testing.assert_frame_equal(
        batched.quarantine.sort_values(key).reset_index(drop=True),
        whole.quarantine.sort_values(key).reset_index(drop=True),
    )


def test_dm_batch_rows_sets_the_batch_size_and_rejects_nonsense():
    assert Deployment.from_environ({"DM_BATCH_ROWS": "50_000"}).batch_rows == 50_000
    assert Deployment.from_environ({}).batch_rows == ParquetIOManager(base_dir="x").batch_rows
    with pytest.raises(DeploymentError, match="DM_BATCH_ROWS"):
        Deployment.from_environ({"DM_BATCH_ROWS": "ten"})


def record_local_visits(folder) -> None:
    """The clinic with visits anonymized record by record (pseudonym, keyed noise, suppressed
    notes) and no privacy model of its own: the batched anonymize path."""
    doc = json.loads((folder / "module.jsonld").read_text())
    visits = next(t for t in doc["tables"] if t["name"] == "visits")
    del visits["privacy"]
    visits["privacyExemption"] = "visits carry no quasi-identifier of their own here"
    for col in visits["columns"]:
        if col["name"] in ("visit_time", "reason"):
            col.pop("anonymization", None)
        if col["name"] == "cost_eur":
            col["anonymization"] = {"method": "perturb", "noise": "laplace", "scale": 5}
    (folder / "module.jsonld").write_text(json.dumps(doc))


def _published(tmp_path, pg_url, batch_rows: int | None, variant=None) -> dict[str, pd.DataFrame]:
    home = tmp_path / f"run_{batch_rows}_{variant.__name__ if variant else ''}"
    folder = home / "clinic"
    shutil.copytree(EXAMPLES / "clinic", folder)
    if variant:
        variant(folder)
    resources = local_resources(home, pg_url)
    resources["secrets"] = local_resources(tmp_path, pg_url)["secrets"]  # the same keys
    if batch_rows:
        resources[IO_MANAGER_KEY] = ParquetIOManager(
            base_dir=str(home / "storage"), batch_rows=batch_rows
        )
    (home / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
        result = run_version(folder, "1.0.1", resources, instance)
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]
    outbox = resources["outbox"]
    tables = {
        "/".join(p.relative_to(home / "outbox").parts[2:]): pd.read_parquet(p)
        for p in (home / "outbox").rglob("*.parquet")
    }
    assert tables, "the run published nothing"
    return {
        name: df.sort_values(list(df.columns)).reset_index(drop=True)
        for name, df in {**tables, "quarantine": outbox.read_quarantine("clinic", "1.0.1")}.items()
    }


@pytest.mark.parametrize("variant", [None, record_local_visits])
def test_a_module_run_in_tiny_batches_publishes_what_one_batch_publishes(tmp_path, pg_url, variant):
    one = _published(tmp_path, pg_url, None, variant)
    tiny = _published(tmp_path, pg_url, 3, variant)
    assert one.keys() == tiny.keys()
    if variant:  # the batched path ran, and removed the visits of suppressed patients
        orphans = one["quarantine"].query("reason == 'parent_suppressed'")
        assert len(orphans) > 0
    for name in one:
        pd.testing.assert_frame_equal(tiny[name], one[name], obj=name)


def test_batched_anonymization_equals_the_whole_table_path(tmp_path):
    """Pseudonyms, keyed noise, suppressed cells and dropped orphans: the same records whether
    the table is anonymized whole or 7 records at a time."""
    folder = tmp_path / "clinic"
    shutil.copytree(EXAMPLES / "clinic", folder)
    record_local_visits(folder)
    loaded = load_module(folder)
    visits = loaded.model.table("visits")
    assert batch_local(visits) and not batch_local(loaded.model.table("patients"))
    n = 100
    clean = pd.DataFrame(
        {
            "visit_id": pd.array(range(n), dtype="int64[pyarrow]"),
            "patient_id": pd.array([i % 13 for i in range(n)], dtype="int64[pyarrow]"),
            "visit_time": pd.array(pd.date_range("2024-01-01", periods=n, freq="h")),
            "reason": pd.array(["check-up", "other"] * (n // 2), dtype="string[pyarrow]"),
            "cost_eur": pd.array([float(i) for i in range(n)], dtype="float64[pyarrow]"),
            "notes": pd.array(["none"] * n, dtype="string[pyarrow]"),
            "_dm_source": pd.array(["csv"] * n, dtype="string[pyarrow]"),
        }
    )
    key = b"k" * 32
    whole = anonymize_for_module(clean, visits, loaded, "1.0.0", key)
    # the parent published the pseudonyms of patients 0..9: the visits of 10..12 are orphans
    parent_ids = (
        anonymize_for_module(
            clean.assign(patient_id=pd.array([i % 10 for i in range(n)], dtype="int64[pyarrow]")),
            visits,
            loaded,
            "1.0.0",
            key,
        )
        .tables["visits"][["patient_id"]]
        .drop_duplicates()
    )
    parents = {"patients": parent_ids}
    tables, orphans = drop_orphans(whole.tables, visits, parents, "1.0.0")
    staged = write_staged(tmp_path / "clean.staged", [pa.Table.from_pandas(clean)])
    staged = StagedTable.open(staged.path, batch_rows=7)
    with StagedWriter(tmp_path / "out.staged") as writer:
        out = anonymize_staged(staged, visits, loaded, "1.0.0", key, parents, writer)
    assert len(orphans) == len(out.orphans) > 0
    pd.testing.assert_frame_equal(out.staged.to_pandas(), tables["visits"], check_dtype=False)
    assert out.staged.num_rows + len(out.orphans) == n
    assert out.summary.splitlines()[0] == f"table 'visits': {n} records"


def test_the_upload_copies_an_outbox_table_batch_by_batch(tmp_path, pg_url):
    """COPY from a Parquet source in 2-row batches loads what COPY of the whole table loads,
    with the same column types (int32, dictionary text, dates, timestamps, nulls)."""
    table = pa.table(
        {
            "n": pa.array([1, 2, None, 4, 5], pa.int32()),
            "t": pa.array(["a", "b", "a", None, "c"]).dictionary_encode(),
            "d": pa.array([19000, 19001, None, 19003, 19004], pa.int32()).cast(pa.date32()),
            "ts": pa.array([0, 1, 2, None, 4], pa.timestamp("ms")),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2)
    source = ParquetSource(pq.ParquetFile(tmp_path / "t.parquet"), batch_rows=2)
    assert source.num_rows == 5
    with psycopg.connect(pg_url, autocommit=True) as conn, conn.cursor() as cur:
        for name, data in (("streamed", source), ("whole", to_arrow(table))):
            target = psycopg.sql.Identifier(name)
            create_table(cur, target, to_arrow(data).schema)
            assert copy_arrow(cur, target, to_arrow(data)) == 5
        cur.execute("SELECT * FROM streamed EXCEPT ALL SELECT * FROM whole")
        assert cur.fetchall() == []
        cur.execute("SELECT count(*), count(n), count(t) FROM streamed")
        assert cur.fetchone() == (5, 4, 4)


def test_a_pseudonym_memo_gives_the_pseudonyms_of_a_whole_column_batch_by_batch():
    values = pd.Series([3, 1, None, 3, 7, 1, 9], dtype="int64[pyarrow]")
    whole = pseudonymize(values, b"s" * 32)
    memo = PseudonymMemo()
    parts = [pseudonymize(values.iloc[i : i + 3], b"s" * 32, memo=memo) for i in range(0, 7, 3)]
    assert pd.concat(parts).tolist() == whole.tolist()
    assert len(memo.keys) == 4  # each distinct value hashed once


def test_reading_a_staged_table_holds_a_few_batches_not_the_file(tmp_path):
    """Parts are read batch by batch from the file (not pre-buffered, not memory-mapped), so
    memory follows the batch, not the file."""
    rng = np.random.default_rng(3)
    batches = [
        pa.table({"v": [f"{x:016x}" for x in rng.integers(0, 2**62, 20_000)]}) for _ in range(40)
    ]
    staged = write_staged(tmp_path / "big.staged", batches, batch_rows=20_000)
    one = batches[0].nbytes
    start, peak = pa.total_allocated_bytes(), 0
    for _ in staged.iter_batches():
        peak = max(peak, pa.total_allocated_bytes() - start)
    assert peak < 8 * one, f"{peak / one:.1f} batches held while reading 40"


def test_tables_stored_as_a_dict_are_read_only_when_asked(tmp_path):
    """A step that gets another asset's dict of tables (the whole-table anonymize path) reads
    a table, or some of its columns, only when it asks: a child's foreign keys need one column
    of the parent's published table, not all of it in memory for the whole step."""
    import dagster as dg

    from resources.io_manager import StoredTables

    manager = ParquetIOManager(base_dir=str(tmp_path))
    key = dg.AssetKey(["m", "anonymize", "t"])
    tables = {
        "t": pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "c"]}),
        "t_sensitive": pd.DataFrame({"id": [1, 2, 3], "disease": ["x", "y", "z"]}),
    }
    manager.handle_output(dg.build_output_context(asset_key=key), tables)
    loaded = manager.load_input(dg.build_input_context(asset_key=key))
    assert isinstance(loaded, StoredTables)
    assert sorted(loaded) == ["t", "t_sensitive"] and len(loaded) == 2
    assert loaded.num_rows("t") == 3
    assert list(loaded.columns("t", ["id", "not_there"]).columns) == ["id"]
    assert loaded["t_sensitive"]["disease"].tolist() == ["x", "y", "z"]
    with pytest.raises(KeyError):
        loaded["nope"]
    # an asset writes them itself and returns the handle (an in-process run keeps its outputs)
    stored = manager.store_tables(key, "1.0.0", tables)
    manager.handle_output(dg.build_output_context(asset_key=key, partition_key="1.0.0"), stored)
    assert sorted(stored) == ["t", "t_sensitive"] and stored.num_rows("t_sensitive") == 3
    with pytest.raises(ValueError, match="written to"):
        manager.handle_output(dg.build_output_context(asset_key=key, partition_key="2.0.0"), stored)


def test_a_table_with_nothing_to_anonymize_passes_through_as_the_whole_table_path_gives_it(
    tmp_path,
):
    from etl_assets.anonymize.module_spec import needs_anonymization

    loaded = load_module(EXAMPLES / "clinic")
    wards = loaded.model.table("wards")
    assert not needs_anonymization(wards)
    clean = pd.DataFrame(
        {
            c.name: pd.array([f"{c.name}{i}" for i in range(20)], dtype=pd.ArrowDtype(pa.string()))
            for c in wards.columns
        }
        | {"_dm_source": pd.array(["csv"] * 20, dtype=pd.ArrowDtype(pa.string()))}
    )
    whole = anonymize_for_module(clean, wards, loaded, "1.0.0", None).tables["wards"]
    staged = write_staged(tmp_path / "clean.staged", [pa.Table.from_pandas(clean)])
    staged = StagedTable.open(staged.path, batch_rows=7)
    with StagedWriter(tmp_path / "out.staged") as writer:
        out = anonymize_staged(staged, wards, loaded, "1.0.0", None, {}, writer)
    assert out.staged.columns == [c.name for c in wards.columns]
    pd.testing.assert_frame_equal(out.staged.to_pandas(), whole)
    assert out.rows_in == 20 and out.staged.num_rows == 20 and out.quarantine.empty
    # linked, not copied; opened again it is the same table, and rewriting (or removing) the
    # clean table afterwards leaves it as it was
    reopened = StagedTable.open(out.staged.path, batch_rows=7)
    assert reopened.schema.equals(out.staged.schema, check_metadata=True)
    pd.testing.assert_frame_equal(reopened.to_pandas(), whole)
    [part] = [p for p in out.staged.path.iterdir() if p.name.startswith("part-")]
    assert part.stat().st_ino == (staged.path / part.name).stat().st_ino
    assert stat.S_IMODE(part.stat().st_mode) == 0o600
    write_staged(staged.path, [pa.Table.from_pandas(clean.iloc[:3])])
    StagedTable.remove(staged.path)
    pd.testing.assert_frame_equal(StagedTable.open(out.staged.path).to_pandas(), whole)
    assert all(len(b) <= 7 for b in reopened.iter_batches())
    with pytest.raises(ValueError, match="cannot link"), StagedWriter(tmp_path / "bad") as bad:
        bad.link(reopened, pa.schema([("nope", pa.string())]))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bad")]


def test_the_profile_fed_while_writing_equals_the_profile_read_back(tmp_path):
    """Extract and clean profile their tables as they write them; a column some batches lack
    (a CSV's ragged rows) or hold only as nulls counts as null there, as on reading back."""
    rng = np.random.default_rng(5)
    wide = pa.table({"k": pa.array(rng.integers(0, 10**12, 70_000)), "t": ["x"] * 70_000})
    nulls = pa.table({"k": pa.array([1, 2], pa.int64()), "t": pa.nulls(2)})
    ragged = pa.table({"k": pa.array([3], pa.int64()), "t": ["y"], RAW_COLUMN: ["3,y,z"]})
    profile = TableProfile()
    batches = profile.watch([nulls, wide, ragged, nulls])
    staged = write_staged(tmp_path / "p.staged", batches, batch_rows=50_000)
    fed = staged_metadata(staged, profile)["dm/profile"].value
    read_back = TableProfile()
    for batch in staged.iter_batches():
        read_back.add(batch)
    assert fed == staged_metadata(staged, read_back)["dm/profile"].value
    rows = {line.split(" | ")[0].strip("| "): line for line in fed.splitlines()[2:]}
    assert rows[RAW_COLUMN].endswith("| 100.0% | 0.0% |")  # one value in 70,005 rows
    assert "| ≈" in rows["k"] and rows["t"].endswith("| 0.0% | 0.0% |")


def test_a_profile_that_cannot_count_a_batch_fails_the_iteration(monkeypatch):
    """The profile counts on its own thread: what goes wrong there is raised where the batches
    are iterated, not lost; a consumer that stops early leaves nothing running."""
    profile = TableProfile()
    batches = [pa.table({"k": [i]}) for i in range(10)]

    def broken(self, values):
        raise ValueError("cannot count")

    monkeypatch.setattr("etl_assets.distinct.DistinctCounter.add", broken)
    with pytest.raises(ValueError, match="cannot count"):
        list(profile.watch(batches))
    monkeypatch.undo()  # errors surface as soon as a count has failed: stop early with none
    stopped = TableProfile().watch(batches)
    assert next(stopped).num_rows == 1
    stopped.close()  # the generator's worker is shut down with it
    assert not [t for t in threading.enumerate() if t.name.startswith("dm-profile")]
