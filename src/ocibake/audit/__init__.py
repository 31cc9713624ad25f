"""Audit images: inspect, diff, rebuild-and-compare, SBOMs and cosign-compatible signatures (reads images through
oci/ and registry/)."""
