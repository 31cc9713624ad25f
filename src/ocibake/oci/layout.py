"""An OCI image layout directory: oci-layout, index.json, blobs/sha256/.

Writes are atomic. A new layout is assembled in a hidden sibling directory and renamed into place. An existing
layout gets its new blobs staged inside it, moved into blobs/ (each rename atomic; an unreferenced blob is harmless),
and only then is index.json replaced by rename, so an interrupted build leaves the old index and every blob it names
as they were. Building into the same layout replaces the tags it names and keeps the other images.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ocibake.errors import InputError
from ocibake.oci import json_doc
from ocibake.oci.image import Blob, Descriptor, canonical_json, sha256_digest
from ocibake.oci.layout_check import check_blob_dirs, check_index, entry_problem, open_blob, repair_hint
from ocibake.oci.layout_lock import locked
from ocibake.oci.layout_merge import merged_index
from ocibake.oci.limits import MANIFEST_MAX_BYTES, too_large
from ocibake.oci.media_types import INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, REF_NAME
from ocibake.oci.referrer_prune import orphaned_referrers
from ocibake.workdirs import OWNER_FILE, claim, remove_abandoned_stages

LAYOUT_FILE = "oci-layout"
LAYOUT_BYTES = canonical_json({"imageLayoutVersion": "1.0.0"})


def digest_path(root: Path, digest: str) -> Path:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InputError(f"invalid digest {digest!r}", hint="digests look like sha256:<64 lowercase hex digits>")
    return root / "blobs" / "sha256" / hexpart


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def check_output_path(path: Path, flag: str = "--output") -> None:
    """Refuse, before any work, an output that could not become a layout (``flag``: how the user named it)."""
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise InputError(
                f"output {path} exists and is not a directory", hint=f"choose another {flag}, or remove the file"
            )
        if not (path / LAYOUT_FILE).is_file() and any(path.iterdir()):
            raise InputError(
                f"output {path} is a non-empty directory that is not an OCI layout",
                hint=f"choose an empty or new directory for {flag}, or an existing OCI layout",
            )
        if not _can_write_in(path):
            raise InputError(f"output {path} is not writable", hint=f"choose a writable {flag}")
        if (path / LAYOUT_FILE).is_file():
            Layout.open(path)  # a damaged index.json is found now, before any work
        return
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"output {path} cannot be created: {parent} is not a directory", hint=f"choose another {flag}")
    if not _can_write_in(parent):
        raise InputError(f"output {path} cannot be created: {parent} is not writable", hint=f"choose a writable {flag}")


def _can_write_in(directory: Path) -> bool:
    """Try it: os.access() says yes to root even on read-only mounts and in user namespaces."""
    try:
        fd, name = tempfile.mkstemp(prefix=".ocibake-probe-", dir=directory)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


class Layout:
    """A read view of an existing OCI layout."""

    def __init__(self, root: Path, index: dict[str, Any], index_bytes: bytes = b""):
        self.root = root
        self.index = index
        self.index_bytes = index_bytes  # index.json as read, so a writer can tell it would write the same

    @staticmethod
    def open(path: Path | str) -> Layout:
        root = Path(path)
        if not root.is_dir():
            raise InputError(
                f"{root} is not a directory", hint="pass the directory of an OCI image layout (e.g. dist/oci/NAME)"
            )
        if not (root / LAYOUT_FILE).is_file() or not (root / "index.json").is_file():
            raise InputError(
                f"{root} is not an OCI image layout (no oci-layout or index.json)",
                hint="build one with `ocibake build`, or copy one with `skopeo copy ... oci:DIR:TAG`",
            )
        if (root / "index.json").is_symlink():
            raise InputError(
                f"{root}/index.json is a symlink; a layout's files must be inside it",
                hint=f"replace it by the file it points to, or move {root} aside",
            )
        try:
            data = (root / "index.json").read_bytes()
            index = json_doc.loads(data)
        except PermissionError:
            raise InputError(
                f"{root}/index.json cannot be read: permission denied",
                hint="check the layout's permissions, or run as a user who may read it",
            ) from None
        except (OSError, ValueError) as exc:
            raise InputError(f"{root}/index.json is not valid JSON: {exc}", hint=repair_hint(root)) from exc
        check_index(root, index)
        check_blob_dirs(root)
        return Layout(root, index, data)

    def manifests(self) -> list[Descriptor]:
        # check_index() made sure every entry is a valid descriptor
        return [Descriptor.from_json(m) for m in self.index.get("manifests", [])]

    def tags(self) -> dict[str, Descriptor]:
        return {d.annotations[REF_NAME]: d for d in self.manifests() if REF_NAME in d.annotations}

    def resolve(self, tag: str | None = None) -> Descriptor:
        tags = self.tags()
        if tag is None:
            manifests = self.manifests()
            if len(manifests) == 1:
                return manifests[0]
            raise InputError(
                f"{self.root} holds {len(manifests)} images; name one with :TAG",
                hint=f"tags here: {', '.join(sorted(tags)) or 'none'}",
            )
        if tag not in tags:
            raise InputError(
                f"tag {tag!r} is not in {self.root}", hint=f"tags here: {', '.join(sorted(tags)) or 'none'}"
            )
        return tags[tag]

    def blob_path(self, digest: str) -> Path:
        return digest_path(self.root, digest)

    def has_intact_blob(self, digest: str, size: int) -> bool:
        """True when the blob is on disk with the right size and bytes (so it need not be fetched again).
        A blob that is a symlink or not a regular file is an InputError."""
        path = self.blob_path(digest)
        try:
            with open_blob(self.root, path) as f:
                if os.fstat(f.fileno()).st_size != size:
                    return False
                h = hashlib.sha256()
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                return "sha256:" + h.hexdigest() == digest
        except OSError:
            return False

    def read_blob(self, digest: str, limit: int = MANIFEST_MAX_BYTES) -> bytes:
        """A document blob (manifest, index, config; artifact blobs with a larger ``limit``) read whole and checked
        against its digest; one larger than ``limit`` is refused before it is read (limits.py)."""
        path = self.blob_path(digest)
        try:
            with open_blob(self.root, path) as f:
                size = os.fstat(f.fileno()).st_size
                data = f.read(limit + 1) if size <= limit else b""
            if size > limit or len(data) > limit:
                raise InputError(
                    too_large(f"blob {digest[:19]} in {self.root}", size, limit),
                    hint="the layout holds something that is no image ocibake (or skopeo) reads; remove that image "
                    "from it (`ocibake layout repair` drops unreadable entries), or rebuild or re-pull it",
                )
        except FileNotFoundError:
            raise InputError(
                f"blob {digest} is missing from {self.root}", hint="the layout is incomplete; rebuild or re-pull it"
            ) from None
        if sha256_digest(data) != digest:
            raise InputError(
                f"blob {digest} in {self.root} does not match its digest",
                hint="the layout is damaged; rebuild or re-pull it",
            )
        return data

    def reachable(self, roots: Iterable[Descriptor]) -> set[str]:
        """Digests of every blob reachable from ``roots`` (indexes, manifests, configs, layers)."""
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            d = stack.pop()
            if d.digest in seen:
                continue
            seen.add(d.digest)
            if d.media_type in MANIFEST_TYPES + INDEX_TYPES:
                path = self.blob_path(d.digest)
                try:
                    with open_blob(self.root, path) as f:
                        doc = json_doc.loads(f.read(MANIFEST_MAX_BYTES + 1))  # over the limit: not JSON
                except FileNotFoundError:
                    continue
                except ValueError:
                    doc = None
                children = (
                    (doc.get("manifests") or [], doc.get("layers") or [], [doc["config"]] if "config" in doc else [])
                    if isinstance(doc, dict)
                    else None
                )
                if (
                    children is None
                    or not all(isinstance(c, list) for c in children)
                    or any(entry_problem(c) for group in children for c in group)
                ):
                    # what it names is unknown: a cleanup relying on this must not run
                    raise InputError(
                        f"{d.digest} in {self.root} is not a valid manifest or index", hint=repair_hint(self.root)
                    )
                for group in children:
                    stack.extend(Descriptor.from_json(c) for c in group)
        return seen


class LayoutWriter:
    """Stages blobs for a layout and commits them with a new set of tags in one atomic index.json swap.

    Use as a context manager: leaving without commit() removes everything staged. The commit runs under the layout's
    writers' lock (layout_lock.py), so concurrent writers keep each other's tags and blobs.
    """

    def __init__(self, path: Path | str, log: Callable[[str], None] | None = None):
        self.root = Path(path)
        self.log = log
        self._existing = (self.root / LAYOUT_FILE).is_file()
        # The pid in the name and the owner record let a later writer remove what a killed one left.
        if self._existing:
            prefix, where = f".ocibake-staging-{os.getpid()}-", self.root
        else:
            self.root.parent.mkdir(parents=True, exist_ok=True)
            prefix, where = f".{self.root.name}.ocibake-{os.getpid()}-", self.root.parent
        remove_abandoned_stages(where, prefix.rsplit("-", 2)[0] + "-")
        self._prefix, self._where = prefix, where
        self._stage = Path(tempfile.mkdtemp(prefix=prefix, dir=where))
        try:
            claim(self._stage)
        except BaseException:
            shutil.rmtree(self._stage, ignore_errors=True)
            raise
        self._work: list[Path] = []
        self._blobs: dict[str, Path] = {}
        self._done = False

    def __enter__(self) -> LayoutWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        for work in self._work:
            shutil.rmtree(work, ignore_errors=True)
        if not self._done:
            shutil.rmtree(self._stage, ignore_errors=True)

    def work_dir(self) -> Path:
        """A private directory beside the stage for files that are not blobs (the binary, go's temporary files):
        removed when the writer is left, and, like the stage, by a later writer if this process was killed."""
        work = Path(tempfile.mkdtemp(prefix=self._prefix + "work-", dir=self._where))
        self._work.append(work)
        claim(work)
        return work

    def scratch_file(self, prefix: str) -> Path:
        """A fresh path on the layout's filesystem to write a blob to (then add_blob_file it)."""
        fd, name = tempfile.mkstemp(prefix=prefix, dir=self._stage)
        os.close(fd)
        return Path(name)

    def blob_file(self, digest: str) -> Path:
        """Where the blob's bytes are now: staged by this writer, or already in the layout."""
        return self._blobs.get(digest) or digest_path(self.root, digest)

    def add_blob_file(self, path: Path, digest: str) -> None:
        self._blobs[digest] = path

    def keep_blob(self, digest: str) -> bool:
        """Stage a hard link to a blob already in the layout (checked intact), so that a concurrent writer's cleanup
        cannot remove it before this writer's commit names it. False: it is gone meanwhile (fetch it again)."""
        target = self._stage / f"kept-{digest.split(':', 1)[-1]}"
        try:
            try:
                os.link(digest_path(self.root, digest), target, follow_symlinks=False)
            except FileNotFoundError:
                return False
            except OSError:
                with open_blob(self.root, digest_path(self.root, digest)) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        except FileNotFoundError:
            return False
        self._blobs[digest] = target
        return True

    def add_blob(self, blob: Blob) -> Descriptor:
        path = self.scratch_file("json-")
        path.write_bytes(blob.data)
        self.add_blob_file(path, blob.digest)
        return blob.descriptor()

    def commit(
        self,
        tagged: Sequence[tuple[str, Descriptor]],
        untagged: Sequence[Descriptor] = (),
        check: Callable[[Layout], None] | None = None,
    ) -> None:
        """Move staged blobs in, then point each tag at its descriptor; other tags in the layout are kept.

        ``check`` is called with the layout as it is under the lock, before anything moves (it may refuse)."""
        new_entries = [d.with_annotations({**d.annotations, REF_NAME: tag}) for tag, d in tagged] + list(untagged)
        if self._existing:
            with locked(self.root, self.log):
                self._merge(tagged, untagged, new_entries, check)
            return
        with locked(self._where, self.log):
            if (self.root / LAYOUT_FILE).is_file():  # another writer made it meanwhile: add to it
                with locked(self.root, self.log):
                    self._merge(tagged, untagged, new_entries, check)
                return
            self._create(new_entries)

    def _create(self, new_entries: list[Descriptor]) -> None:
        blob_dir = self._stage / "blobs" / "sha256"
        blob_dir.mkdir(parents=True)
        for digest, path in self._blobs.items():
            os.chmod(path, 0o644)
            os.replace(path, digest_path(self._stage, digest))
        for leftover in self._stage.iterdir():  # scratch files never filled (a cache miss), kept-blob links
            if leftover.name not in ("blobs", OWNER_FILE):
                leftover.unlink()
        (self._stage / LAYOUT_FILE).write_bytes(LAYOUT_BYTES)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d.as_json() for d in new_entries]}
        (self._stage / "index.json").write_bytes(canonical_json(index))
        for p in (self._stage / LAYOUT_FILE, self._stage / "index.json"):
            os.chmod(p, 0o644)
        for d in (self._stage, self._stage / "blobs", blob_dir):
            os.chmod(d, 0o755)
        (self._stage / OWNER_FILE).unlink()
        if self.root.is_dir():  # an empty directory given as --output
            self.root.rmdir()
        os.replace(self._stage, self.root)
        self._done = True

    def _merge(
        self,
        tagged: Sequence[tuple[str, Descriptor]],
        untagged: Sequence[Descriptor],
        new_entries: list[Descriptor],
        check: Callable[[Layout], None] | None,
    ) -> None:
        old = Layout.open(self.root)
        if check is not None:
            check(old)
        index, replaced = merged_index(old.index, tagged, untagged, new_entries)
        blob_dir = self.root / "blobs" / "sha256"
        blob_dir.mkdir(parents=True, exist_ok=True)
        # A staged blob was hashed as it was written, so it always replaces the file on disk: a blob damaged since
        # (a flipped byte, a truncated copy) is repaired by the next build or pull that needs it.
        for digest, path in self._blobs.items():
            os.chmod(path, 0o644)
            os.replace(path, digest_path(self.root, digest))
        orphans = orphaned_referrers(self.root, index["manifests"])  # an SBOM of an image no tag names now
        if orphans:
            index["manifests"] = [m for m in index["manifests"] if not any(m is o for o in orphans)]
            replaced += [Descriptor.from_json(m) for m in orphans]
        data = canonical_json(index)
        if data != old.index_bytes:  # the same images again: index.json is left as it was
            tmp_index = self._stage / "index.json"
            tmp_index.write_bytes(data)
            os.chmod(tmp_index, 0o644)
            os.replace(tmp_index, self.root / "index.json")
        self._done = True
        shutil.rmtree(self._stage, ignore_errors=True)
        if replaced:
            self._collect_garbage(replaced, {d.digest for d in new_entries})

    def _collect_garbage(self, replaced: list[Descriptor], added: set[str]) -> None:
        """Delete blobs only the replaced tags used; blobs this code does not know about are never touched.
        Runs under the writers' lock, so no other writer's tag can come to need one of them meanwhile."""
        if {d.digest for d in replaced} <= added:
            return  # the same images again: nothing became unused
        try:
            layout = Layout.open(self.root)
            still_used = layout.reachable(layout.manifests())
            for digest in layout.reachable(replaced) - still_used:
                layout.blob_path(digest).unlink(missing_ok=True)
        except (OSError, ValueError, TypeError, KeyError, AttributeError, InputError):
            pass  # garbage left behind is harmless; never fail a committed build over it
