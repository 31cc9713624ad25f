"""The rootless harness itself: the test account really is unprivileged inside its namespace, has no network with
-n, and the uid without a passwd entry has no HOME; ocibake starts in each."""

from __future__ import annotations

from rootless import NO_PASSWD_UID, ocibake_rootless, run_rootless


def test_the_account_is_root_only_inside_its_namespace_and_has_no_network_with_n(rootless_account):
    proc = run_rootless(
        ["sh", "-c", "id -u; cat /proc/self/uid_map; ip -o link show 2>/dev/null | wc -l; touch /etc/x 2>&1 || true"],
        account=rootless_account,
        network=False,
    )
    assert proc.returncode == 0, proc.stderr
    uid, mapping, links, *rest = proc.stdout.splitlines()
    assert uid == "0"
    assert mapping.split() == ["0", str(rootless_account.uid), "1"]
    assert int(links) <= 1  # loopback only
    assert "Permission denied" in "\n".join(rest)


def test_ocibake_starts_for_the_account_and_for_a_uid_without_passwd_entry(rootless_account):
    with_home = ocibake_rootless("--version", account=rootless_account, network=False)
    assert with_home.returncode == 0 and with_home.stdout.startswith("ocibake "), with_home.stderr
    nobody = run_rootless(["sh", "-c", 'id -u; echo "HOME=${HOME-unset}"'], account=None)
    assert nobody.stdout.split() == ["0", "HOME=unset"], nobody.stderr
    outside = run_rootless(["cat", "/proc/self/uid_map"], account=None)
    assert outside.stdout.split() == ["0", str(NO_PASSWD_UID), "1"]
    assert ocibake_rootless("--version", account=None, network=False).returncode == 0
