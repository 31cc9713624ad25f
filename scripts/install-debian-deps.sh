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
packages=(docker-registry skopeo umoci bubblewrap apache2-utils busybox-static faketime openssl git ca-certificates util-linux
          podman)

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
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports upx-ucl
else
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" upx-ucl
fi
