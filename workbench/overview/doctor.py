"""What this installation can do: workspace contents, device, backends, models (`python -m workbench doctor`)."""

from __future__ import annotations

import dataclasses
import platform
from typing import Any

from workbench.common.config import Workspace
from workbench.kb.embeddings import DEFAULT_EMBEDDING, EMBEDDING_REGISTRY, embedding_ready
from workbench.models.registry import DEFAULT_MODEL, REGISTRY, detect_backends, detect_device, is_ready


def workspace_summary(workspace: Workspace) -> dict[str, Any]:
    """Names of the collections, datasets and runs in the workspace (read-only, creates nothing)."""
    from workbench.common.errors import OfflineError
    from workbench.kb.vectordb import list_collections

    # Through vectordb, so that one process holds one Chroma client per store (display names, server too).
    try:
        collections = [c.name for c in list_collections(workspace)]
    except OfflineError as exc:  # a configured Chroma server is down: say so, the rest of the report still helps
        collections, collections_error = [], str(exc)
    else:
        collections_error = ""
    datasets = sorted(p.name for p in workspace.datasets.glob("*/meta.json") for p in [p.parent]) if workspace.datasets.is_dir() else []
    runs = sorted(p.parent.name for p in workspace.runs.glob("*/config.json")) if workspace.runs.is_dir() else []
    return {"root": str(workspace.root), "collections": collections, "datasets": datasets, "runs": runs,
            **({"collections_error": collections_error} if collections_error else {})}


def collect_facts(workspace: Workspace | None = None, check_hub: bool = True) -> dict[str, Any]:
    """Everything the home page and `doctor` show, as plain JSON-able data."""
    ws = workspace or Workspace.default()
    device = detect_device()
    return {
        "workspace": workspace_summary(ws),
        "device": dataclasses.asdict(device),
        "versions": {"python": platform.python_version(), **{name: _version(name) for name in ("torch", "transformers", "trl", "peft", "unsloth", "chromadb", "streamlit")}},
        "backends": [dataclasses.asdict(b) for b in detect_backends(check_hub=check_hub)],
        "models": [
            {"key": s.key, "label": s.label, "source": s.source, "ready": is_ready(s, ws), "default": s.key == DEFAULT_MODEL,
             "languages": list(s.languages), "note": s.note}
            for s in REGISTRY.values()
        ],
        "embeddings": [
            {"key": s.key, "label": s.label, "ready": embedding_ready(s.key), "default": s.key == DEFAULT_EMBEDDING,
             "languages": list(s.languages), "note": s.note}
            for s in EMBEDDING_REGISTRY.values()
        ],
    }


def _version(dist: str) -> str:
    """An installed distribution's version without importing it (importing transformers takes seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def format_facts(facts: dict[str, Any]) -> str:
    """The human-readable `doctor` report."""
    d, ws = facts["device"], facts["workspace"]
    lines = [
        f"workspace   {ws['root']}",
        f"            {len(ws['collections'])} collections, {len(ws['datasets'])} datasets, {len(ws['runs'])} runs",
        f"device      {d['kind'].upper()}: {d['name']} ({d['memory_gb']} GiB" + (f", x{d['count']}" if d["count"] > 1 else "") + ")",
        "versions    " + ", ".join(f"{k} {v}" for k, v in facts["versions"].items()),
        "backends",
    ]
    lines += [f"  {'ok ' if b['available'] else 'no '} {b['name']:<18} {b['detail']}" for b in facts["backends"]]
    lines.append("models")
    lines += [f"  {'ready' if m['ready'] else '-    '} {m['key']:<40} {m['label']}{'  [default]' if m['default'] else ''}" for m in facts["models"]]
    lines.append("embeddings")
    lines += [f"  {'ready' if m['ready'] else '-    '} {m['key']:<40} {m['label']}{'  [default]' if m['default'] else ''}" for m in facts["embeddings"]]
    return "\n".join(lines)
