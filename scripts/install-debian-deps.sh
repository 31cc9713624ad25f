#!/usr/bin/env bash
# Installs the Debian packages ocibake's tests and benchmarks use: a real registry, independent OCI readers,
# sandboxing tools, podman (loads the archives ocibake writes) and upx. On Debian 12 upx-ucl comes from
# bookworm-backports, added with the same URIs and Signed-By as the machine's own Debian source (no mirror is
# hard-coded).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

. /etc/os-release
codename="${VERSION_CODENAME:-}"
packages=(docker-registry skopeo umoci bubblewrap apache2-utils busybox-static faketime openssl git ca-certificates util-linux acl
          podman qemu-user-static)
# pipx: tests/test_dist.py installs the release's wheel with it, as users may
packages+=(pipx)

if [ "$codename" = "bookworm" ]; then
  backports=/etc/apt/sources.list.d/ocibake-bookworm-backports.sources
  # An entry that already enables bookworm-backports (ours from an earlier run, or the machine's own) is reused.
  enabled=$(grep -lsE '^(Suites:.*\bbookworm-backports\b|deb .*\bbookworm-backports\b)' /etc/apt/sources.list \
            /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources || true)
  if [ -z "$enabled" ]; then
    src=""
    for f in /etc/apt/sources.list.d/*.sources; do
      if grep -qE '^Suites:.*\bbookworm\b' "$f" && grep -qE '^URIs:.*debian/?$' "$f"; then src="$f"; break; fi
    done
    if [ -n "$src" ]; then
      uris=$(awk '/^URIs:/{print; exit}' "$src")
      signed=$(awk '/^Signed-By:/{print; exit}' "$src")
      printf 'Types: deb\n%s\nSuites: bookworm-backports\nComponents: main\n%s\n' "$uris" "$signed" | $SUDO tee "$backports" >/dev/null
    else
      uri=$(grep -hE '^deb .*bookworm main' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1)
      [ -n "$uri" ] || { echo "install-debian-deps: cannot find the Debian apt source to derive bookworm-backports from" >&2; exit 1; }
      echo "deb $uri bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/ocibake-bookworm-backports.list >/dev/null
    fi
  fi
  $SUDO apt-get update -qq
  # golang-1.19-go: a second, real Go release for the audit tests (a rebuild with another Go release must be named)
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" golang-1.19-go
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports upx-ucl
else
  $SUDO apt-get update -qq
  # Debian's own Go release, as its versioned package (golang-1.N-go: no /usr/bin/go that could shadow the Go in use):
  # the audit tests' second, real Go release
  other_go=$(apt-cache depends golang-go 2>/dev/null | awk '/Depends: golang-1\.[0-9]+-go/ {print $2; exit}')
  [ -n "$other_go" ] || { echo "install-debian-deps: cannot find Debian's golang-1.N-go package" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" upx-ucl "$other_go"
fi

# cosign and oras (tests read ocibake's signatures and SBOM referrers with them) are Debian 13 packages whose binaries
# also run on Debian 12. They are downloaded from a trixie entry derived from the machine's own Debian source, kept in
# a private apt state under .tools/ (the system's sources stay as they are), and unpacked there with dpkg-deb -x:
# tests find them at .tools/trixie/usr/bin.
repo_root=$(cd "$(dirname "$0")/.." && pwd)
tools="$repo_root/.tools"
if [ ! -x "$tools/trixie/usr/bin/cosign" ] || [ ! -x "$tools/trixie/usr/bin/oras" ]; then
  apt_state="$tools/apt"
  mkdir -p "$apt_state/lists/partial" "$apt_state/archives/partial" "$tools/debs" "$tools/trixie"
  uri=""; signed=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    if grep -qE '^URIs:.*debian/?$' "$f" && ! grep -qE '^URIs:.*debian-security' "$f"; then
      uri=$(awk '/^URIs:/{print $2; exit}' "$f"); signed=$(awk '/^Signed-By:/{print $2; exit}' "$f"); break
    fi
  done
  if [ -z "$uri" ]; then
    uri=$(grep -hE '^deb .*debian/? [a-z]+ main' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1)
  fi
  [ -n "$uri" ] || { echo "install-debian-deps: cannot find the Debian apt source to derive trixie from" >&2; exit 1; }
  printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: %s\n' "$uri" \
    "${signed:-/usr/share/keyrings/debian-archive-keyring.gpg}" > "$tools/trixie.sources"
  apt_opts=(-o "Dir::Etc::sourcelist=$tools/trixie.sources" -o "Dir::Etc::sourceparts=-"
            -o "Dir::State::lists=$apt_state/lists" -o "Dir::Cache=$apt_state" -o "Dir::Cache::archives=$apt_state/archives"
            -o "APT::Get::List-Cleanup=0")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$tools/debs" && apt-get "${apt_opts[@]}" download cosign oras)
  for deb in "$tools"/debs/cosign_*.deb "$tools"/debs/oras_*.deb; do dpkg-deb -x "$deb" "$tools/trixie"; done
fi
"$tools/trixie/usr/bin/cosign" version >/dev/null 2>&1 || { echo "install-debian-deps: cosign from trixie does not run" >&2; exit 1; }
"$tools/trixie/usr/bin/oras" version >/dev/null 2>&1 || { echo "install-debian-deps: oras from trixie does not run" >&2; exit 1; }
