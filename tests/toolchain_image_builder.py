"""Make a Go toolchain image for tests and benchmarks, offline, with ocibake's own layer and layout code.

Layers: (1) a base with /etc/passwd, /etc/group, /tmp, and the host's upx with the shared libraries `ldd` lists and the
dynamic loader; (2) the host's installed GOROOT at /usr/local/go (without its test suite, API lists, testdata
directories and _test.go files, which `go build` never reads). The config's Env puts /usr/local/go/bin first on PATH,
as the official golang images do. Usage: python tests/toolchain_image_builder.py DEST_LAYOUT [--no-go] [--no-upx]
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from ocibake.layers.tar import Entry, write_layer  # noqa: E402
from ocibake.oci.image import OCI_MANIFEST, Descriptor, ImageConfig, LayerRecord, Platform, make_image  # noqa: E402
from ocibake.oci.layout import LayoutWriter  # noqa: E402

GOROOT_IN_IMAGE = "/usr/local/go"
SKIP_TOP = {"test", "api"}
PATH = f"{GOROOT_IN_IMAGE}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def host_goroot() -> Path:
    go = shutil.which("go")
    if not go:
        raise SystemExit("go is not installed")
    return Path(subprocess.run([go, "env", "GOROOT"], stdout=subprocess.PIPE, text=True, check=True).stdout.strip())


def go_version(goroot: Path) -> str:
    return subprocess.run(
        [str(goroot / "bin" / "go"), "env", "GOVERSION"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "GOTOOLCHAIN": "local"},
    ).stdout.strip()


def _mode(st: os.stat_result) -> int:
    return 0o755 if st.st_mode & 0o111 else 0o644


def goroot_entries(goroot: Path) -> list[Entry]:
    entries = [Entry.dir(GOROOT_IN_IMAGE)]
    for dirpath, dirnames, filenames in os.walk(goroot):
        rel = Path(dirpath).relative_to(goroot)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d not in SKIP_TOP]
        dirnames[:] = sorted(d for d in dirnames if d != "testdata")
        for name in dirnames + filenames:
            if name.endswith("_test.go"):
                continue
            host = Path(dirpath) / name
            path = f"{GOROOT_IN_IMAGE}/{rel / name}".replace("/./", "/")
            st = os.lstat(host)
            if stat.S_ISLNK(st.st_mode):
                entries.append(Entry.symlink(path, os.readlink(host)))
            elif stat.S_ISDIR(st.st_mode):
                entries.append(Entry.dir(path))
            elif stat.S_ISREG(st.st_mode):
                entries.append(Entry.from_path(path, host, mode=_mode(st)))
    return entries


def upx_entries() -> list[Entry]:
    """upx at /usr/bin/upx and every library ldd names, at the path ldd names (contents of the real file)."""
    upx = shutil.which("upx")
    if not upx:
        raise SystemExit("upx is not installed")
    entries = [Entry.from_path("/usr/bin/upx", Path(upx), mode=0o755)]
    out = subprocess.run(["ldd", upx], stdout=subprocess.PIPE, text=True, check=True).stdout
    for line in out.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            lib = m.group(1)
            entries.append(Entry.from_path(lib, Path(lib), mode=0o755))
    return entries


def base_entries(with_upx: bool) -> list[Entry]:
    entries = [
        Entry.file(
            "/etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n"
        ),
        Entry.file("/etc/group", b"root:x:0:\nnogroup:x:65534:\n"),
        Entry.dir("/tmp", mode=0o1777),
        Entry.dir("/root", mode=0o700),
    ]
    return entries + (upx_entries() if with_upx else [])


def build_toolchain_image(
    dest: Path,
    *,
    with_go: bool = True,
    with_upx: bool = True,
    tag: str = "latest",
    compression: str = "gzip",
    goroot: Path | None = None,
    arch: str | None = None,
) -> str:
    """Write the image into the OCI layout ``dest`` under ``tag``; return its manifest digest."""
    goroot = goroot or host_goroot()
    layer_contents = [("base", base_entries(with_upx))]
    env = [f"PATH={PATH}"]
    if with_go:
        layer_contents.append(("goroot", goroot_entries(goroot)))
        env += [f"GOLANG_VERSION={go_version(goroot).removeprefix('go')}", "GOTOOLCHAIN=local"]
    import platform as host

    plat = Platform("linux", arch or HOST_ARCH.get(host.machine(), host.machine()))
    with LayoutWriter(dest) as writer:
        records = []
        for kind, entries in layer_contents:
            blob = write_layer(entries, writer.scratch_file(f"layer-{kind}-"), mtime=0, compression=compression)
            writer.add_blob_file(blob.path, blob.digest)
            records.append(
                LayerRecord(
                    Descriptor(blob.media_type, blob.digest, blob.size),
                    blob.diff_id,
                    blob.uncompressed_size,
                    f"ocibake tests: {kind}",
                    kind,
                )
            )
        image = make_image(
            platform=plat,
            layers=records,
            created=0,
            runtime=ImageConfig(user="0:0", entrypoint=(), env=tuple(env), exposed_ports=(), working_dir="/"),
            annotations={"org.opencontainers.image.title": "ocibake-test-toolchain"},
        )
        writer.add_blob(image.config)
        writer.add_blob(image.manifest)
        writer.commit([(tag, Descriptor(OCI_MANIFEST, image.digest, len(image.manifest.data), platform=plat))])
    return image.digest


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    digest = build_toolchain_image(Path(args[0]), with_go="--no-go" not in args, with_upx="--no-upx" not in args)
    print(f"oci:{args[0]}:latest {digest}")
