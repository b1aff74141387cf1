"""Find and load data module folders: parse JSON-LD or YAML-LD, validate, hash.

One broken module never stops the others: `discover` returns the good ones and the errors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from etl_assets.errors import MetadataError, Problem
from etl_assets.jsonld import CONTEXT_URL, CONTEXT_URLS, expand, metadata_hash
from etl_assets.model import DataModule
from etl_assets.references import check_references

METADATA_FILES = ("module.jsonld", "module.json", "module.yaml", "module.yml")


def default_modules_dir() -> Path:
    """`DM_MODULES_DIR`, else `datamodules/` in the current directory or beside this package."""
    if env := os.environ.get("DM_MODULES_DIR"):
        return Path(env)
    cwd = Path.cwd() / "datamodules"
    if cwd.is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent / "datamodules"


@dataclass(frozen=True)
class LoadedModule:
    """A validated module with where it came from and its canonical metadata hash."""

    folder: Path
    file: Path
    model: DataModule
    document: dict[str, Any]
    hash: str

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


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's discriminator tags and function names from an error location."""
    tags = {
        "file", "script", "postgres", "rest", "sftp", "kafka", "s3", "generalize", "suppress",
        "permute", "perturb", "pseudonymize", "anatomize",
    }  # fmt: skip
    out: list[Any] = []
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        if (
            isinstance(part, str)
            and part in tags
            and (prev in ("extract", "sink") or isinstance(prev, int))
        ):
            # a tag after 'extract'/'sink' or after a list index (anonymization[i])
            if prev in ("extract", "sink") or (i >= 2 and loc[i - 2] == "anonymization"):
                continue
        if isinstance(part, str) and (part.startswith("function-") or "[" in part):
            continue
        out.append(part)
    return tuple(out)


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = _strip_tags(tuple(e["loc"]))
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (see docs/datamodule-format.md)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "union_tag_invalid":
            msg = f"{msg}"
        elif e["type"] == "literal_error":
            msg = f"{msg}, got {e.get('input')!r}"
        path = ".".join((f"[{p}]" if isinstance(p, int) else str(p)) for p in loc).replace(
            ".[", "["
        )
        problems.append(Problem(path, msg))
    return problems


def parse_document(file: Path) -> dict[str, Any]:
    """Read a metadata file (JSON-LD, or YAML with the same structure) into a dict."""
    shown = _display(file)
    try:
        text = file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MetadataError(shown, [Problem("", f"cannot read the file: {exc}")]) from exc
    if file.suffix in (".yaml", ".yml"):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise MetadataError(shown, [Problem("", f"not valid YAML: {exc}")]) from exc
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetadataError(
                shown,
                [Problem("", f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")],
            ) from exc
    if not isinstance(doc, dict):
        raise MetadataError(shown, [Problem("", "expected a JSON object at the top level")])
    return _json_safe(doc)


def _json_safe(value: Any) -> Any:
    """YAML gives dates and datetimes as objects; JSON-LD needs their ISO strings."""
    import datetime as dt

    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _check_context(doc: dict[str, Any]) -> list[Problem]:
    ctx = doc.get("@context")
    urls = ctx if isinstance(ctx, list) else [ctx]
    if not any(isinstance(u, str) and u in CONTEXT_URLS for u in urls):
        return [Problem("@context", f"expected {CONTEXT_URL!r}, got {ctx!r}")]
    return []


def load_module(file_or_folder: Path | str) -> LoadedModule:
    """Load and validate one module; raise `MetadataError` listing every problem found."""
    path = Path(file_or_folder)
    file = find_metadata_file(path) if path.is_dir() else path
    folder = file.parent
    shown = _display(file)
    doc = parse_document(file)
    problems = _check_context(doc)
    if problems:
        raise MetadataError(shown, problems)
    try:
        expand(doc)
    except Exception as exc:  # pyld raises JsonLdError with nested causes
        raise MetadataError(shown, [Problem("@context", f"not valid JSON-LD: {exc}")]) from exc
    try:
        model = DataModule.model_validate(doc)
    except ValidationError as exc:
        raise MetadataError(shown, _pydantic_problems(exc)) from None
    problems = check_references(model, folder)
    if model.name != folder.name and folder.name not in ("", "."):
        problems.insert(
            0, Problem("name", f"module name {model.name!r} must equal its folder {folder.name!r}")
        )
    if problems:
        raise MetadataError(shown, problems)
    return LoadedModule(
        folder=folder, file=file, model=model, document=doc, hash=metadata_hash(doc)
    )


def find_metadata_file(folder: Path) -> Path:
    for name in METADATA_FILES:
        if (folder / name).is_file():
            return folder / name
    raise MetadataError(
        _display(folder),
        [Problem("", f"no metadata file; expected one of {', '.join(METADATA_FILES)}")],
    )


def discover(root: Path | str | None = None) -> Discovery:
    """Load every module folder under `root`; invalid ones are returned as errors."""
    root = Path(root) if root is not None else default_modules_dir()
    found = Discovery()
    if not root.is_dir():
        return found
    names: dict[str, Path] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith((".", "_")) or not any(
            (folder / n).is_file() for n in METADATA_FILES
        ):
            continue
        try:
            module = load_module(folder)
        except MetadataError as exc:
            found.errors.append(exc)
            continue
        if module.name in names:
            found.errors.append(
                MetadataError(
                    _display(module.file),
                    [
                        Problem(
                            "name",
                            f"module name {module.name!r} is also used by {names[module.name]}",
                        )
                    ],
                )
            )
            continue
        names[module.name] = module.folder
        found.modules.append(module)
    return found
