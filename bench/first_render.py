"""How fast the first page appears in a real browser once the server is up (issue #17: within 3 s).

    python -m bench.first_render [--runs 5] [--app-dir .] [--lang en] [--workspace DIR] [--out FILE.json]

Each run is a cold start, as a user meets it: a fresh `streamlit run streamlit_app.py` (headless, 127.0.0.1, a fresh
WORKBENCH_HOME), wait for /_stcore/health, then headless Chromium opens the app and the clock runs from `goto` to
1. the title (the home page's h1 is visible), and
2. fully drawn: the page's last section is visible and the script has finished (Streamlit's status widget, shown
   while the script runs, is gone).
A second and third visit in new tabs (warm: modules imported, caches filled) are timed the same way. The medians of
the runs are printed with the load average before and after; `--app-dir` points at another checkout (a before);
`--workspace DIR` copies DIR into each run's fresh WORKBENCH_HOME (a workspace with a collection: the home page then
lists Chroma collections, which imports chromadb).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
TITLE = {"en": "RAG vs Fine-Tune Workbench", "ko": "RAG vs 파인튜닝 워크벤치"}
LAST = {"en": "Embedding models", "ko": "임베딩 모델"}  # the home page's last section


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_health(url: str, timeout: float = 90) -> float:
    import urllib.request

    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return time.time() - t0
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("the server did not come up")


def _visit(browser, url: str, lang: str) -> tuple[float, float]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        t0 = time.perf_counter()
        page.goto(url)
        page.get_by_role("heading", name=TITLE[lang]).first.wait_for(timeout=60_000)
        title = time.perf_counter() - t0
        page.get_by_text(LAST[lang], exact=True).first.wait_for(timeout=60_000)
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
        return title, time.perf_counter() - t0
    finally:
        page.close()


def one_run(app_dir: Path, lang: str, browser, workspace: Path | None = None) -> dict:
    port = _free_port()
    home = Path(tempfile.mkdtemp(prefix="first-render-"))
    if workspace is not None:
        shutil.copytree(workspace, home, dirs_exist_ok=True, symlinks=True)
    env = dict(os.environ, WORKBENCH_HOME=str(home), WORKBENCH_LANG=lang, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=app_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        up = _wait_health(url)
        cold = _visit(browser, url, lang)
        warm = [_visit(browser, url, lang) for _ in range(2)]
        return {"server_up_s": round(up, 2), "title_s": round(cold[0], 2), "drawn_s": round(cold[1], 2),
                "warm_title_s": round(min(w[0] for w in warm), 2), "warm_drawn_s": round(min(w[1] for w in warm), 2)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--app-dir", type=Path, default=ROOT)
    ap.add_argument("--lang", choices=list(TITLE), default="en")
    ap.add_argument("--workspace", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()
    runs = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            for i in range(args.runs):
                runs.append(one_run(args.app_dir.resolve(), args.lang, browser, args.workspace))
                print(f"run {i + 1}: {runs[-1]}", flush=True)
        finally:
            browser.close()
    result = {"app_dir": str(args.app_dir.resolve()), "lang": args.lang, "workspace": str(args.workspace or ""), "runs": runs,
              "median": {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]},
              "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
              "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps({k: result[k] for k in ("median", "load_before", "load_after", "cpus", "date")}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
