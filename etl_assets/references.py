"""Cross-reference checks of a parsed module: names that must point at tables, columns,
connections and files, and foreign keys without cycles."""

from __future__ import annotations

from pathlib import Path

from etl_assets.errors import Problem
from etl_assets.model import (
    DataModule,
    Generalization,
    Perturbation,
    PostgresConnector,
    Pseudonymization,
    ScriptCollector,
)

CONNECTOR_CONNECTION_TYPES = {
    "postgres": "postgres",
    "rest": "rest",
    "sftp": "sftp",
    "kafka": "kafka",
    "s3": "s3",
}


def _fits(value: object, data_type: str) -> bool:
    """Whether a literal from the metadata is a valid value of the column's type."""
    import datetime as dt

    if data_type == "string":
        return isinstance(value, str)
    if data_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if data_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if data_type == "boolean":
        return isinstance(value, bool)
    if data_type in ("date", "datetime"):
        if isinstance(value, dt.date):
            return True
        try:
            dt.datetime.fromisoformat(str(value))
        except ValueError:
            return False
        return True
    return False


def check_references(module: DataModule, folder: Path | None = None) -> list[Problem]:
    """Every problem with names and cross-references in `module` (empty list when none)."""
    problems: list[Problem] = []
    tables = {t.name: t for t in module.tables}
    connections = {c.name: c for c in module.connections}

    seen: set[str] = set()
    for ti, table in enumerate(module.tables):
        where = f"tables[{ti}]"
        if table.name in seen:
            problems.append(Problem(f"{where}.name", f"duplicate table name {table.name!r}"))
        seen.add(table.name)
        column_names = [c.name for c in table.columns]
        for key in table.primaryKey or []:
            if key not in column_names:
                problems.append(
                    Problem(
                        f"{where}.primaryKey",
                        f"unknown column {key!r}; expected one of {', '.join(column_names)}",
                    )
                )
        if not module.entries_for(table.name):
            problems.append(
                Problem(where, f"table {table.name!r} has no entry in the collection protocol")
            )
        for ci, column in enumerate(table.columns):
            cwhere = f"{where}.columns[{ci}]"
            if column.empty and column.empty.strategy == "fill":
                if not _fits(column.empty.value, column.dataType):
                    problems.append(
                        Problem(
                            f"{cwhere}.empty.value",
                            f"fill value {column.empty.value!r} is not a {column.dataType}",
                        )
                    )
            rng = column.range
            if rng is not None:
                for bound in ("min", "max"):
                    v = getattr(rng, bound)
                    if v is not None and not _fits(v, column.dataType):
                        problems.append(
                            Problem(f"{cwhere}.range.{bound}", f"{v!r} is not a {column.dataType}")
                        )
                for i, v in enumerate(rng.allowed or []):
                    if not _fits(v, column.dataType):
                        problems.append(
                            Problem(
                                f"{cwhere}.range.allowed[{i}]", f"{v!r} is not a {column.dataType}"
                            )
                        )
            fk = column.foreignKey
            if fk is not None:
                if fk.table not in tables:
                    problems.append(
                        Problem(
                            f"{cwhere}.foreignKey.table",
                            f"unknown table {fk.table!r}; expected one of {', '.join(tables)}",
                        )
                    )
                elif fk.column not in [c.name for c in tables[fk.table].columns]:
                    problems.append(
                        Problem(
                            f"{cwhere}.foreignKey.column",
                            f"table {fk.table!r} has no column {fk.column!r}",
                        )
                    )
                elif fk.table == table.name:
                    problems.append(
                        Problem(
                            f"{cwhere}.foreignKey", "a foreign key must reference another table"
                        )
                    )
                elif _pseudonymized(column) != _pseudonymized(tables[fk.table].column(fk.column)):
                    problems.append(
                        Problem(
                            f"{cwhere}.anonymization",
                            f"{fk.table}.{fk.column} is "
                            + ("" if _pseudonymized(tables[fk.table].column(fk.column)) else "not ")
                            + "pseudonymized; a foreign key must be pseudonymized exactly when the"
                            " column it references is, or the published tables stop joining",
                        )
                    )
                elif tables[fk.table].column(fk.column).dataType != column.dataType:
                    problems.append(
                        Problem(
                            f"{cwhere}.foreignKey",
                            f"type {column.dataType} does not match {fk.table}.{fk.column}"
                            f" ({tables[fk.table].column(fk.column).dataType})",
                        )
                    )
            for ai, op in enumerate(column.anonymization):
                awhere = f"{cwhere}.anonymization[{ai}]"
                if isinstance(op, Perturbation) and column.dataType not in ("integer", "number"):
                    problems.append(
                        Problem(awhere, f"perturb needs a numeric column, not {column.dataType}")
                    )
                if isinstance(op, Generalization):
                    is_qi = (
                        table.privacy is not None and column.name in table.privacy.quasiIdentifiers
                    )
                    if is_qi and op.level is not None:
                        problems.append(
                            Problem(
                                f"{awhere}.level",
                                "level is chosen by the privacy model search for a"
                                " quasi-identifier; remove it",
                            )
                        )
                    hierarchical_target = table.privacy is not None and any(
                        pm.distance == "hierarchical"
                        and (pm.attribute or (table.privacy.sensitive or [None])[0]) == column.name
                        for pm in table.privacy.models
                    )
                    if not is_qi and op.level is None and not hierarchical_target:
                        problems.append(
                            Problem(
                                f"{awhere}.level",
                                "generalizing a column that is not a quasi-identifier needs a level"
                                " (1 = the first generalization step)",
                            )
                        )
                    if (op.bins or op.width) and column.dataType not in ("integer", "number"):
                        problems.append(Problem(awhere, "bins/width need a numeric column"))
                    if op.truncate and column.dataType not in ("date", "datetime"):
                        problems.append(Problem(awhere, "truncate needs a date or datetime column"))
                    if op.hierarchy and op.hierarchy.file and folder is not None:
                        if not (folder / op.hierarchy.file).is_file():
                            problems.append(
                                Problem(
                                    f"{awhere}.hierarchy.file",
                                    f"file not found: {op.hierarchy.file}",
                                )
                            )
        if table.privacy is not None:
            pwhere = f"{where}.privacy"
            for field in ("quasiIdentifiers", "sensitive"):
                for i, name in enumerate(getattr(table.privacy, field)):
                    if name not in column_names:
                        problems.append(
                            Problem(f"{pwhere}.{field}[{i}]", f"unknown column {name!r}")
                        )
            for mi, pm in enumerate(table.privacy.models):
                if pm.type != "k-anonymity":
                    attr = pm.attribute or (table.privacy.sensitive or [None])[0]
                    if attr is None:
                        problems.append(
                            Problem(
                                f"{pwhere}.models[{mi}]",
                                f"{pm.type} needs a sensitive attribute (attribute or sensitive)",
                            )
                        )
                    elif attr not in column_names:
                        problems.append(
                            Problem(f"{pwhere}.models[{mi}].attribute", f"unknown column {attr!r}")
                        )
                    elif pm.distance == "hierarchical" and not any(
                        isinstance(op, Generalization) and op.hierarchy is not None
                        for op in table.column(attr).anonymization
                    ):
                        problems.append(
                            Problem(
                                f"{pwhere}.models[{mi}].distance",
                                f"hierarchical distance needs a generalization hierarchy on {attr!r}",
                            )
                        )

    problems.extend(_foreign_key_cycles(module))

    sources: set[tuple[str, str]] = set()
    for ei, entry in enumerate(module.collection):
        where = f"collection[{ei}]"
        if entry.table not in tables:
            problems.append(
                Problem(
                    f"{where}.table",
                    f"unknown table {entry.table!r}; expected one of {', '.join(tables)}",
                )
            )
        if (entry.table, entry.source) in sources:
            problems.append(
                Problem(
                    f"{where}.source",
                    f"source {entry.source!r} is listed twice for table {entry.table!r}",
                )
            )
        sources.add((entry.table, entry.source))
        ext = entry.extract
        names = []
        if isinstance(ext, PostgresConnector) and ext.shards:
            names = [(f"{where}.extract.shards", s) for s in ext.shards]
        elif getattr(ext, "connection", None):
            names = [(f"{where}.extract.connection", ext.connection)]
        for path, name in names:
            want = CONNECTOR_CONNECTION_TYPES.get(ext.type)
            if name not in connections:
                problems.append(Problem(path, f"unknown connection {name!r}"))
            elif connections[name].type != want:
                problems.append(
                    Problem(
                        path, f"connection {name!r} is {connections[name].type}, expected {want}"
                    )
                )
        if isinstance(ext, ScriptCollector) and folder is not None:
            if not (folder / ext.path).is_file():
                problems.append(Problem(f"{where}.extract.path", f"script not found: {ext.path}"))

    sink = module.upload.sink
    if sink is not None and sink.connection:
        if sink.connection not in connections:
            problems.append(
                Problem("upload.sink.connection", f"unknown connection {sink.connection!r}")
            )
        elif connections[sink.connection].type != sink.type:
            problems.append(
                Problem(
                    "upload.sink.connection",
                    f"connection {sink.connection!r} is {connections[sink.connection].type},"
                    f" expected {sink.type}",
                )
            )
    if module.upload.script is not None and folder is not None:
        if not (folder / module.upload.script.path).is_file():
            problems.append(
                Problem("upload.script.path", f"script not found: {module.upload.script.path}")
            )
    return problems


def _pseudonymized(column) -> bool:
    return any(isinstance(op, Pseudonymization) for op in column.anonymization)


def _foreign_key_cycles(module: DataModule) -> list[Problem]:
    """A cycle of foreign keys has no order to clean in; report the first one found."""
    graph = {t.name: {c.foreignKey.table for c in t.columns if c.foreignKey} for t in module.tables}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if state.get(nxt) is None and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for name in graph:
        if state.get(name) is None and (cycle := visit(name)):
            return [Problem("tables", f"foreign keys form a cycle: {' -> '.join(cycle)}")]
    return []


def table_order(module: DataModule) -> list[str]:
    """Tables with every foreign-key parent before its children."""
    graph = {t.name: {c.foreignKey.table for c in t.columns if c.foreignKey} for t in module.tables}
    done: list[str] = []

    def visit(node: str) -> None:
        if node in done:
            return
        for parent in sorted(graph[node]):
            visit(parent)
        done.append(node)

    for name in graph:
        visit(name)
    return done
