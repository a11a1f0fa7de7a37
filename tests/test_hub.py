"""Hub uploads: the export folder, the offline and unauthorised paths, and a full upload to a real
HTTP server on 127.0.0.1 that speaks the Hub's create / validate / preupload / commit protocol."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.model_selection import train_test_split

from workbench.common.errors import ConfigError, NotFoundError, OfflineError
from workbench.dataset import alpaca
from workbench.dataset.alpaca import DatasetConfig, SplitConfig
from workbench.dataset.hub import check_repo_id, export_dataset, push_dataset, push_folder

TOKEN = "hf_test_TOKEN_MUST_NOT_LEAK_0123456789"


class FakeHub:
    """A real HTTP server implementing the four Hub calls an upload makes. It validates the card's
    YAML like the Hub does, stores committed files, and can refuse everything with `status`."""

    def __init__(self, status: int | None = None):
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.files: dict[str, bytes] = {}
        self.created: dict[str, Any] = {}
        self.status = status
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = self.path.split("?")[0]
                hub.calls.append(("POST", path, {k.lower(): v for k, v in self.headers.items()}))
                if hub.status:
                    return self._send(hub.status, {"error": "Invalid credentials in Authorization header"})
                if path == "/api/repos/create":
                    hub.created = json.loads(body)
                    return self._send(200, {"url": f"{hub.url}/datasets/{hub.created['organization']}/{hub.created['name']}"})
                if path == "/api/validate-yaml":
                    try:
                        meta = yaml.safe_load(json.loads(body)["content"].split("---")[1])
                        assert isinstance(meta, dict)
                    except Exception as exc:  # the Hub answers 400 with the YAML problem
                        return self._send(400, {"errors": [{"message": str(exc)}]})
                    return self._send(200, {"errors": [], "warnings": []})
                if "/preupload/" in path:
                    files = json.loads(body)["files"]
                    return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
                if "/commit/" in path:
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            hub.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    repo = path.split("/commit/")[0].removeprefix("/api/")
                    return self._send(200, {"commitUrl": f"{hub.url}/{repo}/commit/{'a' * 40}", "commitOid": "a" * 40})
                return self._send(404, {"error": f"unknown {path}"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def split_dataset(workspace, tmp_path):
    rows = [{"instruction": f"질문 {i}번: 가게 {i}층에는 무엇이 있나요?", "input": "", "output": f"{i}층에는 상품 {i}이 있습니다.",
             "source": f"doc{i % 3}.md"} for i in range(40)]
    path = tmp_path / "shop.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    alpaca.import_dataset(path, DatasetConfig(name="shop", tokenizer=""), workspace=workspace)
    alpaca.split_dataset("shop", SplitConfig(), workspace=workspace)
    return rows


def test_export_holds_the_tutorial_split_and_a_card(workspace, split_dataset):
    folder = export_dataset("shop", workspace, repo_id="me/shop")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "test.csv", "train.csv"]
    df = pd.DataFrame(split_dataset)
    train, test = train_test_split(df, test_size=0.1, random_state=42)  # the tutorial's call
    got_train = pd.read_csv(folder / "train.csv", keep_default_na=False)
    got_test = pd.read_csv(folder / "test.csv", keep_default_na=False)
    assert got_train["instruction"].tolist() == train["instruction"].tolist()  # same rows, same order
    assert got_test["instruction"].tolist() == test["instruction"].tolist()
    assert list(got_train.columns) == ["instruction", "input", "output", "source"]
    card = (folder / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["language"] == ["ko"] and meta["size_categories"] == ["n<1K"]
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "train.csv"}, {"split": "test", "path": "test.csv"}]
    for text in ("| train | 36 |", "| test | 4 |", "random_state=42", "test_size=0.1", "test_size=0.2", "| `source` | string |",
                 "json file `shop.json`", 'load_dataset("me/shop", data_files="train.csv"'):
        assert text in card, text


def test_offline_push_is_a_clear_error_and_the_export_stays(workspace, split_dataset, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"Cannot upload to me/shop: the Hugging Face Hub is offline .* The local files in .*export are kept"):
        push_dataset("shop", "me/shop", token=TOKEN, workspace=workspace)
    export = workspace.datasets / "shop" / "export"
    assert sorted(p.name for p in export.iterdir()) == ["README.md", "test.csv", "train.csv"]
    assert "pushes" not in json.loads((workspace.datasets / "shop" / "meta.json").read_text(encoding="utf-8"))


def test_argument_errors(workspace, split_dataset, tmp_path, monkeypatch):
    for bad in ("shop", "me/", "/x", "a/b/c", "me/sh op", "me/../x"):
        with pytest.raises(ConfigError, match="USER/NAME"):
            check_repo_id(bad)
    with pytest.raises(NotFoundError, match="does not exist or is empty"):
        push_folder(tmp_path / "missing", "me/x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError):
        push_folder(tmp_path / "empty", "me/x")
    with pytest.raises(ConfigError, match="repo_type"):
        push_folder(workspace.datasets / "shop", "me/x", repo_type="bucket")  # type: ignore[arg-type]
    alpaca.import_dataset(tmp_path / "shop.json", DatasetConfig(name="unsplit", tokenizer=""), workspace=workspace)
    with pytest.raises(NotFoundError, match="has not been split yet"):
        push_dataset("unsplit", "me/x", workspace=workspace)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored login either
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    with pytest.raises(OfflineError, match="no Hugging Face token. Set HF_TOKEN"):
        push_folder(workspace.datasets / "shop", "me/x", endpoint="http://127.0.0.1:9")


@pytest.fixture()
def hub_online(monkeypatch):
    """Let huggingface_hub talk to our 127.0.0.1 server (conftest sets HF_HUB_OFFLINE=1)."""
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)


def test_push_uploads_exactly_the_export_folder(workspace, split_dataset, hub_online):
    progress: list[tuple[str, float]] = []
    with FakeHub() as hub:
        out = push_dataset("shop", "me/shop", private=True, token=TOKEN, workspace=workspace, endpoint=hub.url,
                           progress=lambda m, f: progress.append((m, f)))
    export = workspace.datasets / "shop" / "export"
    assert out == {"url": f"{hub.url}/datasets/me/shop", "folder": str(export), "files": ["README.md", "test.csv", "train.csv"]}
    assert hub.created == {"name": "shop", "organization": "me", "visibility": "private", "type": "dataset"}
    assert hub.files == {p.name: p.read_bytes() for p in export.iterdir()}
    assert {c[2]["authorization"] for c in hub.calls} == {f"Bearer {TOKEN}"}
    assert [p for p, _ in progress][0] == "Writing the export folder" and progress[-1][1] == 1.0
    meta = json.loads((workspace.datasets / "shop" / "meta.json").read_text(encoding="utf-8"))
    assert [(p["repo"], p["private"]) for p in meta["pushes"]] == [("me/shop", True)]
    for p in workspace.datasets.rglob("*"):
        assert not p.is_file() or TOKEN.encode() not in p.read_bytes()


def test_unauthorised_push_is_a_clear_error_without_the_token(workspace, split_dataset, hub_online, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
    with FakeHub(status=401) as hub:
        with pytest.raises(OfflineError, match=r"The Hub refused the token for me/adapter \(HTTP 401\).*write access.*kept") as exc:
            push_folder(adapter, "me/adapter", "model", token=TOKEN, endpoint=hub.url)
    assert TOKEN not in str(exc.value) and (adapter / "adapter_config.json").is_file()
