"""Cross-reference checks of a parsed module: names that must point at tables, columns,
connections and files, literals that must fit their column's type, and foreign keys without
cycles. Each check returns problems with the JSON path where they are."""

from __future__ import annotations

import glob
from pathlib import Path

from etl_assets.errors import Problem
from etl_assets.metadata.anonymization import Generalization, Perturbation, Pseudonymization
from etl_assets.metadata.base import literal_fits
from etl_assets.metadata.collection import (
    SQL_CONNECTION_TYPES,
    FileConnector,
    PostgresConnector,
    ScriptCollector,
    SqlConnector,
)
from etl_assets.metadata.columns import Column
from etl_assets.metadata.module import DataModule
from etl_assets.metadata.tables import Table


def check_references(module: DataModule, folder: Path | None = None) -> list[Problem]:
    """Every problem with names and cross-references in `module` (empty list when none)."""
    problems: list[Problem] = []
    tables = {t.name: t for t in module.tables}
    seen: set[str] = set()
    for ti, table in enumerate(module.tables):
        where = f"tables[{ti}]"
        if table.name in seen:
            problems.append(Problem(f"{where}.name", f"duplicate table name {table.name!r}"))
        seen.add(table.name)
        problems += _table_keys(table, where)
        if not module.entries_for(table.name):
            problems.append(
                Problem(where, f"table {table.name!r} has no entry in the collection protocol")
            )
        for ci, column in enumerate(table.columns):
            cwhere = f"{where}.columns[{ci}]"
            problems += _literals(column, cwhere)
            problems += _foreign_key(column, table, tables, cwhere)
            problems += _column_anonymization(column, table, cwhere, folder)
        problems += _privacy(table, where)
    problems += _foreign_key_cycles(module)
    problems += _collection(module, folder)
    problems += _upload(module, folder)
    return problems


def _table_keys(table: Table, where: str) -> list[Problem]:
    names = [c.name for c in table.columns]
    return [
        Problem(
            f"{where}.primaryKey", f"unknown column {key!r}; expected one of {', '.join(names)}"
        )
        for key in table.primaryKey or []
        if key not in names
    ]


def _a(data_type: str) -> str:
    return f"an {data_type}" if data_type[0] in "aeiou" else f"a {data_type}"


def _literals(column: Column, where: str) -> list[Problem]:
    """Fill values, range bounds and allowed values must be values of the column's type."""
    problems = []
    t = column.dataType
    if column.empty and column.empty.strategy == "fill" and not literal_fits(column.empty.value, t):
        problems.append(
            Problem(f"{where}.empty.value", f"fill value {column.empty.value!r} is not {_a(t)}")
        )
    rng = column.range
    if rng is None:
        return problems
    for bound in ("min", "max"):
        v = getattr(rng, bound)
        if v is not None and not literal_fits(v, t):
            problems.append(Problem(f"{where}.range.{bound}", f"{v!r} is not {_a(t)}"))
    for i, v in enumerate(rng.allowed or []):
        if not literal_fits(v, t):
            problems.append(Problem(f"{where}.range.allowed[{i}]", f"{v!r} is not {_a(t)}"))
    if rng.replacement is not None and not literal_fits(rng.replacement, t):
        problems.append(
            Problem(f"{where}.range.replacement", f"{rng.replacement!r} is not {_a(t)}")
        )
    return problems


def _foreign_key(
    column: Column, table: Table, tables: dict[str, Table], where: str
) -> list[Problem]:
    fk = column.foreignKey
    if fk is None:
        return []
    if fk.table not in tables:
        return [
            Problem(
                f"{where}.foreignKey.table",
                f"unknown table {fk.table!r}; expected one of {', '.join(tables)}",
            )
        ]
    parent = tables[fk.table]
    if fk.column not in [c.name for c in parent.columns]:
        return [
            Problem(f"{where}.foreignKey.column", f"table {fk.table!r} has no column {fk.column!r}")
        ]
    if fk.table == table.name:
        return [Problem(f"{where}.foreignKey", "a foreign key must reference another table")]
    target = parent.column(fk.column)
    if _pseudonymized(column) != _pseudonymized(target):
        return [
            Problem(
                f"{where}.anonymization",
                f"{fk.table}.{fk.column} is "
                + ("" if _pseudonymized(target) else "not ")
                + "pseudonymized; a foreign key must be pseudonymized exactly when the column it"
                " references is, or the published tables stop joining",
            )
        ]
    if target.dataType != column.dataType:
        return [
            Problem(
                f"{where}.foreignKey",
                f"type {column.dataType} does not match {fk.table}.{fk.column} ({target.dataType})",
            )
        ]
    return []


def _column_anonymization(
    column: Column, table: Table, where: str, folder: Path | None
) -> list[Problem]:
    problems = []
    privacy = table.privacy
    is_qi = privacy is not None and column.name in privacy.quasiIdentifiers
    for ai, op in enumerate(column.anonymization):
        awhere = f"{where}.anonymization[{ai}]"
        if isinstance(op, Perturbation) and column.dataType not in ("integer", "number"):
            problems.append(
                Problem(awhere, f"perturb needs a numeric column, not {column.dataType}")
            )
        if not isinstance(op, Generalization):
            continue
        if is_qi and op.level is not None:
            problems.append(
                Problem(
                    f"{awhere}.level",
                    "level is chosen by the privacy model search for a quasi-identifier; remove it",
                )
            )
        hierarchical_target = privacy is not None and any(
            pm.distance == "hierarchical"
            and (pm.attribute or (privacy.sensitive or [None])[0]) == column.name
            for pm in privacy.models
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
                    Problem(f"{awhere}.hierarchy.file", f"file not found: {op.hierarchy.file}")
                )
    return problems


def _privacy(table: Table, where: str) -> list[Problem]:
    privacy = table.privacy
    if privacy is None:
        return []
    problems = []
    pwhere = f"{where}.privacy"
    names = [c.name for c in table.columns]
    for key in ("quasiIdentifiers", "sensitive"):
        listed = getattr(privacy, key)
        for i, name in enumerate(listed):
            if name not in names:
                problems.append(Problem(f"{pwhere}.{key}[{i}]", f"unknown column {name!r}"))
            elif listed.index(name) != i:
                problems.append(Problem(f"{pwhere}.{key}[{i}]", f"{name!r} is listed twice"))
    both = set(privacy.quasiIdentifiers) & set(privacy.sensitive)
    if both:
        problems.append(
            Problem(
                f"{pwhere}.sensitive",
                f"{', '.join(sorted(both))} cannot be quasi-identifier and sensitive at once",
            )
        )
    for mi, pm in enumerate(privacy.models):
        if pm.type == "k-anonymity":
            continue
        attr = pm.attribute or (privacy.sensitive or [None])[0]
        if attr is None:
            problems.append(
                Problem(
                    f"{pwhere}.models[{mi}]",
                    f"{pm.type} needs a sensitive attribute (attribute or sensitive)",
                )
            )
        elif attr not in names:
            problems.append(Problem(f"{pwhere}.models[{mi}].attribute", f"unknown column {attr!r}"))
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
    return problems


CONNECTION_TYPES = {"postgres", "mysql", "mssql", "rest", "sftp", "kafka", "s3"}
# connector type -> the connection types it can use (default: its own type)
SOURCE_CONNECTIONS = {"sql": SQL_CONNECTION_TYPES}


def _collection(module: DataModule, folder: Path | None) -> list[Problem]:
    problems = []
    tables = {t.name for t in module.tables}
    sources: set[tuple[str, str]] = set()
    for ei, entry in enumerate(module.collection):
        where = f"collection[{ei}]"
        if entry.table not in tables:
            problems.append(
                Problem(
                    f"{where}.table",
                    f"unknown table {entry.table!r}; expected one of {', '.join(sorted(tables))}",
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
        if isinstance(ext, PostgresConnector | SqlConnector) and ext.shards:
            names = [(f"{where}.extract.shards[{i}]", s) for i, s in enumerate(ext.shards)]
            problems += [
                Problem(path, f"shard {name!r} is listed twice")
                for i, (path, name) in enumerate(names)
                if name in ext.shards[:i]
            ]
        elif getattr(ext, "connection", None):
            names = [(f"{where}.extract.connection", ext.connection)]
        else:
            names = []
        kinds = SOURCE_CONNECTIONS.get(ext.type, (ext.type,))
        for path, name in names:
            problems += _connection_ref(module, path, name, kinds)
        if isinstance(ext, ScriptCollector) and folder is not None:
            problems += _script_exists(ext, folder, f"{where}.extract.path")
        if isinstance(ext, FileConnector) and folder is not None:
            problems += _files_exist(ext, folder, f"{where}.extract.path")
    return problems


def _connection_ref(
    module: DataModule, path: str, name: str, kinds: str | tuple[str, ...]
) -> list[Problem]:
    connections = {c.name: c for c in module.connections}
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    if name not in connections:
        declared = ", ".join(connections) or "none declared"
        return [Problem(path, f"unknown connection {name!r} ({declared})")]
    if connections[name].type not in kinds:
        expected = " or ".join(kinds)
        return [
            Problem(path, f"connection {name!r} is {connections[name].type}, expected {expected}")
        ]
    return []


def _script_exists(script: ScriptCollector, folder: Path, where: str) -> list[Problem]:
    if not (folder / script.path).is_file():
        return [Problem(where, f"script not found: {script.path}")]
    return []


def _files_exist(ext: FileConnector, folder: Path, where: str) -> list[Problem]:
    """A plain path must be a file; the folder a glob starts from must exist."""
    if not glob.has_magic(ext.path):
        base = Path(ext.path) if Path(ext.path).is_absolute() else folder / ext.path
        return [] if base.is_file() else [Problem(where, f"file not found: {ext.path}")]
    fixed: list[str] = []
    for part in Path(ext.path).parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    anchor = Path(*fixed) if fixed else Path(".")
    anchor = anchor if anchor.is_absolute() else folder / anchor
    if not anchor.is_dir():
        return [Problem(where, f"folder not found for the pattern {ext.path!r}: {anchor}")]
    return []


def _upload(module: DataModule, folder: Path | None) -> list[Problem]:
    problems = []
    sink = module.upload.sink
    if sink is not None and sink.connection:
        problems += _connection_ref(module, "upload.sink.connection", sink.connection, sink.type)
    if module.upload.script is not None and folder is not None:
        problems += _script_exists(module.upload.script, folder, "upload.script.path")
    return problems


def _pseudonymized(column: Column) -> bool:
    return any(isinstance(op, Pseudonymization) for op in column.anonymization)


def _parents(module: DataModule) -> dict[str, list[str]]:
    tables = {t.name for t in module.tables}
    return {
        t.name: sorted(
            {c.foreignKey.table for c in t.columns if c.foreignKey and c.foreignKey.table in tables}
            - {t.name}
        )
        for t in module.tables
    }


def _foreign_key_cycles(module: DataModule) -> list[Problem]:
    """A cycle of foreign keys has no order to clean in; report the first one found."""
    graph = _parents(module)
    state: dict[str, int] = {}
    for start in graph:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            parents = graph[node]
            if i < len(parents):
                stack.append((node, i + 1))
                nxt = parents[i]
                if state.get(nxt) == 1:
                    cycle = path[path.index(nxt) :] + [nxt]
                    return [Problem("tables", f"foreign keys form a cycle: {' -> '.join(cycle)}")]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return []


def table_order(module: DataModule) -> list[str]:
    """Tables with every foreign-key parent before its children (the module has no cycles)."""
    graph = _parents(module)
    done: list[str] = []
    placed: set[str] = set()
    for start in graph:
        stack = [(start, iter(graph[start]))]
        while stack:
            node, parents = stack[-1]
            nxt = next((p for p in parents if p not in placed), None)
            if nxt is not None and all(nxt != s for s, _ in stack):
                stack.append((nxt, iter(graph[nxt])))
                continue
            if nxt is None:
                stack.pop()
                if node not in placed:
                    placed.add(node)
                    done.append(node)
    return done


def _reaches_privacy(module: DataModule) -> dict[str, str]:
    """For each table without a privacy model: the first table with one that it references,
    directly or through other tables."""
    graph = _parents(module)
    protected = {t.name for t in module.tables if t.privacy is not None}
    found: dict[str, str] = {}
    for table in module.tables:
        if table.name in protected:
            continue
        seen, todo = set(), list(graph[table.name])
        while todo:
            nxt = todo.pop(0)
            if nxt in protected:
                found[table.name] = nxt
                break
            if nxt not in seen:
                seen.add(nxt)
                todo.extend(graph.get(nxt, []))
    return found


def linked_table_warnings(module: DataModule) -> list[Problem]:
    """Tables joined (directly or through others) to a table with a privacy model that
    publish more than keys: outside every model unless they declare one or an exemption."""
    warnings = []
    for table_name, protected in _reaches_privacy(module).items():
        table = module.table(table_name)
        if table.privacyExemption is not None:
            continue
        keys = set(table.primaryKey or []) | {c.name for c in table.columns if c.foreignKey}
        at_risk = [
            c.name
            for c in table.columns
            if c.name not in keys and not any(op.method == "suppress" for op in c.anonymization)
        ]
        if at_risk:
            index = module.tables.index(table)
            warnings.append(
                Problem(
                    f"tables[{index}]",
                    f"table {table_name!r} joins {protected!r}, which has a privacy model, and"
                    f" publishes {', '.join(at_risk)} outside every model: declare privacy for"
                    " it, or privacyExemption with the reason",
                )
            )
    return warnings
