"""Dagster resources and IO managers: PostgreSQL, the outbox and the Parquet IO manager."""

from resources.io_manager import ParquetIOManager
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource

__all__ = ["OutboxResource", "ParquetIOManager", "PostgresResource"]
