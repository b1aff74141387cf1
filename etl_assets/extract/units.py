"""Extraction steps: one per collection entry, or one per shard of a sharded entry."""

from __future__ import annotations

from dataclasses import dataclass

from etl_assets.metadata import CollectionEntry, DataModule


def entry_name(entry: CollectionEntry) -> str:
    return f"{entry.table}__{entry.source}"


@dataclass(frozen=True)
class ExtractionUnit:
    """One extraction step: a collection entry, or one shard of a sharded entry."""

    name: str
    entry: CollectionEntry
    shard: str | None = None


def extraction_units(model: DataModule, table: str | None = None) -> list[ExtractionUnit]:
    """Every extraction step, in collection order; a sharded source gives one per shard."""
    units = []
    for entry in model.collection:
        if table is not None and entry.table != table:
            continue
        shards = getattr(entry.extract, "shards", None)
        if shards:
            for shard in shards:
                single = entry.model_copy(
                    update={
                        "extract": entry.extract.model_copy(
                            update={"shards": None, "connection": shard}
                        )
                    }
                )
                units.append(ExtractionUnit(f"{entry_name(entry)}__{shard}", single, shard))
        else:
            units.append(ExtractionUnit(entry_name(entry), entry))
    return units
