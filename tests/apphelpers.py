"""AppTest helpers shared by the page tests."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def open_app_page(page: str, lang: str = "en", timeout: float = 300) -> AppTest:
    """Run the app in `lang`, switch to `page` (e.g. "app_pages/compare.py") and check it raised nothing."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.session_state["ui.lang"] = lang
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at
