"""Dagster resources and IO managers: PostgreSQL, the outbox, the Parquet IO manager, secrets,
and the connector resources (Kafka, S3, SFTP, HTTP) built per named connection. `deployment`
maps the environment to them."""

from resources.http import HttpResource
from resources.io_manager import IO_MANAGER_KEY, ParquetIOManager
from resources.kafka import KafkaResource
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource
from resources.s3 import s3_resource_for
from resources.sftp import SftpResource

__all__ = [
    "IO_MANAGER_KEY",
    "HttpResource",
    "KafkaResource",
    "OutboxResource",
    "ParquetIOManager",
    "PostgresResource",
    "SftpResource",
    "s3_resource_for",
]
