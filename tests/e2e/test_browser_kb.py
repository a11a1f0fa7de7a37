"""The knowledge base in a real browser: upload a file, ingest it, search it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_upload_ingest_and_search(streamlit_server, browser_page, tmp_path):
    faq = tmp_path / "faq_ko.txt"
    faq.write_bytes("행복마트 결제 안내\n\n현금과 카드 모두 받습니다. 수표는 받지 않습니다.\n\n"
                    "주차장은 지하 2층이며 두 시간 무료입니다.".encode("cp949"))
    page = browser_page
    page.goto(streamlit_server)
    page.get_by_role("link", name="Knowledge base").click()
    page.get_by_text("Upload files").first.wait_for(timeout=120_000)
    page.locator("input[type=file]").first.set_input_files(str(faq))
    ingest = page.get_by_role("button", name="Ingest uploaded files")
    expect(ingest).to_be_enabled(timeout=60_000)
    expect(page.get_by_text("Preview of faq_ko.txt", exact=False)).to_be_visible()  # the upload, cut into chunks
    ingest.click()
    page.get_by_text("chunks added, 0 removed").wait_for(timeout=180_000)

    page.get_by_role("tab", name="Search").click()
    page.get_by_label("Question", exact=True).fill("주차는 어디에 하나요?")
    page.get_by_role("button", name="Search", exact=True).click()
    page.get_by_text(re.compile(r"#1 · score [0-9.]+ · faq_ko\.txt")).wait_for(timeout=60_000)
    page.get_by_text("주차장은 지하 2층이며 두 시간 무료입니다.", exact=False).first.wait_for(timeout=10_000)
    page.screenshot(path=str(tmp_path / "kb.png"), full_page=True)
