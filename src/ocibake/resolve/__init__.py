"""`ocibake resolve`: Kubernetes YAML in, the same YAML out with every `ocibake://PATH` image reference replaced by
the pushed `REPO@sha256:...` of the service at PATH. This package reads and rewrites the YAML (ruamel.yaml round
trip, comments kept); the builds and pushes are driven from cli/resolve.py."""
