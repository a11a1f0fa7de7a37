"""Text in both of the UI's languages, for the core: `Text("English", "한국어")`.

The core never knows the reader's language. What it says to a user (progress messages, error messages) is a `Text`:
a `str` whose value is the English (so the CLI, the logs and every `str` operation see English, as before) that
also carries the Korean in `.ko`. The UI picks one with `pick(value, lang)`; background jobs store both
(`message`, `message_ko`) in their JSON files and the page picks when it draws them.
"""

from __future__ import annotations

from typing import Any

LANGS = ("ko", "en")


class Text(str):
    """A `str` holding the English, with the Korean in `.ko` (the English when no Korean was given)."""

    ko: str

    def __new__(cls, en: str, ko: str | None = None) -> Text:
        obj = super().__new__(cls, en)
        obj.ko = str(en) if ko is None else str(ko)
        return obj

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (multiprocessing) keep the Korean
        return (Text, (str(self), self.ko))


def pick(value: Any, lang: str) -> str:
    """`value` in `lang` ("ko" or "en"): a `Text`'s Korean or English, any other value as `str`."""
    if lang == "ko":
        ko = getattr(value, "ko", None)
        if ko:
            return str(ko)
    return "" if value is None else str(value)


def prefixed(prefix: str, value: Any) -> Text:
    """`"prefix: value"` in both languages (`value` a `Text` or a plain str), for a sub-task's progress under a label."""
    return Text(f"{prefix}: {value}", f"{prefix}: {pick(value, 'ko')}")


def both(value: Any, key: str = "message") -> dict[str, str]:
    """`{key: English, key_ko: Korean}` for a JSON record (a job's progress line or status)."""
    return {key: str(value), f"{key}_ko": pick(value, "ko")}


def from_record(record: Any, key: str, lang: str) -> str:
    """What `both` stored, back in `lang`: `record[key + "_ko"]` in Korean when present, else `record[key]`."""
    record = record or {}
    value = record.get(key) or ""
    if lang == "ko" and record.get(f"{key}_ko"):
        return str(record[f"{key}_ko"])
    return str(value)


# The states of runs and jobs (workbench.jobs.runner), as a user reads them.
STATES: dict[str, tuple[str, str]] = {
    "pending": ("pending", "대기 중"), "running": ("running", "실행 중"), "completed": ("completed", "완료"),
    "failed": ("failed", "실패"), "cancelled": ("cancelled", "취소됨"), "lost": ("lost", "끊김"),
}


def state_text(state: Any) -> Text:
    """A run's or job's state (`"running"`...) in both languages; an unknown state as it is."""
    en, ko = STATES.get(str(state), (str(state), str(state)))
    return Text(en, ko)


def state_ko(state: Any) -> str:
    """A state's Korean, for Korean error messages."""
    return state_text(state).ko
