"""OCI values and storage: platforms, media types, names, descriptors, configs, manifests and indexes as exact bytes,
and the image layout on disk (read and written atomically)."""
