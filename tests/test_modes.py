"""The retrieval modes' registry: one registration makes a mode a config choice, a CLI choice and a lab setting."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_list_of_modes_is_the_registry():
    from workbench.cli import build_parser
    from workbench.compare.retrieval_lab import lab_settings
    from workbench.kb.modes import MODES
    from workbench.kb.retrieval import RetrievalConfig

    assert list(MODES) == ["dense", "mmr", "hybrid"]
    assert RetrievalConfig.choices("mode") == tuple(MODES)
    assert RetrievalConfig.help("mode", "en").startswith("dense: vector similarity; mmr: similar but diverse")
    ask = build_parser().parse_args(["ask", "q", "--mode", "mmr"])
    assert ask.mode == "mmr"
    kinds = {kind for _, kind, cfg in lab_settings([]) if cfg is not None}
    assert kinds == set(MODES)


def test_a_registered_mode_is_a_choice_everywhere_and_runs(tmp_path):
    """A new mode, registered from outside the package before the workbench reads its modes: the config accepts it, the
    CLI offers it, the lab measures it, and a search with it runs the registered function (here: dense, reversed)."""
    plugin = tmp_path / "reverse_mode.py"
    plugin.write_text(textwrap.dedent('''
        from workbench.kb import retrieval

        def reverse_mode(q):
            return list(reversed(retrieval.dense_mode(q)))
    '''))
    code = textwrap.dedent(f'''
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from workbench.kb.modes import RetrievalMode, register_mode
        register_mode(RetrievalMode("reverse", ("reversed", "역순"), ("dense, worst first", "dense, 역순"),
                                    "reverse_mode:reverse_mode"))
        from workbench.cli import build_parser
        from workbench.compare.retrieval_lab import lab_settings
        from workbench.kb.retrieval import RetrievalConfig
        cfg = RetrievalConfig(mode="reverse", k=2)
        assert RetrievalConfig.choices("mode")[-1] == "reverse"
        assert build_parser().parse_args(["search", "q", "--collection", "c", "--mode", "reverse"]).mode == "reverse"
        assert any(kind == "reverse" for _, kind, c in lab_settings([]) if c is not None)
        from langchain_core.documents import Document
        from workbench.common.config import Workspace
        from workbench.kb.chunking import ChunkingConfig
        from workbench.kb.ingest import ingest_documents
        from workbench.kb.retrieval import retrieve
        from pathlib import Path
        ws = Workspace(Path({str(tmp_path / "ws")!r})).ensure()
        docs = [Document(t, metadata={{"source": f"d{{i}}.md"}}) for i, t in enumerate(
            ["Ice cream is in aisle 5.", "Bread is in aisle 1.", "Milk is in aisle 2."])]
        ingest_documents(docs, "shop", ChunkingConfig(chunk_size=200, chunk_overlap=0), workspace=ws)
        dense = retrieve("shop", "Where is the ice cream?", RetrievalConfig(mode="dense", k=3), ws)
        rev = retrieve("shop", "Where is the ice cream?", cfg.replace(k=3), ws)
        assert [c.text for c in rev] == [c.text for c in reversed(dense)] and "Ice cream" in dense[0].text
        print("ok")
    ''')
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
