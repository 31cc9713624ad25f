"""`ocibake run`: an image started rootless in a bubblewrap sandbox, as `docker run` would start it, and
`ocibake run SERVICE_DIR --watch`, which builds, runs, and rebuilds and restarts on every saved change."""
