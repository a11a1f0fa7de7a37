"""How much CPU the Streamlit server burns while other processes write into the workspace (issue #17).

Starts `streamlit run streamlit_app.py` with WORKBENCH_HOME in a folder under the checkout, opens a page (Concepts by
default: it imports transformers, as a used workbench has) once in headless Chromium (the file watcher belongs to a
browser session, so a plain HTTP GET would not start it), then lets a background process write like a training run and an ingest (~20 writes/s: 1 MB checkpoints written in 4 KB
pieces and renamed into place, metrics.jsonl appended, store files rewritten) and reads the server's utime+stime from
/proc/<pid>/stat over the window. Prints JSON: % of one core while idle and while writing, and what the log holds.

    python -m bench.server_idle [--watcher auto|none|config] [--seconds 30] [--rate 20] [--page concepts]

--watcher config (the default) uses .streamlit/config.toml as it is; auto/none override server.fileWatcherType.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    # Fields after the command name (which may hold spaces, hence rsplit on ')'): utime, stime are 14 and 15.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _cpu_percent(pid: int, seconds: float) -> float:
    start_cpu, start = _cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return round(100 * (_cpu_seconds(pid) - start_cpu) / (time.monotonic() - start), 2)


def write_like_a_run(home: Path, seconds: float, rate: float) -> int:
    """Write into `home` as a training run and an ingest do; returns how many writes it made."""
    run, store = home / "runs" / "bench-run", home / "vectorstore" / "bench"
    run.mkdir(parents=True, exist_ok=True)
    store.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(4096)
    writes, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        kind = writes % 4
        if kind == 0:  # a checkpoint: 1 MB of weights in 4 KB writes (256 inotify events), renamed into place
            ckpt = run / f"checkpoint-{writes}"
            ckpt.mkdir(exist_ok=True)
            tmp = ckpt / "adapter_model.safetensors.tmp"
            with open(tmp, "wb", buffering=0) as fh:
                for _ in range(256):  # noqa: FURB122 (one write, one inotify event, as torch writes weights)
                    fh.write(chunk)
            tmp.rename(ckpt / "adapter_model.safetensors")
            (ckpt / "trainer_state.json").write_text(json.dumps({"step": writes, "loss": 1.0 / (writes + 1)}))
        elif kind == 1:  # a progress line
            with open(run / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": writes, "loss": 1.0 / (writes + 1)}) + "\n")
        elif kind == 2:  # the store rewrites a segment
            (store / f"segment-{writes % 50}.bin").write_bytes(os.urandom(4096))
        else:  # the run's status file, replaced atomically
            tmp = run / "status.json.tmp"
            tmp.write_text(json.dumps({"state": "running", "step": writes}))
            tmp.replace(run / "status.json")
        writes += 1
        time.sleep(1.0 / rate)
    return writes


def _wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer on port {port} within {timeout}s")


def measure(watcher: str, seconds: float, rate: float, port: int, page_path: str) -> dict:
    home = ROOT / f".bench-home-{os.getpid()}"
    log = home.with_suffix(".log")
    cmd = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port)]
    if watcher != "config":
        cmd += ["--server.fileWatcherType", watcher]
    env = {**os.environ, "WORKBENCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    home.mkdir()
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM_ARGS

    with open(log, "w", encoding="utf-8") as log_fh:
        server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_fh, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(port, server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/{page_path}", wait_until="networkidle")
            page.wait_for_selector("[data-testid='stSidebar']", timeout=60_000)
            time.sleep(3)
            # the run is over when the "Running..." widget is gone (the Concepts page loads an embedding model first)
            page.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=180_000)
            time.sleep(3)
            idle = _cpu_percent(server.pid, 10)
            writer = subprocess.Popen([sys.executable, "-m", "bench.server_idle", "--write-only", str(home),
                                       "--seconds", str(seconds), "--rate", str(rate)], cwd=ROOT,
                                      stdout=subprocess.PIPE, text=True)
            busy = _cpu_percent(server.pid, seconds)
            writes = int(writer.communicate(timeout=seconds + 30)[0].strip() or 0)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = log.read_text(encoding="utf-8", errors="replace")
    shutil.rmtree(home, ignore_errors=True)
    log.unlink()
    return {"fileWatcherType": watcher, "page": page_path, "seconds": seconds, "writes": writes,
            "idle_cpu_pct_of_one_core": idle, "writing_cpu_pct_of_one_core": busy,
            "log_tracebacks": text.count("Traceback (most recent call last)"),
            "log_inotify_overflows": text.count("queue overflow"),
            "log_no_torchvision": text.count("No module named 'torchvision'"), "log_lines": text.count("\n")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watcher", choices=["config", "auto", "none", "watchdog", "poll"], default="config")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=20, help="writes per second")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--page", default="concepts",
                        help="url path of the page to open; concepts imports transformers, as a used workbench has")
    parser.add_argument("--write-only", metavar="HOME", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_only:
        print(write_like_a_run(Path(args.write_only), args.seconds, args.rate))
        return
    print(json.dumps(measure(args.watcher, args.seconds, args.rate, args.port, args.page), indent=2))


if __name__ == "__main__":
    main()
