"""Extraction from files and scripts: formats, source names, and errors that say what went wrong."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl_assets.errors import ExtractionError
from etl_assets.extract.entry import extract_entry
from etl_assets.metadata import CollectionEntry


def entry(extract: dict, mapping: dict | None = None) -> CollectionEntry:
    return CollectionEntry.model_validate(
        {"table": "t", "source": "src", "extract": extract, "mapping": mapping or {}}
    )


def test_every_file_format_reads_the_same_records(tmp_path):
    records = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    (tmp_path / "r.csv").write_text("id,name\n1,a\n2,b\n")
    (tmp_path / "r.txt").write_text("id;name\n1;a\n2;b\n")
    (tmp_path / "r.json").write_text(json.dumps({"data": {"rows": records}}))
    (tmp_path / "r.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "r.parquet")
    cases = [
        {"type": "file", "path": "r.csv"},
        {"type": "file", "path": "r.txt", "delimiter": ";"},
        {"type": "file", "path": "r.json", "recordsPath": "data.rows"},
        {"type": "file", "path": "r.jsonl"},
        {"type": "file", "path": "r.parquet"},
    ]
    for case in cases:
        df = extract_entry(entry(case), tmp_path)
        assert df["id"].astype(str).tolist() == ["1", "2"], case
        assert df["name"].astype(str).tolist() == ["a", "b"], case
        assert df["_dm_source"].tolist() == ["src", "src"]


def test_glob_concatenates_files_and_mapping_renames(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("Ident,name\n1,a\n")
    (tmp_path / "in" / "b.csv").write_text("Ident,name\n2,b\n")
    df = extract_entry(entry({"type": "file", "path": "in/*.csv"}, {"Ident": "id"}), tmp_path)
    assert df["id"].tolist() == ["1", "2"]


def test_csv_keeps_text_exactly(tmp_path):
    (tmp_path / "r.csv").write_text("code,note\n007,\n010, x \n")
    df = extract_entry(entry({"type": "file", "path": "r.csv"}), tmp_path)
    assert df["code"].tolist() == ["007", "010"]
    assert df["note"].tolist() == ["", " x "]


def script(tmp_path, body: str) -> CollectionEntry:
    (tmp_path / "s.py").write_text(body)
    return entry({"type": "script", "path": "s.py", "args": ["--since", "2026-01-01"]})


def test_script_json_array_and_json_lines(tmp_path):
    e = script(tmp_path, "import json,sys\nprint(json.dumps([{'a': 1, 'args': sys.argv[1:]}]))")
    df = extract_entry(e, tmp_path)
    assert df["a"].tolist() == [1]
    assert json.loads(df["args"][0]) == ["--since", "2026-01-01"]
    e = script(tmp_path, 'print(\'{"a": 1}\')\nprint(\'{"a": "x"}\')')
    df = extract_entry(e, tmp_path)
    assert df["a"].tolist() == ["1", "x"]  # mixed types stay as text for typing to judge


def test_failing_script_reports_exit_code_and_keeps_stderr_apart(tmp_path):
    """stderr may quote records: it is kept for the restricted zone, not put in the message."""
    e = script(tmp_path, "import sys\nprint('connecting', file=sys.stderr)\nsys.exit('db down')")
    with pytest.raises(ExtractionError) as info:
        extract_entry(e, tmp_path)
    assert "exited with code 1 and wrote 2 lines to stderr" in str(info.value)
    assert "db down" not in str(info.value)
    assert "db down" in info.value.restricted_detail
    assert info.value.retryable


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("print('hello')", "expected a JSON array of records or JSON Lines"),
        ("print('{\"a\": 1}'); print('{oops')", "line 2 of the JSON Lines output is not JSON"),
        ("print('[1, 2]')", "record 0 is int, expected a JSON object"),
        ("print('\"text\"')", "expected a list of records, got str"),
    ],
)
def test_malformed_script_output_is_a_clear_error(tmp_path, stdout, expected):
    with pytest.raises(ExtractionError, match=expected) as info:
        extract_entry(script(tmp_path, stdout), tmp_path)
    assert "output of script s.py" in str(info.value)
    assert not info.value.retryable


def test_script_gets_a_minimal_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_SECRET_TOKEN", "s3cr3t")
    e = script(tmp_path, "import json,os\nprint(json.dumps([dict(os.environ)]))")
    df = extract_entry(e, tmp_path)
    assert "DM_SECRET_TOKEN" not in df.columns
    assert df["DM_TABLE"][0] == "t"


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(ExtractionError, match="no file matches"):
        extract_entry(entry({"type": "file", "path": "nope/*.csv"}), tmp_path)
    (tmp_path / "r.dat").write_text("x")
    with pytest.raises(ExtractionError, match="set extract.format"):
        extract_entry(entry({"type": "file", "path": "r.dat"}), tmp_path)


def test_python_is_the_running_interpreter(tmp_path):
    e = script(tmp_path, "import json,sys\nprint(json.dumps([{'py': sys.executable}]))")
    assert extract_entry(e, tmp_path)["py"][0] == sys.executable
    assert isinstance(extract_entry(e, tmp_path), pd.DataFrame)
