"""Find and load data module folders: parse (bounded), check JSON-LD, validate strictly, hash.

One broken module never stops the others: `discover` returns the good ones and, for every other
folder, a `MetadataError` naming the file, the JSON path and what was expected there, whatever
went wrong while loading it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from etl_assets.errors import MetadataError, Problem
from etl_assets.metadata.jsonld import (
    CONTEXT_URL,
    CONTEXT_URLS,
    describe_jsonld_error,
    expand,
    metadata_hash,
)
from etl_assets.metadata.module import DataModule
from etl_assets.metadata.parsing import parse_document
from etl_assets.metadata.references import check_references, linked_table_warnings

METADATA_FILES = ("module.jsonld", "module.json", "module.yaml", "module.yml")


@dataclass(frozen=True)
class LoadedModule:
    """A validated module with where it came from and its canonical metadata hash."""

    folder: Path
    file: Path
    model: DataModule
    document: dict[str, Any]
    hash: str
    warnings: tuple[Problem, ...] = ()
    """what validates but deserves a decision (e.g. a linked table outside every model)"""

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def code_version(self) -> str:
        return self.hash[:16]


@dataclass
class Discovery:
    modules: list[LoadedModule] = field(default_factory=list)
    errors: list[MetadataError] = field(default_factory=list)


def display_path(path: Path) -> str:
    """The path relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


_TAGS = {
    "file", "script", "postgres", "sql", "rest", "sftp", "kafka", "s3", "generalize", "suppress",
    "permute", "perturb", "pseudonymize", "anatomize",
}  # fmt: skip
_TYPE_NAMES = {"int", "float", "str", "bool", "date", "datetime", "none", "list", "dict"}


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's discriminator tags, union members and validator names from a location."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        if isinstance(part, str) and part in _TAGS:
            # a tag after 'extract'/'sink' or after a list index of anonymization
            if prev in ("extract", "sink") or (
                isinstance(prev, int) and i >= 2 and loc[i - 2] == "anonymization"
            ):
                continue
        if isinstance(part, str) and (
            part.startswith("function-") or "[" in part or part in _TYPE_NAMES
        ):
            continue
        out.append(part)
    return tuple(out)


def _message(e: dict[str, Any]) -> str:
    msg = e["msg"].removeprefix("Value error, ")
    kind = e["type"]
    if kind == "extra_forbidden":
        return "unknown key (see docs/datamodule-format.md)"
    if kind == "missing":
        return "required key is missing"
    ctx = e.get("ctx") or {}
    if kind == "union_tag_invalid":
        return (
            f"{str(ctx.get('discriminator', 'the type')).strip(chr(39))} {_short(ctx.get('tag'))}"
            " is not one of"
            f" {ctx.get('expected_tags', '')}"
        )
    if kind == "union_tag_not_found":
        key = str(ctx.get("discriminator", "")).strip("'")
        return f"required key {key!r} is missing (it says which kind this is)"
    if kind.endswith("_type") or kind in ("literal_error", "string_pattern_mismatch", "enum"):
        return f"{msg}, got {_short(e.get('input'))}"
    return msg


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    """One problem per JSON path; the alternatives of a union are merged into one message."""
    by_path: dict[str, list[str]] = {}
    for e in err.errors():
        loc = _strip_tags(tuple(e["loc"]))
        path = ".".join((f"[{p}]" if isinstance(p, int) else str(p)) for p in loc)
        messages = by_path.setdefault(path.replace(".[", "["), [])
        msg = _message(e)
        if msg not in messages:
            messages.append(msg)
    return [Problem(path, " or ".join(msgs[:4])) for path, msgs in by_path.items()]


def _check_context(doc: dict[str, Any]) -> list[Problem]:
    ctx = doc.get("@context")
    urls = ctx if isinstance(ctx, list) else [ctx]
    if not any(isinstance(u, str) and u in CONTEXT_URLS for u in urls):
        return [Problem("@context", f"expected {CONTEXT_URL!r}, got {_short(ctx)}")]
    return []


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validate_document(doc: dict[str, Any]) -> DataModule:
    """The model of a JSON document, validated strictly (no coercion across JSON types);
    raises pydantic's `ValidationError`."""
    return DataModule.model_validate_json(json.dumps(doc), strict=True)


def _validate(doc: dict[str, Any], shown: str) -> DataModule:
    try:
        return validate_document(doc)
    except ValidationError as exc:
        raise MetadataError(shown, _pydantic_problems(exc)) from None


def load_module(file_or_folder: Path | str) -> LoadedModule:
    """Load and validate one module; raise `MetadataError` listing every problem found."""
    path = Path(file_or_folder)
    file = find_metadata_file(path) if path.is_dir() else path
    folder = file.parent
    shown = display_path(file)
    doc = parse_document(file, shown)
    problems = _check_context(doc)
    if problems:
        raise MetadataError(shown, problems)
    try:
        expand(doc)
    except Exception as exc:  # pyld raises JsonLdError chains (and RecursionError, TypeError)
        raise MetadataError(
            shown, [Problem("@context", f"not valid JSON-LD: {describe_jsonld_error(exc)}")]
        ) from None
    model = _validate(doc, shown)
    problems = check_references(model, folder)
    if model.name != folder.name and folder.name not in ("", "."):
        problems.insert(
            0, Problem("name", f"module name {model.name!r} must equal its folder {folder.name!r}")
        )
    if problems:
        raise MetadataError(shown, problems)
    try:
        digest = metadata_hash(doc)
    except Exception as exc:  # canonicalization of a document pyld expanded: should not fail
        raise MetadataError(
            shown, [Problem("", f"cannot canonicalize the JSON-LD: {describe_jsonld_error(exc)}")]
        ) from None
    return LoadedModule(
        folder=folder,
        file=file,
        model=model,
        document=doc,
        hash=digest,
        warnings=tuple(linked_table_warnings(model)),
    )


def find_metadata_file(folder: Path) -> Path:
    for name in METADATA_FILES:
        if (folder / name).is_file():
            return folder / name
    raise MetadataError(
        display_path(folder),
        [Problem("", f"no metadata file; expected one of {', '.join(METADATA_FILES)}")],
    )


def is_module_folder(folder: Path) -> bool:
    return folder.is_dir() and any((folder / n).is_file() for n in METADATA_FILES)


def load_isolated(folder: Path) -> LoadedModule | MetadataError:
    """`load_module`, with anything it raises turned into that module's error."""
    try:
        return load_module(folder)
    except MetadataError as exc:
        return exc
    except Exception as exc:  # a defect of ours must not take the other modules down
        return MetadataError(
            _shown_file(folder),
            [Problem("", f"could not be loaded ({type(exc).__name__}: {_short(str(exc), 200)})")],
            internal=True,
        )


def _shown_file(folder: Path) -> str:
    try:
        return display_path(find_metadata_file(folder))
    except MetadataError:
        return display_path(folder / METADATA_FILES[0])


def discover(root: Path | str, only: str | None = None) -> Discovery:
    """Load every module folder under `root` (or just `root/only`); invalid ones are returned
    as errors."""
    root = Path(root)
    found = Discovery()
    if not root.is_dir():
        return found
    names: dict[str, Path] = {}
    folders = [root / only] if only is not None else sorted(p for p in root.iterdir())
    for folder in (f for f in folders if f.is_dir()):
        if folder.name.startswith((".", "_")) or not is_module_folder(folder):
            continue
        loaded = load_isolated(folder)
        if isinstance(loaded, MetadataError):
            found.errors.append(loaded)
            continue
        if loaded.name in names:
            found.errors.append(
                MetadataError(
                    display_path(loaded.file),
                    [
                        Problem(
                            "name",
                            f"module name {loaded.name!r} is also used by {names[loaded.name]}",
                        )
                    ],
                )
            )
            continue
        names[loaded.name] = loaded.folder
        found.modules.append(loaded)
    return found
