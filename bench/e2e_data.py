"""The end-to-end benchmark's module: customers (N/10) and orders (N x 12 columns) as CSV, with
about 1% defects of every kind, pseudonymized keys, generalized quasi-identifiers and k = 5.

`write_module(folder, n, full=True)` writes the CSV files and the module's metadata; with
`full=False` the same data and tables with no rules and no anonymization (the pipeline's floor).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

CONTEXT = "https://w3id.org/datamodule-etl/context/v1"
CHUNK = 1_000_000
SEGMENTS = ["retail", "business", "student", "senior", "public"]
PRODUCTS = [f"P{i:04d}" for i in range(500)]
CATEGORIES = ["books", "garden", "toys", "food", "tools", "music", "sports", "home"]
CHANNELS = ["web", "app", "store", "phone"]
STATUSES = ["open", "paid", "shipped", "returned"]


def _text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _defect(col: pa.Array, rng: np.random.Generator, rate: float, value: str) -> pa.Array:
    """Replace about `rate` of the values with `value` (a defect the rules must handle)."""
    mask = pa.array(rng.random(len(col)) < rate)
    return pc.if_else(mask, pa.scalar(value, pa.string()), col)


def customers(n: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1)
    days = rng.integers(-20_000, 10_000, n)
    birth = pc.cast(pc.cast(pa.array(days, pa.int32()), pa.date32()), pa.string())
    postcode = _text(rng.integers(10_000, 99_999, n))
    table = {
        "customer_id": _text(ids),
        "name": pc.binary_join_element_wise("Customer ", _text(ids), ""),
        "email": pc.binary_join_element_wise("c", _text(ids), "@example.org", ""),
        "birth_date": _defect(birth, rng, 0.005, "not a date"),
        "postcode": _defect(postcode, rng, 0.005, ""),
        "segment": _defect(_text(rng.choice(SEGMENTS, n)), rng, 0.005, "unknown"),
        "signup": _text(rng.integers(2015, 2027, n)),
    }
    return pa.table(table)


def orders(start: int, n: int, n_customers: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = np.arange(start + 1, start + n + 1)
    ids = np.where(rng.random(n) < 0.003, ids - 1, ids)  # duplicate keys
    cust = rng.integers(1, n_customers + 1, n)
    cust = np.where(rng.random(n) < 0.003, n_customers + 7, cust)  # dangling references
    days = rng.integers(19_000, 20_400, n)
    table = {
        "order_id": _text(ids),
        "customer_id": _text(cust),
        "order_date": pc.cast(pc.cast(pa.array(days, pa.int32()), pa.date32()), pa.string()),
        "amount": _defect(_text(np.round(rng.gamma(2.0, 40.0, n), 2)), rng, 0.004, "-5"),
        "quantity": _defect(_text(rng.integers(1, 20, n)), rng, 0.003, "many"),
        "product": _text(rng.choice(PRODUCTS, n)),
        "category": _text(rng.choice(CATEGORIES, n)),
        "channel": _defect(_text(rng.choice(CHANNELS, n)), rng, 0.004, ""),
        "status": _defect(_text(rng.choice(STATUSES, n)), rng, 0.003, "lost"),
        "discount": _text(np.round(rng.random(n) * 0.3, 2)),
        "shipping_postcode": _text(rng.integers(10_000, 99_999, n)),
        "notes": _defect(pa.nulls(n, pa.string()).fill_null(""), rng, 0.01, "call before"),
    }
    return pa.table(table)


def write_data(folder: Path, n: int) -> None:
    """customers.csv (n/10 rows) and orders.csv (n rows), written in chunks; exact duplicate
    lines are appended to both (about 0.1%)."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    n_customers = max(n // 10, 10)
    cust = customers(n_customers)
    pacsv.write_csv(pa.concat_tables([cust, cust.slice(0, max(n_customers // 1000, 1))]),
                    data / "customers.csv")  # fmt: skip
    with pacsv.CSVWriter(data / "orders.csv", orders(0, 0, n_customers, 0).schema) as out:
        for i, start in enumerate(range(0, n, CHUNK)):
            part = orders(start, min(CHUNK, n - start), n_customers, seed=10 + i)
            out.write_table(part)
            out.write_table(part.slice(0, max(len(part) // 1000, 1)))


def _col(name: str, data_type: str, **extra) -> dict:
    return {"name": name, "dataType": data_type, **extra}


def tables(full: bool) -> list[dict]:
    def rule(**kw):
        return kw if full else {}

    customer_cols = [
        _col("customer_id", "integer", nullable=False,
             **rule(anonymization={"method": "pseudonymize"})),
        _col("name", "string", **rule(anonymization={"method": "suppress"})),
        _col("email", "string", **rule(anonymization={"method": "suppress"})),
        _col("birth_date", "date", **rule(
            range={"min": "1900-01-01", "max": "2026-11-01", "onViolation": "drop"},
            anonymization={"method": "generalize", "truncate": ["month", "year"]})),
        _col("postcode", "string", **rule(
            empty={"strategy": "fill", "value": "00000"},
            anonymization={"method": "generalize", "keepPrefix": [3, 2, 0]})),
        _col("segment", "string", **rule(
            range={"allowed": SEGMENTS, "onViolation": "replace", "replacement": "retail"})),
        _col("signup", "integer"),
    ]  # fmt: skip
    order_cols = [
        _col("order_id", "integer", nullable=False),
        _col("customer_id", "integer",
             **rule(foreignKey={"table": "customers", "column": "customer_id"},
                    anonymization={"method": "pseudonymize"})),
        _col("order_date", "date"),
        _col("amount", "number", **rule(range={"min": 0, "onViolation": "clamp"})),
        _col("quantity", "integer", **rule(range={"min": 1, "max": 100, "onViolation": "drop"})),
        _col("product", "string"),
        _col("category", "string"),
        _col("channel", "string", **rule(empty={"strategy": "fill", "value": "web"})),
        _col("status", "string", **rule(
            range={"allowed": STATUSES, "onViolation": "drop"})),
        _col("discount", "number"),
        _col("shipping_postcode", "string"),
        _col("notes", "string"),
    ]  # fmt: skip
    customers_table = {"name": "customers", "columns": customer_cols}
    orders_table = {"name": "orders", "columns": order_cols}
    if full:
        customers_table |= {
            "primaryKey": ["customer_id"],
            "onKeyConflict": "sourcePriority",
            "privacy": {
                "quasiIdentifiers": ["birth_date", "postcode"],
                "models": [{"type": "k-anonymity", "k": 5}],
                "suppressionLimit": 0.05,
            },
        }
        orders_table |= {
            "primaryKey": ["order_id"],
            "onKeyConflict": "dropAll",
            "privacyExemption": "benchmark data: orders carry no quasi-identifiers of their own",
        }
    return [customers_table, orders_table]


def write_module(folder: Path, n: int, full: bool = True, data: Path | None = None) -> Path:
    """The module folder `folder` (its name is the module's); data written unless given."""
    folder.mkdir(parents=True, exist_ok=True)
    if data is None:
        write_data(folder, n)
    else:
        (folder / "data").symlink_to(data)
    doc = {
        "@context": CONTEXT,
        "name": folder.name,
        "autoUpload": True,
        "retry": {"maxRetries": 0},
        "tables": tables(full),
        "collection": [
            {"table": t, "source": "csv", "extract": {"type": "file", "path": f"data/{t}.csv"}}
            for t in ("customers", "orders")
        ],
        "upload": {"sink": {"type": "postgres", "mode": "snapshot"}, "shrinkLimit": 1},
    }
    (folder / "module.jsonld").write_text(json.dumps(doc, indent=1))
    return folder
