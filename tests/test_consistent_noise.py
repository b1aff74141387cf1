"""Randomized anonymization is keyed per record: versions of unchanged sources publish the same
noisy values (averaging versions gains nothing), and append mode adds nothing."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest

from tests.helpers import CONTEXT, materializations, run_version, write_module


def module(mode: str, permute: bool = True) -> dict:
    ward = {"name": "ward", "dataType": "string"}
    if permute:  # a permutation reassigns values whenever its class changes: see below
        ward["anonymization"] = {"method": "permute", "within": "table"}
    return {
        "@context": CONTEXT,
        "name": "weights",
        "autoUpload": True,
        "tables": [
            {
                "name": "people",
                "primaryKey": ["person_id"],
                "onKeyConflict": "dropAll",
                "columns": [
                    {"name": "person_id", "dataType": "integer"},
                    {"name": "weight_kg", "dataType": "number",
                     "range": {"min": 0.5, "max": 350, "onViolation": "clamp"},
                     "anonymization": {"method": "perturb", "noise": "laplace", "scale": 1.5}},
                    {"name": "steps", "dataType": "integer",
                     "anonymization": {"method": "perturb", "noise": "gaussian", "scale": 300}},
                    ward,
                ],
            }
        ],
        "collection": [
            {"table": "people", "source": "csv", "extract": {"type": "file", "path": "p.csv"}}
        ],
        "upload": {"sink": {"type": "postgres", "mode": mode}},
    }  # fmt: skip


def people_csv(n: int = 120) -> str:
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "person_id": np.arange(1, n + 1),
            "weight_kg": np.round(rng.normal(75, 12, n), 1),
            "steps": rng.integers(1000, 15000, n),
            "ward": rng.choice(["A", "B", "C", "D"], n),
        }
    )
    return df.to_csv(index=False)


@pytest.fixture
def instance(dagster_home):
    with dg.instance_for_test(temp_dir=str(dagster_home)) as inst:
        yield inst


def test_ten_versions_of_unchanged_sources_publish_identical_noisy_values(
    tmp_path, resources, instance, pg_url
):
    folder = write_module(tmp_path / "weights", module("snapshot"), {"p.csv": people_csv()})
    versions = [f"1.0.{i}" for i in range(1, 11)]
    for version in versions:
        assert run_version(folder, version, resources, instance).success
    with psycopg.connect(pg_url) as conn:
        tables = [
            pd.read_sql(f"SELECT * FROM dm_weights.people__v{v.replace('.', '_')}", conn)
            .sort_values("person_id")
            .reset_index(drop=True)
            for v in versions
        ]  # the versions' own relations, as a consumer holding all ten reads them
    raw = pd.read_csv(folder / "p.csv")
    for t in tables[1:]:
        pd.testing.assert_frame_equal(t, tables[0])
    # it is noise (not the raw value), and averaging the ten versions is no better than one
    assert (tables[0]["weight_kg"] != raw["weight_kg"]).mean() > 0.9
    mean_of_ten = sum(t["weight_kg"] for t in tables) / len(tables)
    one_error = (tables[0]["weight_kg"] - raw["weight_kg"]).abs().mean()
    ten_error = (mean_of_ten - raw["weight_kg"]).abs().mean()
    assert ten_error == pytest.approx(one_error)


def test_append_mode_of_unchanged_sources_with_perturbation_inserts_nothing(
    tmp_path, resources, instance, pg_url
):
    folder = write_module(
        tmp_path / "weights", module("append", permute=False), {"p.csv": people_csv()}
    )
    inserted = []
    for version in ("1.0.1", "1.0.2", "1.0.3"):
        result = run_version(folder, version, resources, instance)
        assert result.success
        inserted.append(
            materializations(result)[("weights", "upload", "people")]["dm/inserted_rows"]
        )
    assert inserted == [120, 0, 0]
    # a changed record gets fresh noise and is appended; the others are not
    csv = pd.read_csv(folder / "p.csv")
    csv.loc[csv.person_id == 7, "steps"] += 1
    csv.to_csv(folder / "p.csv", index=False)
    result = run_version(folder, "1.0.4", resources, instance)
    assert materializations(result)[("weights", "upload", "people")]["dm/inserted_rows"] == 1
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM dm_weights.people").fetchone()[0] == 121
