"""The publish stage: the outbox, one sink interface (PostgreSQL, S3, Kafka, upload scripts),
the Croissant metadata, and their assets."""
