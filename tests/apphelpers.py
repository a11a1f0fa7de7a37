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


def split_csv_dataset(workspace, name: str, rows: list[list[str]], folder: Path, *, test_size: float,
                      val_size: float = 0.0) -> None:
    """A dataset made as a user makes one: a CSV file (instruction, input, output) imported, then split."""
    import csv

    from workbench.dataset.alpaca import DatasetConfig, SplitConfig, import_dataset, split_dataset

    src = folder / f"{name}.csv"
    with src.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["instruction", "input", "output"])
        w.writerows(rows)
    import_dataset(src, DatasetConfig(name=name, tokenizer=""), workspace=workspace)
    split_dataset(name, SplitConfig(test_size=test_size, val_size=val_size), workspace=workspace)
