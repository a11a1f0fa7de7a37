"""Streamlit-only helpers: the one part of `workbench` that may import streamlit."""
