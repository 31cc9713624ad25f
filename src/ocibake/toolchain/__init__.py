"""Toolchains: where go and upx run. The local one (programs on PATH) or an image unpacked into the private cache
and run in a rootless sandbox."""
