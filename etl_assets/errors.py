"""Errors a user can cause, each naming where (file, JSON path) and what was expected."""

from __future__ import annotations

from dataclasses import dataclass

from resources.retry import is_transient


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a metadata file: the JSON path and what was expected there."""

    path: str
    message: str

    def render(self, file: str) -> str:
        return f"{file}: {self.path}: {self.message}" if self.path else f"{file}: {self.message}"


class MetadataError(ValueError):
    """Invalid data module metadata; `str()` lists every problem as `file: path: message`.

    `internal` marks an error that our validation should have caught with a precise message but
    did not (something deeper refused the module): the module is still isolated, and the defect
    is ours to fix (the metadata fuzz runner counts these).
    """

    def __init__(self, file: str, problems: list[Problem], internal: bool = False):
        self.file = file
        self.problems = problems
        self.internal = internal
        super().__init__("\n".join(p.render(file) for p in problems))


class ExtractionError(RuntimeError):
    """A source could not be read, or returned something other than records.

    `retryable` says whether trying again may help (a server down, a script that crashed)
    or not (malformed output, a missing file): step retries are spent only on the former.
    """

    def __init__(
        self,
        message: str,
        retryable: bool = False,
        restricted_detail: str | None = None,
        retry_limit: int | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.restricted_detail = restricted_detail
        """text that may quote records (a script's stderr): kept in the restricted zone only"""
        self.retry_limit = retry_limit
        """at most this many step retries for this error (a hung script: one), else the policy's"""

    def may_retry(self, retry_number: int) -> bool:
        """Whether the step's retry policy may be used on this error at attempt `retry_number`."""
        return self.retryable and (self.retry_limit is None or retry_number < self.retry_limit)


class UploadError(RuntimeError):
    """A version could not be published; the previously published version is untouched."""

    def __init__(self, message: str, restricted_detail: str | None = None):
        super().__init__(message)
        self.restricted_detail = restricted_detail


def may_heal(exc: BaseException) -> bool:
    """Whether a step that failed with `exc` may succeed when retried: network and server errors
    (`resources.retry.is_transient`) and sources that say so; never bad metadata, a refused
    version, bad data or a bug."""
    if isinstance(exc, ExtractionError):
        return exc.retryable
    if isinstance(exc, MetadataError | UploadError):
        return False
    return is_transient(exc)
