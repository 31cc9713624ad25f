"""Where images go: an OCI layout on disk (layout.py) or a registry (registry.py)."""
