"""The one progress-report type of the workbench.

Slow work takes a `progress(message, fraction)` callback (fraction in 0..1) and leaves showing it to the caller:
the pages draw a progress bar, the CLI prints to stderr, a background job appends JSON lines. What a callback
returns is ignored, except where a function documents otherwise (dataset generation stops when it returns False).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Progress = Callable[[str, float], Any]


def no_progress(message: str, fraction: float) -> None:
    """A `Progress` that shows nothing."""
