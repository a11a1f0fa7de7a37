"""The workbench's error hierarchy.

Every error a user can cause (a bad setting, a missing file, an unreachable Hub) is a
`WorkbenchError` whose message says what went wrong *and what to do*, in English (`str(exc)`, what the CLI and
the logs show) and in Korean (`exc.ko`, what a Korean page shows): `raise ConfigError("...", ko="...")`.
Pages turn these into `st.error(...)`; the CLI prints the message on one line and exits with status 2. Anything
that is not a `WorkbenchError` is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


class WorkbenchError(Exception):
    """Base class: the message is shown to the user as is, so it must be actionable.

    Args:
        message: the English message (`str(exc)`).
        ko: the same message in Korean; a test checks that every raise in the core gives one.
    """

    def __init__(self, message: str = "", *args: Any, ko: str | None = None) -> None:
        super().__init__(message, *args)
        self.ko = str(ko) if ko is not None else str(getattr(message, "ko", "") or "") or None

    def message(self, lang: str = "en") -> str:
        """The message in `lang` ("ko" or "en"); the English where no Korean was given."""
        return self.ko if lang == "ko" and self.ko else str(self)


def error_text(exc: BaseException, lang: str) -> str:
    """Any exception's message in `lang`: a `WorkbenchError`'s Korean when there is one, else `str(exc)`."""
    return exc.message(lang) if isinstance(exc, WorkbenchError) else str(exc)


class ConfigError(WorkbenchError, ValueError):
    """A setting has an invalid value or an invalid combination with another setting."""


class NotFoundError(WorkbenchError, LookupError):
    """A named thing (collection, dataset, run, model) does not exist."""


class DocumentError(WorkbenchError):
    """A file could not be read as a document (bad type, encoding, empty, broken PDF ...)."""


class ModelError(WorkbenchError):
    """A model could not be found, converted or loaded."""


class OfflineError(WorkbenchError):
    """A network resource (the Hugging Face Hub, an API endpoint) could not be reached or refused us."""


class JobError(WorkbenchError):
    """A background job (training, evaluation) could not be started, resumed or cancelled."""


class GenerationError(WorkbenchError):
    """A model answered, but nothing usable came out of it (no question / answer pair, an empty reply)."""


class StorageError(WorkbenchError, OSError):
    """The disk refused a write (full, or over quota): the message says what was kept and that space must be freed."""
