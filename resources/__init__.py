"""Dagster resources and IO managers: PostgreSQL, the outbox, the Parquet IO manager, and the
connector resources (Kafka, S3, SFTP, HTTP) built per named connection."""

from resources.http import HttpResource
from resources.io_manager import ParquetIOManager
from resources.kafka import KafkaResource
from resources.outbox import OutboxResource
from resources.postgres import PostgresResource
from resources.s3 import s3_resource_for, s3_resource_from_env
from resources.sftp import SftpResource

__all__ = [
    "HttpResource",
    "KafkaResource",
    "OutboxResource",
    "ParquetIOManager",
    "PostgresResource",
    "SftpResource",
    "s3_resource_for",
    "s3_resource_from_env",
]
