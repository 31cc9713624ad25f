"""Registries: references, the HTTP client (the only user of oras, requests and urllib3), credentials, TLS trust,
redaction of secrets, progress, push and pull."""
