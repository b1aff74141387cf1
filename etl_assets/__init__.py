"""Datamodule ETL: data module folders become partitioned Dagster asset graphs."""

__version__ = "0.1.0"
