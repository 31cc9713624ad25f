"""SBOMs that describe what is really in the image: the app binary's own modules (what `go version -m` prints for the
unpacked /app), the base image (name, digest, `pkg:oci` purl) and the packages of its apk or dpkg database, what was
not inventoried, and NOASSERTION where a vendored module's checksum is unknown."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from busybox_base import build_busybox_base
from conftest import FIXTURES, SAMPLE, build, layout_index, require, unpack
from ocibake.layers.tar import Entry
from test_sbom import SCHEMA, sbom_of

APK_DB = b"""C:Q1abc=
P:musl
V:1.2.5-r0
A:x86_64
L:MIT
o:musl

C:Q1def=
P:busybox
V:1.36.1-r29
A:x86_64
L:GPL-2.0-only
o:busybox

"""
DPKG_STATUS = b"""Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 continued description line

Package: removed-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

"""


def go_version_m(binary: Path) -> tuple[str, list[list[str]]]:
    """(the go release, [path, version] of every dep) as `go version -m` prints them."""
    out = subprocess.run(["go", "version", "-m", str(binary)], stdout=subprocess.PIPE, text=True, check=True).stdout
    lines = [line.strip().split("\t") for line in out.splitlines()[1:]]
    return out.split(": ", 1)[1].splitlines()[0], [f[1:3] for f in lines if f[0] == "dep"]


def app_packages(doc: dict, main_id_prefix: str = "SPDXRef-Module-") -> tuple[str, list[list[str]]]:
    """(main module, [name, version] of every module the main module DEPENDS_ON) from an SBOM."""
    by_id = {p["SPDXID"]: p for p in doc["packages"]}
    contained = [r["relatedSpdxElement"] for r in doc["relationships"] if r["relationshipType"] == "CONTAINS"]
    main = next(i for i in contained if i.startswith(main_id_prefix))
    deps = [
        by_id[r["relatedSpdxElement"]]
        for r in doc["relationships"]
        if r["spdxElementId"] == main and r["relationshipType"] == "DEPENDS_ON"
    ]
    return by_id[main]["name"], sorted([p["name"], p["versionInfo"]] for p in deps if p["name"] != "go")


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> Path:
    require("busybox")
    layout = tmp_path_factory.mktemp("bases") / "layout"
    build_busybox_base(layout, "apk", extra=(Entry.dir("/lib/apk/db"), Entry.file("/lib/apk/db/installed", APK_DB)))
    build_busybox_base(
        layout, "dpkg", extra=(Entry.dir("/var/lib/dpkg"), Entry.file("/var/lib/dpkg/status", DPKG_STATUS))
    )
    build_busybox_base(layout, "plain")
    return layout


def test_an_alpine_style_base_and_its_apk_packages_are_in_the_sbom(bases, tmp_path):
    out = tmp_path / "oci"
    digest, _ = build(SAMPLE, out, "--target", "production-alpine", "--base", f"oci:{bases}:apk", "--upx", "off")
    _, data, _ = sbom_of(out, digest)
    doc = json.loads(data)
    jsonschema.validate(doc, SCHEMA)
    by_id = {p["SPDXID"]: p for p in doc["packages"]}
    base = by_id["SPDXRef-Base-Image"]
    tags = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in layout_index(bases)["manifests"]
    }
    assert base["name"] == "oci:layout:apk" and base["versionInfo"] == tags["apk"]  # as the build record names it
    assert base["externalRefs"][0]["referenceLocator"] == f"pkg:oci/layout@{tags['apk'].replace(':', '%3A')}"
    assert {
        "spdxElementId": "SPDXRef-Image",
        "relationshipType": "DESCENDANT_OF",
        "relatedSpdxElement": "SPDXRef-Base-Image",
    } in doc["relationships"]
    apk = sorted(
        (p["name"], p["versionInfo"], p["externalRefs"][0]["referenceLocator"])
        for p in doc["packages"]
        if p["SPDXID"].startswith("SPDXRef-Base-apk-")
    )
    assert apk == [
        ("busybox", "1.36.1-r29", "pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64"),
        ("musl", "1.2.5-r0", "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64"),
    ]
    assert "2 packages from /lib/apk/db/installed" in base["comment"] and "not inventoried" in base["comment"]
    # the app is still described from its own binary, next to the base
    assert app_packages(doc)[0] == "example.com/sos-app/emergency-service"


def test_a_debian_base_yields_its_installed_dpkg_packages_and_a_bare_base_says_what_was_not_inventoried(
    bases, tmp_path
):
    out = tmp_path / "oci"
    digest, _ = build(
        SAMPLE, out, "--target", "production-alpine", "--base", f"oci:{bases}:dpkg", "--upx", "off", "--tag", "deb"
    )
    doc = json.loads(sbom_of(out, digest)[1])
    jsonschema.validate(doc, SCHEMA)
    debs = [p for p in doc["packages"] if p["SPDXID"].startswith("SPDXRef-Base-deb-")]
    assert [(p["name"], p["versionInfo"]) for p in debs] == [("base-files", "12.4+deb12u5")]
    assert debs[0]["externalRefs"][0]["referenceLocator"] == "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64"

    plain, _ = build(
        SAMPLE, out, "--target", "production-alpine", "--base", f"oci:{bases}:plain", "--upx", "off", "--tag", "plain"
    )
    bare = json.loads(sbom_of(out, plain)[1])
    base = next(p for p in bare["packages"] if p["SPDXID"] == "SPDXRef-Base-Image")
    assert "not inventoried: the base carries no package database" in base["comment"]


def test_every_target_describes_the_app_binary_as_go_version_m_does(tmp_path):
    """production (UPX-packed) and the vendored fixture: the modules the SBOM lists are those of /app."""
    for service, args in ((SAMPLE, ()), (FIXTURES / "vendored-service", ("--upx", "off"))):
        out = tmp_path / service.name
        digest, _ = build(service, out, "--version", "v1", *args)
        doc = json.loads(sbom_of(out, digest)[1])
        jsonschema.validate(doc, SCHEMA)
        rootfs = unpack(out, "v1", tmp_path / f"{service.name}-bundle")
        app = rootfs / "app"
        if b"UPX!" in app.read_bytes()[:4096]:
            app.chmod(0o755)
            subprocess.run(["upx", "-d", "-q", str(app)], check=True, capture_output=True)
        go, deps = go_version_m(app)
        main, listed = app_packages(doc)
        assert (
            main
            == subprocess.run(["go", "version", "-m", str(app)], stdout=subprocess.PIPE, text=True, check=True)
            .stdout.split("\tmod\t", 1)[1]
            .split("\t", 1)[0]
        )
        assert listed == sorted(deps)
        assert next(p for p in doc["packages"] if p["SPDXID"] == "SPDXRef-Go")["versionInfo"] == go


def test_a_vendored_module_without_a_known_checksum_says_noassertion(tmp_path):
    digest, _ = build(FIXTURES / "vendored-service", tmp_path / "oci", "--version", "v1", "--upx", "off")
    doc = json.loads(sbom_of(tmp_path / "oci", digest)[1])
    greet = next(p for p in doc["packages"] if p["name"] == "example.com/vendored/greet")
    assert "checksums" not in greet and greet["comment"].startswith("go.sum NOASSERTION")


def test_vendored_checksums_come_from_modules_txt_and_go_sum(tmp_path):
    from ocibake.audit.goinfo import parse_modinfo
    from ocibake.audit.vendor_sums import with_vendored_sums

    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "modules.txt").write_text(
        "# golang.org/x/text v0.14.0\n## explicit\ngolang.org/x/text/language\n"
        "# example.com/old v1.0.0 => example.com/new v1.1.0\nexample.com/new\n"
    )
    (tmp_path / "go.sum").write_text(
        "golang.org/x/text v0.14.0 h1:ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ=\n"
        "golang.org/x/text v0.14.0/go.mod h1:AAAA\n"
        "example.com/new v1.1.0 h1:BBBB\n"
    )
    info = parse_modinfo(
        "go1.26.0",
        "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/text\tv0.14.0\t\n"
        "dep\texample.com/old\tv1.0.0\t\n=>\texample.com/new\tv1.1.0\t\ndep\texample.com/unlisted\tv0.1.0\t\n",
    )
    filled = {d.path: d for d in with_vendored_sums(info, tmp_path).deps}
    assert filled["golang.org/x/text"].sum == "h1:ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ="
    assert filled["example.com/old"].replace.sum == "h1:BBBB"
    assert filled["example.com/unlisted"].sum == ""
