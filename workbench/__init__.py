"""RAG-vs-Fine-Tune Workbench: the core library (never imports streamlit outside `workbench.ui`)."""

__version__ = "0.1.0"
