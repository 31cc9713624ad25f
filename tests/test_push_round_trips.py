"""Fewer registry round trips: a repeated push asks whether each tag already names the image and stops there (no
blob HEAD, no upload, no manifest PUT); a push where one tag moved still completes. Requests are counted by the
loopback fault proxy in front of a real registry."""

from __future__ import annotations

import json

from conftest import SAMPLE
from registry_servers import write_layout
from regtools import ocibake, reg_env, skopeo, skopeo_digest

# A repeated `build --push --sign-key` with nothing changed: GET /v2/ once for the whole run, a HEAD per tag (v1,
# latest), the fallback tag that lists the referrers (once for both: Debian's registry has no referrers API) and a
# HEAD of each referrer's manifest (SBOM, provenance), the signature tag, the attestation tag and its envelope.
MAX_REPEAT_REQUESTS = 9


def _requests(proxy, start: int) -> list[tuple[str, str]]:
    return [(s.method, s.path.split("?")[0]) for s in proxy.seen[start:]]


def test_repeated_push_stops_at_the_manifest(proxied_registry, tmp_path):
    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",), layer_sizes=(300_000, 1000))
    env = reg_env(reg, tmp_path / "home")
    first = ocibake("push", str(layout), f"{proxy.host}/rt/app", "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert skopeo_digest(reg, "rt/app:v1") == info["manifest"]

    start = len(proxy.seen)
    again = ocibake("push", str(layout), f"{proxy.host}/rt/app", "--json", env=env)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["bytes_uploaded"] == 0 and report["references"] == [f"{proxy.host}/rt/app:v1@{info['manifest']}"]
    sent = [r for r in _requests(proxy, start) if r != ("GET", "/v2/")]  # the version check (ping) aside
    assert sent == [("HEAD", "/v2/rt/app/manifests/v1")], sent


def test_a_moved_tag_is_pushed_again(proxied_registry, tmp_path):
    reg, proxy = proxied_registry
    env = reg_env(reg, tmp_path / "home")
    a = write_layout(tmp_path / "a", tags=("v1",), layer_sizes=(1000,))
    assert ocibake("push", str(tmp_path / "a"), f"{proxy.host}/rt/moved", env=env).returncode == 0
    b = write_layout(tmp_path / "b", tags=("v1",), layer_sizes=(2000,))
    assert a["manifest"] != b["manifest"]
    proc = ocibake("push", str(tmp_path / "b"), f"{proxy.host}/rt/moved", env=env)
    assert proc.returncode == 0, proc.stderr
    assert skopeo_digest(reg, "rt/moved:v1") == b["manifest"]
    assert any(m == "PUT" and "/manifests/v1" in p for m, p in _requests(proxy, 0))


def test_small_blobs_go_in_one_body_without_patch(proxied_registry, tmp_path):
    """Debian's distribution answers the monolithic POST ?digest= with 202: the blob then goes whole in the PUT."""
    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",), layer_sizes=(300_000, 1000))
    env = reg_env(reg, tmp_path / "home")
    proc = ocibake("push", str(layout), f"{proxy.host}/rt/small", env=env)
    assert proc.returncode == 0, proc.stderr
    assert skopeo_digest(reg, "rt/small:v1") == info["manifest"]
    seen = [(s.method, s.path) for s in proxy.seen]
    assert not [p for m, p in seen if m == "PATCH"], seen
    posts = [p for m, p in seen if m == "POST"]
    assert len(posts) == 3 and all("digest=sha256" in p for p in posts)  # two layers and the config
    blob_puts = [p for m, p in seen if m == "PUT" and "/blobs/uploads/" in p]
    assert len(blob_puts) == 3


def test_a_refused_monolithic_upload_falls_back(proxied_registry, tmp_path):
    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",), layer_sizes=(300_000, 1000))
    proxy.fault = lambda m, p: ("status", 405, {}) if m == "POST" and "digest=" in p else None
    env = reg_env(reg, tmp_path / "home")
    proc = ocibake("push", str(layout), f"{proxy.host}/rt/refused", env=env)
    assert proc.returncode == 0, proc.stderr
    assert skopeo_digest(reg, "rt/refused:v1") == info["manifest"]
    seen = [(s.method, s.path) for s in proxy.seen]
    assert len([p for m, p in seen if m == "PATCH"]) == 3, seen


def test_a_cut_monolithic_upload_is_retried_and_completes(proxied_registry, tmp_path):
    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",), layer_sizes=(300_000, 1000))
    cuts = []

    def fault(method, path):
        if method in ("POST", "PUT") and "digest=" in path and "/blobs/" in path and len(cuts) < 2:
            cuts.append((method, path))
            return ("cut", 100)
        return None

    proxy.fault = fault
    env = {**reg_env(reg, tmp_path / "home"), "OCIBAKE_REGISTRY_BACKOFF": "0.05"}
    proc = ocibake("push", str(layout), f"{proxy.host}/rt/cut", env=env)
    assert len(cuts) == 2, cuts
    assert proc.returncode == 0, proc.stderr
    assert skopeo_digest(reg, "rt/cut:v1") == info["manifest"]
    proxy.fault = lambda m, p: None
    again = ocibake("push", str(layout), f"{proxy.host}/rt/cut", "--json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["bytes_uploaded"] == 0


def test_a_partial_digest_in_the_completion_response_is_a_lost_response(proxied_registry, tmp_path):
    """The registry's answer to the upload's last request arrives with half a digest: ocibake asks whether the blob is
    there (it is not: the proxy answered in the registry's place) and uploads it again, on both upload paths."""
    reg, proxy = proxied_registry
    env = {**reg_env(reg, tmp_path / "home"), "OCIBAKE_REGISTRY_BACKOFF": "0.05"}
    for n, extra in enumerate(({}, {"OCIBAKE_REGISTRY_MONOLITHIC_MAX": "0"})):
        layout = tmp_path / f"layout{n}"
        info = write_layout(layout, tags=("v1",), layer_sizes=(300_000,))
        answered = []

        def fault(method, path, answered=answered):
            if method == "PUT" and "/blobs/uploads/" in path and not answered:
                answered.append(path)
                return ("status", 201, {"Docker-Content-Digest": "sha256:12ab"})
            return None

        proxy.fault = fault
        proc = ocibake("push", str(layout), f"{proxy.host}/rt/partial{n}", env={**env, **extra})
        assert answered and proc.returncode == 0, proc.stderr
        assert skopeo_digest(reg, f"rt/partial{n}:v1") == info["manifest"]


def test_repeated_push_of_two_tags_asks_two_heads(proxied_registry, tmp_path):
    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1", "latest"), layer_sizes=(1000,))
    env = reg_env(reg, tmp_path / "home")
    assert ocibake("push", str(layout), f"{proxy.host}/rt/two", env=env).returncode == 0
    start = len(proxy.seen)
    again = ocibake("push", str(layout), f"{proxy.host}/rt/two", env=env)
    assert again.returncode == 0, again.stderr
    assert len(again.stdout.splitlines()) == 2
    sent = sorted(r for r in _requests(proxy, start) if r != ("GET", "/v2/"))
    assert sent == [("HEAD", "/v2/rt/two/manifests/latest"), ("HEAD", "/v2/rt/two/manifests/v1")], sent


def test_a_repeated_build_push_with_sbom_and_signature_asks_little(proxied_registry, tmp_path):
    """build --push --sign-key twice with nothing changed: the second run finds the image, its SBOM referrer and its
    signature in place and sends nothing but questions, at most MAX_REPEAT_REQUESTS of them."""
    reg, proxy = proxied_registry
    env = {**reg_env(reg, tmp_path / "home"), "COSIGN_PASSWORD": "pw", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert ocibake("generate-key-pair", "--output-dir", str(tmp_path), env=env).returncode == 0
    args = ("build", str(SAMPLE), "--output", str(tmp_path / "L"), "--version", "v1", "--upx", "off")
    push = ("--push", f"{proxy.host}/rt/svc", "--sign-key", str(tmp_path / "cosign.key"))
    first = ocibake(*args, *push, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    signatures_before = _signature_layers(reg, first.stdout)
    start = len(proxy.seen)
    again = ocibake(*args, *push, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    sent = _requests(proxy, start)
    assert not [r for r in sent if r[0] in ("PUT", "POST", "PATCH")], sent
    assert len(sent) <= MAX_REPEAT_REQUESTS, sent
    assert _signature_layers(reg, again.stdout) == signatures_before  # no second signature of the same image
    verified = ocibake("verify", again.stdout.strip().splitlines()[-1], "--key", str(tmp_path / "cosign.pub"), env=env)
    assert verified.returncode == 0, verified.stderr


def _signature_layers(reg, stdout: str) -> list[dict]:
    digest = stdout.strip().splitlines()[-1].split("@", 1)[1]
    raw = skopeo("inspect", "--raw", *reg.skopeo_flags(), f"docker://{reg.host}/rt/svc:{digest.replace(':', '-')}.sig")
    assert raw.returncode == 0, raw.stderr
    layers: list[dict] = json.loads(raw.stdout)["layers"]
    return layers


def test_a_loopback_registry_is_asked_over_plain_http_first_and_each_blob_once(proxied_registry, tmp_path):
    """A plain-HTTP registry on 127.0.0.1 gets no TLS handshake attempt (as crane and docker treat loopback), and a
    first push without token auth asks about each blob once (no extra HEAD to prime a token)."""
    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",), layer_sizes=(300_000, 1000))
    start = len(proxy.seen)
    proc = ocibake("push", str(layout), f"{proxy.host}/rt/first", "-v", env=reg_env(reg, tmp_path / "home"))
    assert proc.returncode == 0, proc.stderr
    asked = [line.split()[3] for line in proc.stderr.splitlines() if line.startswith("ocibake: > ")]
    assert asked and asked[0] == f"http://{proxy.host}/v2/", proc.stderr
    assert not [url for url in asked if url.startswith("https:")], proc.stderr
    heads = [path for method, path in _requests(proxy, start) if method == "HEAD" and "/blobs/" in path]
    assert sorted(heads) == sorted(f"/v2/rt/first/blobs/{d}" for d in info["blobs"]), heads
