"""`make bench` for `ocibake push`: first push against `skopeo copy` of the same layout, a re-push, and peak memory
pushing a 512 MB blob, all to a docker-registry on 127.0.0.1 started here.

Targets (from the registry issue): first push no slower than skopeo (ratio <= 1.0), re-push < 0.3 s with 0 blob
bytes, peak memory <= 100 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "services" / "emergency-service"
sys.path.insert(0, str(REPO / "tests"))
from registry_servers import start_registry  # noqa: E402

ROUNDS = 3
BIG = 512 << 20


def measured(args: list[str], work: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ocibake under bench/measure.py: (process, {seconds, peak_rss_mb})."""
    stats = work / "stats.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "measure.py"), str(stats), "--", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if proc.returncode != 0:
        sys.exit(f"ocibake {' '.join(args[:2])} failed:\n{proc.stderr}")
    return proc, json.loads(stats.read_text())


def skopeo_copy(layout: Path, tag: str, dest: str) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{layout}:{tag}",
            f"docker://{dest}",
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"skopeo copy failed:\n{proc.stderr}")
    return time.monotonic() - t0


def big_layout(root: Path) -> None:
    """An OCI layout with one 512 MB (random, so incompressible) layer, written without holding it in memory."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    tmp = blobs / "tmp"
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        chunk = os.urandom(1 << 20)
        for i in range(BIG >> 20):
            piece = chunk[i % 7 :] + chunk[: i % 7]  # vary the chunks cheaply
            h.update(piece)
            f.write(piece)
    layer = "sha256:" + h.hexdigest()
    tmp.rename(blobs / layer[7:])

    def put(doc: dict) -> tuple[str, int]:
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        (blobs / d[7:]).write_bytes(data)
        return d, len(data)

    cd, cs = put(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": [layer]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "bench"}],
        }
    )
    md, ms = put(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": BIG}],
        }
    )
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": md,
                        "size": ms,
                        "annotations": {"org.opencontainers.image.ref.name": "big"},
                    }
                ],
            }
        )
    )


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="ocibake-bench-push-"))
    env_keep = dict(os.environ)
    try:
        layout = work / "sample"
        build = subprocess.run(
            [
                sys.executable,
                "-m",
                "ocibake",
                "build",
                str(SAMPLE),
                "--version",
                "v1.0.0",
                "--output",
                str(layout),
                "-q",
            ],
            check=False,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if build.returncode != 0:
            sys.exit(f"ocibake build failed:\n{build.stderr}")
        size = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())

        ours, ours_inproc, theirs, repush, repush_bytes = [], [], [], [], []
        for i in range(ROUNDS):
            reg = start_registry("plain", work / f"registry-{i}")
            try:
                # alternate who goes first, each into its own repository of a fresh registry
                order = ("ocibake", "skopeo") if i % 2 == 0 else ("skopeo", "ocibake")
                for who in order:
                    if who == "ocibake":
                        proc, stats = measured(["push", str(layout), f"{reg.host}/ocibake/app", "-q", "--json"], work)
                        ours.append(stats["seconds"])
                        ours_inproc.append(json.loads(proc.stdout)["seconds"])
                    else:
                        theirs.append(skopeo_copy(layout, "v1.0.0", f"{reg.host}/skopeo/app:v1.0.0"))
                proc, stats = measured(["push", str(layout), f"{reg.host}/ocibake/app", "--json", "-q"], work)
                repush.append(stats["seconds"])
                repush_bytes.append(json.loads(proc.stdout)["bytes_uploaded"])
            finally:
                reg.close()

        big = work / "big"
        big_layout(big)
        reg = start_registry("plain", work / "registry-big")
        try:
            t0 = time.monotonic()
            _, big_stats = measured(["push", str(big), f"{reg.host}/big/app", "-q"], work)
            big_seconds = time.monotonic() - t0
            big_skopeo = skopeo_copy(big, "big", f"{reg.host}/big-skopeo/app:big")
        finally:
            reg.close()

        o, s = statistics.median(ours), statistics.median(theirs)
        rows = [
            ("sample image size", f"{size / 1e6:.1f} MB", ""),
            (f"first push, ocibake (median of {ROUNDS})", f"{o:.3f} s", ""),
            ("first push, skopeo copy (median)", f"{s:.3f} s", ""),
            ("ocibake / skopeo", f"{o / s:.2f}", "target <= 1.00 " + ("OK" if o <= s else "MISSED")),
            (
                "first push, ocibake without start-up",
                f"{statistics.median(ours_inproc):.3f} s",
                f"ratio {statistics.median(ours_inproc) / s:.2f} (Python + requests/oras imports excluded)",
            ),
            (
                "re-push (median)",
                f"{statistics.median(repush):.3f} s",
                "target < 0.3 s " + ("OK" if statistics.median(repush) < 0.3 else "MISSED"),
            ),
            (
                "re-push blob bytes",
                f"{max(repush_bytes)}",
                "target 0 " + ("OK" if max(repush_bytes) == 0 else "MISSED"),
            ),
            ("push 512 MB blob, ocibake", f"{big_seconds:.1f} s", f"{BIG / big_seconds / 1e6:.0f} MB/s"),
            (
                "push 512 MB blob, skopeo copy",
                f"{big_skopeo:.1f} s",
                f"ocibake / skopeo {big_seconds / big_skopeo:.2f} (start-up no longer dominates)",
            ),
            (
                "peak memory, 512 MB blob",
                f"{big_stats['peak_rss_mb']:.0f} MB",
                "target <= 100 MB " + ("OK" if big_stats["peak_rss_mb"] <= 100 else "MISSED"),
            ),
        ]
        print("\nocibake push (loopback docker-registry, plain HTTP)")
        width = max(len(r[0]) for r in rows)
        for name, value, note in rows:
            print(f"  {name:<{width}}  {value:>12}  {note}")
        print("  (ocibake times include Python start-up; re-push time is the whole process)")
    finally:
        os.environ.clear()
        os.environ.update(env_keep)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
