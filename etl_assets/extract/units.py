"""Extraction steps: one per collection entry, per shard of a sharded entry, and per range of a
partitioned `sql` entry (shards × ranges when both are given)."""

from __future__ import annotations

from dataclasses import dataclass

from etl_assets.metadata import CollectionEntry, DataModule


def entry_name(entry: CollectionEntry) -> str:
    return f"{entry.table}__{entry.source}"


@dataclass(frozen=True)
class ExtractionUnit:
    """One extraction step: a collection entry, one shard of a sharded entry, or one range."""

    name: str
    entry: CollectionEntry
    shard: str | None = None
    partition: int | None = None  # 0-based range of a partitioned sql entry


def _for_shard(entry: CollectionEntry, shard: str) -> CollectionEntry:
    """The entry as one shard reads it: that shard's connection, no shard list."""
    extract = entry.extract.model_copy(update={"shards": None, "connection": shard})
    return entry.model_copy(update={"extract": extract})


def extraction_units(model: DataModule, table: str | None = None) -> list[ExtractionUnit]:
    """Every extraction step, in collection order; a sharded source gives one per shard, a
    partitioned one one per range (of each shard)."""
    units = []
    for entry in model.collection:
        if table is not None and entry.table != table:
            continue
        shards = getattr(entry.extract, "shards", None)
        targets = [(entry, None, entry_name(entry))]
        if shards:
            targets = [(_for_shard(entry, s), s, f"{entry_name(entry)}__{s}") for s in shards]
        partition = getattr(entry.extract, "partition", None)
        for single, shard, name in targets:
            if partition is None:
                units.append(ExtractionUnit(name, single, shard))
            else:
                units.extend(
                    ExtractionUnit(f"{name}__p{i}", single, shard, i)
                    for i in range(partition.range_count())
                )
    return units
