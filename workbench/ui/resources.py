"""Models and clients, loaded once per process through `st.cache_resource`, keyed on hashable config.

Cached objects are shared across sessions: treat them as read-only. Clear them with
`.clear()` after re-indexing or training.
"""

from __future__ import annotations

from typing import Any

import streamlit as st


@st.cache_data(ttl=60, show_spinner=False)
def doctor_facts(root: str, check_hub: bool) -> dict[str, Any]:
    from pathlib import Path

    from workbench.common.config import Workspace
    from workbench.overview.doctor import collect_facts

    return collect_facts(Workspace(Path(root)), check_hub=check_hub)


@st.cache_data(ttl=5, show_spinner=False)
def workspace_counts(root: str) -> dict[str, Any]:
    from pathlib import Path

    from workbench.common.config import Workspace
    from workbench.overview.doctor import workspace_summary

    return workspace_summary(Workspace(Path(root)))


@st.cache_resource(show_spinner=False)
def embeddings(name: str) -> Any:
    from workbench.kb.embeddings import load_embeddings

    return load_embeddings(name)


@st.cache_data(show_spinner=False, max_entries=8)
def dataset_report(root: str, name: str, stamp: str) -> tuple[list[Any], list[dict[str, Any]]]:
    """The issues and per-row lengths of a dataset; `stamp` (file times) changes whenever its rows or settings do."""
    from pathlib import Path

    from workbench.common.config import Workspace
    from workbench.dataset import alpaca, alpaca_checks

    ws = Workspace(Path(root))
    tok_name = alpaca.dataset_info(name, ws).settings.get("tokenizer", "")
    tok = alpaca_checks.load_tokenizer(tok_name, ws) if tok_name else None
    return alpaca.check_dataset(name, workspace=ws), alpaca_checks.row_lengths(alpaca.load_rows(name, ws), tok)


@st.cache_resource(show_spinner=False, max_entries=2)
def generator(base_model: str, root: str) -> Any:
    """One loaded base model per (model, workspace); adapters are attached to it as runs are picked
    (`Generator.ensure_adapter`), and its lock serialises generations across sessions."""
    from pathlib import Path

    from workbench.answers.inference import load_generator
    from workbench.common.config import Workspace

    return load_generator(base_model, Workspace(Path(root)))
