"""ocibake: reproducible OCI images of Go services, built without a container daemon."""

__version__ = "0.1.0"
