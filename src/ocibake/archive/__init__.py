"""Image archives, the files other tools load: docker-archive (what `docker load` and `podman load` read) and
oci-archive (a tarred OCI layout, as skopeo, podman and buildah read it), written from an OCI layout.

Both are written deterministically (entries built by hand through layers/tar.py, sorted, mtime 0, uid/gid 0) and
atomically (a temporary file beside the destination, renamed into place).
"""
