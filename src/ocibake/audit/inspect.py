"""`ocibake inspect`: what an image is. Manifest and config summary, layers with sizes and their files (path, size,
mode, owner), the build record, and the referrers (SBOM, signatures) in the layout or the registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from ocibake.audit.image_source import BUILD_RECORD_LABEL, OpenedImage
from ocibake.audit.layer_files import layer_files
from ocibake.audit.referrers import layout_referrers
from ocibake.audit.sbom import SPDX_TYPE
from ocibake.errors import InputError
from ocibake.oci.limits import ARTIFACT_BLOB_MAX_BYTES
from ocibake.units import human_size

if TYPE_CHECKING:
    from ocibake.registry.artifacts import Remote
    from ocibake.registry.options import RegistryOptions

OptionsFactory = Callable[[], "RegistryOptions"]  # made only when a registry is asked (it may read a password)


def config_summary(config: dict[str, Any]) -> dict[str, Any]:
    runtime = config.get("config") or {}
    labels = {k: v for k, v in (runtime.get("Labels") or {}).items() if k != BUILD_RECORD_LABEL}
    return {
        "created": config.get("created"),
        "os": config.get("os"),
        "architecture": config.get("architecture"),
        "variant": config.get("variant"),
        "user": runtime.get("User"),
        "entrypoint": runtime.get("Entrypoint"),
        "cmd": runtime.get("Cmd"),
        "env": runtime.get("Env"),
        "working_dir": runtime.get("WorkingDir"),
        "exposed_ports": sorted(runtime.get("ExposedPorts") or {}),
        "labels": labels,
    }


def _options(registry_options: OptionsFactory | None) -> RegistryOptions | None:
    return registry_options() if registry_options else None


def remote_referrers(
    remote_name: str, digest: str, registry_options: OptionsFactory | None
) -> tuple[list[dict[str, Any]], str]:
    """The referrers the registry lists for ``digest`` (and how it found them), with cosign's signature tag as one
    more."""
    from ocibake.registry.artifacts import Remote, fallback_tag

    with Remote(remote_name, _options(registry_options)) as remote:
        found, how = remote.referrers(digest)
        sig = remote.manifest(fallback_tag(digest) + ".sig")
        if sig is not None:
            from ocibake.oci.image import sha256_digest

            found = [
                *found,
                {
                    "mediaType": sig[1],
                    "digest": sha256_digest(sig[0]),
                    "size": len(sig[0]),
                    "artifactType": "cosign signature (tag " + fallback_tag(digest) + ".sig)",
                },
            ]
    return found, how


def _remote_reader(remote: Remote, manifest_digest: str) -> Callable[[str], bytes]:
    def read(digest: str) -> bytes:
        if digest != manifest_digest:
            return remote.blob(digest)
        got = remote.manifest(digest)
        if got is None:
            raise InputError(f"the registry lists referrer {digest[:19]} but has no such manifest")
        return got[0]

    return read


def sbom_summary(read_blob: Callable[[str], bytes], manifest_digest: str, image_digest: str) -> dict[str, Any]:
    """What an SBOM referrer says; its manifest and blob are checked against their digests (InputError if not)."""
    import json

    from ocibake.audit.sbom_attach import check_sbom

    try:
        manifest = json.loads(read_blob(manifest_digest))
        layer = (manifest.get("layers") or [{}])[0]
        doc = check_sbom(read_blob(str(layer.get("digest"))), image_digest)
    except InputError as exc:
        raise InputError(
            f"the SBOM referrer {manifest_digest[:19]} is damaged: {exc.message}",
            hint="build the image again (or push it again) to write a fresh SBOM",
        ) from None
    packages = doc.get("packages") or []
    go = next((p.get("versionInfo") for p in packages if p.get("SPDXID") == "SPDXRef-Go"), None)
    return {
        "spdx": doc.get("spdxVersion"),
        "packages": len(packages),
        "go": go,
        "namespace": doc.get("documentNamespace"),
    }


def _layer_entries(image: OpenedImage, with_files: bool) -> list[dict[str, Any]]:
    history = [h for h in image.config.get("history") or [] if not h.get("empty_layer")]
    diff_ids = image.diff_ids()
    layers = []
    for i, desc in enumerate(image.layers()):
        entry: dict[str, Any] = {
            "digest": desc.digest,
            "size": desc.size,
            "media_type": desc.media_type,
            "diff_id": diff_ids[i] if i < len(diff_ids) else None,
            "created_by": history[i].get("created_by") if i < len(history) else None,
        }
        if with_files:
            entry["files"] = [f.as_json() for f in layer_files(image.blob_path(desc.digest), desc.media_type)]
        layers.append(entry)
    return layers


def _referrers(image: OpenedImage, registry_options: OptionsFactory | None) -> tuple[list[dict[str, Any]], str]:
    """The image's referrers, each SBOM among them summarised, and where they were found ("layout", or how the
    registry listed them)."""
    if not image.remote:
        referrers = layout_referrers(image.layout, image.digest)
        for r in referrers:
            if r.get("artifactType") == SPDX_TYPE:
                r["sbom"] = sbom_summary(
                    lambda d: image.layout.read_blob(d, ARTIFACT_BLOB_MAX_BYTES), r["digest"], image.digest
                )
        return referrers, "layout"
    referrers, how = remote_referrers(image.remote, image.digest, registry_options)
    if any(r.get("artifactType") == SPDX_TYPE for r in referrers):
        from ocibake.registry.artifacts import Remote

        with Remote(image.remote, _options(registry_options)) as remote:
            for r in referrers:
                if r.get("artifactType") == SPDX_TYPE:
                    r["sbom"] = sbom_summary(_remote_reader(remote, r["digest"]), r["digest"], image.digest)
    return referrers, how


def inspect_image(
    image: OpenedImage, with_files: bool = True, registry_options: OptionsFactory | None = None
) -> dict[str, Any]:
    layers = _layer_entries(image, with_files)
    referrers, how = _referrers(image, registry_options)
    return {
        "reference": image.reference,
        "digest": image.digest,
        "media_type": image.descriptor.media_type,
        "size": image.descriptor.size
        + sum(layer["size"] for layer in layers)
        + int((image.manifest.get("config") or {}).get("size", 0)),
        "annotations": image.manifest.get("annotations") or {},
        "config": {"digest": (image.manifest.get("config") or {}).get("digest"), **config_summary(image.config)},
        "layers": layers,
        "build_record": image.build_record,
        "referrers": referrers,
        "referrers_from": how,
    }


def record_value(value: object) -> str:
    """A build-record value for people: users as `name uid:gid`, lists comma-joined, no Python reprs."""
    if isinstance(value, dict):
        if {"name", "uid", "gid"} <= set(value):
            return f"{value['name']} {value['uid']}:{value['gid']}"
        return ", ".join(f"{k} {record_value(v)}" for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return ", ".join(record_value(v) for v in value) or "-"
    return str(value)


def _owner(f: dict[str, Any]) -> str:
    return f"{f['uid']}:{f['gid']}"


def print_inspect(doc: dict[str, Any], out: TextIO) -> None:
    w = out.write
    cfg = doc["config"]
    plat = "/".join(p for p in (cfg["os"], cfg["architecture"], cfg.get("variant")) if p)
    w(f"image       {doc['reference']}\n")
    w(f"digest      {doc['digest']}\n")
    w(f"platform    {plat}\n")
    w(f"created     {cfg['created']}\n")
    w(f"user        {cfg['user']}   entrypoint {cfg['entrypoint']}   ports {', '.join(cfg['exposed_ports']) or '-'}\n")
    w(f"size        {human_size(doc['size'])} compressed, {len(doc['layers'])} layers\n")
    for key, value in sorted(cfg["labels"].items()):
        w(f"label       {key}={value}\n")
    w("\nlayers\n")
    for i, layer in enumerate(doc["layers"]):
        w(f"  [{i}] {layer['digest']}  {human_size(layer['size'])}  {layer.get('created_by') or ''}\n")
        w(f"      diff_id {layer.get('diff_id') or '-'}\n")
        for f in layer.get("files", []):
            link = f" -> {f['link']}" if f["link"] else ""
            size = human_size(f["size"]) if f["type"] == "file" else f["type"]
            w(f"      {f['mode']} {_owner(f):>9} {size:>10}  {f['path']}{link}\n")
    w("\nbuild record\n")
    record = doc["build_record"]
    if record is None:
        w("  none (not built by ocibake, or the label was removed)\n")
    else:
        go = record.get("go") or {}
        w(f"  ocibake {record.get('ocibake')}, target {record.get('target')}, {record.get('platform')}\n")
        w(
            f"  module {record.get('module')} ({record.get('package')}), commit {record.get('commit')}"
            f"{' (dirty)' if record.get('dirty') else ''}\n"
        )
        w(
            f"  go {go.get('version')}, SOURCE_DATE_EPOCH {record.get('source_date_epoch')}, "
            f"upx {(record.get('upx') or {}).get('mode')}, "
            f"toolchain {(record.get('toolchain') or {}).get('kind', '?')}\n"
        )
        for kind, layer in sorted((record.get("layers") or {}).items()):
            if layer:
                w(f"  {kind}: {', '.join(f'{k} {record_value(v)}' for k, v in sorted(layer.items()))}\n")
    w(f"\nreferrers ({doc['referrers_from']})\n")
    if not doc["referrers"]:
        w("  none\n")
    for r in doc["referrers"]:
        w(f"  {r.get('artifactType') or r.get('mediaType')}  {r['digest']}  {human_size(r.get('size', 0))}\n")
        if r.get("sbom"):
            w(f"    {r['sbom']['spdx']}, {r['sbom']['packages']} packages, {r['sbom']['go']}\n")
