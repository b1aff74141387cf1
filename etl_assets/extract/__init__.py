"""The extract stage: connectors (one module each), extraction steps and their assets."""
