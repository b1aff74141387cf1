"""Metadata drafts: a module's metadata file uploaded (through the console or `dmetl draft`),
validated exactly as `dmetl validate` validates it, and kept in `dm_governance.drafts` until a
task editor releases it. A draft is not loaded into the code location: releasing writes it as
the module's metadata file, which the code location loads on its next reload.

Validation loads and builds the draft beside the module's own files (its scripts and data), in a
temporary copy made of links, through `load_catalog`, the code path of `dmetl validate`; errors
are rendered with the module's real file name. Releasing needs every script the draft runs to be
released at its current hash (a module is released only when all its scripts are).

This module sits above the code location (`etl_assets.definitions`), outside `governance/` (which
the stage assets import): only the CLI and the console import it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from etl_assets import audit
from etl_assets.definitions import load_catalog
from etl_assets.governance.connections import Actor, GovernanceError
from etl_assets.governance.scripts import script_states
from etl_assets.governance.store import SCHEMA, ensure
from etl_assets.metadata.loader import METADATA_FILES, LoadedModule, display_path
from etl_assets.metadata.parsing import MAX_BYTES


@dataclass(frozen=True)
class Validation:
    """What `dmetl validate` says about a draft: its errors and warnings, rendered alike."""

    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    metadata_hash: str | None
    loaded: LoadedModule | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Draft:
    id: int
    module: str
    filename: str
    text: str
    sha256: str
    uploaded_by: str
    uploaded_at: dt.datetime
    status: str
    decided_by: str | None
    decided_at: dt.datetime | None


def _check_name(filename: str) -> None:
    if filename not in METADATA_FILES:
        raise GovernanceError(
            f"file name {filename!r}: expected one of {', '.join(METADATA_FILES)}"
        )


def validate_draft(module_folder: Path, filename: str, text: str) -> Validation:
    """Validate `text` as `module_folder/filename`, beside the module's other files."""
    _check_name(filename)
    if len(text.encode("utf-8")) > MAX_BYTES:
        return Validation((f"{filename}: larger than {MAX_BYTES // 1024 // 1024} MiB",), (), None)
    shown = display_path(module_folder / filename)
    with tempfile.TemporaryDirectory(prefix="dm-draft-") as tmp:
        copy = Path(tmp) / module_folder.name
        copy.mkdir()
        for item in module_folder.iterdir():
            if item.name not in METADATA_FILES:
                os.symlink(item.resolve(), copy / item.name)
        (copy / filename).write_text(text, "utf-8")
        catalog = load_catalog(Path(tmp), only=module_folder.name)
        module = catalog.module(module_folder.name)
        errors = tuple(
            "\n".join(p.render(shown) for p in e.problems).replace(str(copy), str(module_folder))
            for e in catalog.errors
        )
        if module is None:
            return Validation(errors or (f"{shown}: not a module",), (), None)
        warnings = tuple(f"warning: {w.render(shown)}" for w in module.loaded.warnings)
        return Validation(errors, warnings, module.loaded.hash, module.loaded)


def save_draft(
    conn: psycopg.Connection, module_folder: Path, filename: str, text: str, actor: Actor
) -> tuple[Validation, Draft | None]:
    """Validate and, when valid, store the draft (audited: its hash, never its text). Line
    ends are normalized to `\n` (a browser's form sends a textarea's lines ended by CRLF)."""
    text = text.replace("\r\n", "\n")
    result = validate_draft(module_folder, filename, text)
    if not result.ok:
        return result, None
    if result.loaded is not None and result.loaded.name != module_folder.name:
        raise GovernanceError(f"the draft names module {result.loaded.name!r}, not this one")
    ensure(conn)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"""INSERT INTO {SCHEMA}.drafts (module, filename, text, sha256, uploaded_by)
                VALUES (%s, %s, %s, %s, %s) RETURNING *""",
            (module_folder.name, filename, text, digest, actor.name),
        ).fetchone()
        audit.record(
            conn, actor=actor.name, role=actor.role, action=audit.Action.DRAFT_UPLOAD,
            target=audit.Target(module=module_folder.name, name=f"draft:{row['id']}"),
            detail={"file": filename, "sha256": digest, "metadata_hash": result.metadata_hash},
        )  # fmt: skip
    return result, Draft(**row)


def list_drafts(conn: psycopg.Connection, module: str) -> list[Draft]:
    ensure(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT * FROM {SCHEMA}.drafts WHERE module = %s ORDER BY id DESC", (module,)
        ).fetchall()
    return [Draft(**r) for r in rows]


def get_draft(conn: psycopg.Connection, draft_id: int) -> Draft | None:
    ensure(conn)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT * FROM {SCHEMA}.drafts WHERE id = %s", (draft_id,)).fetchone()
    return Draft(**row) if row else None


def current_text(module_folder: Path) -> tuple[str, str]:
    """(file name, text) of the module's metadata file now ("", "" when it has none)."""
    for name in METADATA_FILES:
        if (module_folder / name).is_file():
            return name, (module_folder / name).read_text("utf-8")
    return "", ""


def draft_diff(module_folder: Path, draft: Draft) -> str:
    """A unified diff from the module's metadata file now to the draft."""
    name, text = current_text(module_folder)
    return "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            draft.text.splitlines(keepends=True),
            fromfile=f"{module_folder.name}/{name or '(none)'} (loaded)",
            tofile=f"{module_folder.name}/{draft.filename} (draft {draft.id})",
        )
    )


def _write(module_folder: Path, draft: Draft) -> None:
    """The draft as the module's metadata file, replaced atomically; a metadata file of another
    name (the loader would prefer it) is kept aside, hidden from the loader."""
    target = module_folder / draft.filename
    partial = target.with_name(f".{draft.filename}.draft-{draft.id}")
    partial.write_text(draft.text, "utf-8")
    os.replace(partial, target)
    for other in METADATA_FILES:
        if other != draft.filename and (module_folder / other).is_file():
            os.replace(module_folder / other, module_folder / f".{other}.before-draft-{draft.id}")


def release_draft(
    conn: psycopg.Connection, module_folder: Path, draft_id: int, actor: Actor
) -> Draft:
    """Write the draft as the module's metadata file (it loads on the next reload), once it
    still validates and every script it runs is released; audited."""
    draft = get_draft(conn, draft_id)
    if draft is None or draft.module != module_folder.name:
        raise GovernanceError(f"no draft {draft_id} of module {module_folder.name!r}")
    if draft.status != "draft":
        raise GovernanceError(f"draft {draft_id} was {draft.status} already")
    result = validate_draft(module_folder, draft.filename, draft.text)
    if not result.ok or result.loaded is None:
        raise GovernanceError("the draft no longer validates:\n" + "\n".join(result.errors))
    unreleased = [
        s.problem() for s in script_states(conn, result.loaded.model, module_folder) if s.problem()
    ]
    if unreleased:
        raise GovernanceError(
            "a module is released only when all its scripts are:\n" + "\n".join(unreleased)
        )
    with conn.transaction():
        updated = conn.execute(
            f"""UPDATE {SCHEMA}.drafts SET status = 'released', decided_by = %s,
                decided_at = now() WHERE id = %s AND status = 'draft'""",
            (actor.name, draft_id),
        )
        if updated.rowcount != 1:  # another release (or discard) came first
            raise GovernanceError(f"draft {draft_id} was decided already")
        audit.record(
            conn, actor=actor.name, role=actor.role, action=audit.Action.DRAFT_RELEASE,
            target=audit.Target(module=draft.module, name=f"draft:{draft_id}"),
            detail={"file": draft.filename, "sha256": draft.sha256,
                    "metadata_hash": result.metadata_hash},
        )  # fmt: skip
        _write(module_folder, draft)  # last: a failed write rolls the release back
    released = get_draft(conn, draft_id)
    assert released is not None
    return released


def discard_draft(conn: psycopg.Connection, module: str, draft_id: int, actor: Actor) -> Draft:
    """Set a draft aside without loading it (kept for the record; audited)."""
    ensure(conn)
    with conn.transaction():
        updated = conn.execute(
            f"""UPDATE {SCHEMA}.drafts SET status = 'discarded', decided_by = %s,
                decided_at = now() WHERE id = %s AND module = %s AND status = 'draft'""",
            (actor.name, draft_id, module),
        )
        if updated.rowcount != 1:
            found = get_draft(conn, draft_id)
            if found is None or found.module != module:
                raise GovernanceError(f"no draft {draft_id} of module {module!r}")
            raise GovernanceError(f"draft {draft_id} was {found.status} already")
        audit.record(
            conn, actor=actor.name, role=actor.role, action=audit.Action.DRAFT_DISCARD,
            target=audit.Target(module=module, name=f"draft:{draft_id}"),
        )  # fmt: skip
    discarded = get_draft(conn, draft_id)
    assert discarded is not None
    return discarded
