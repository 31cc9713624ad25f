"""Layer kinds. Each module turns one kind of content into entries for the deterministic tar writer in tar.py."""
