"""`ocibake run SERVICE_DIR --watch`: a copy of the sample service built and run; an edit of a handler's response
is answering after one rebuild; a syntax error leaves the running version answering and prints go's error; Ctrl-C
stops the app gracefully (exit 0)."""

from __future__ import annotations

import shutil
import signal
import time

from conftest import FIXTURES, SAMPLE, free_port
from ocibake.run.watch import watched_files
from run_helpers import get_json, ocibake_run

MAIN = "cmd/emergency-service/main.go"


def test_watch_restarts_on_a_saved_change_and_keeps_running_through_a_failed_build(tmp_path):
    service = tmp_path / "svc"
    shutil.copytree(SAMPLE, service)
    port = free_port()
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = (str(service), "--watch", "--output", str(tmp_path / "layout"), "-e", f"PORT={port}")
    with ocibake_run(tmp_path, *args, env=env) as app:
        first = app.wait_for("first answer", lambda: get_json(port), timeout=300)
        assert isinstance(first, dict) and first["status"] == "ok"
        app.wait_for_line("watch     ", timeout=60)
        main = service / MAIN
        main.write_text(main.read_text().replace('Status: "ok"', 'Status: "edited"'))
        saved = time.monotonic()
        app.wait_for("the edited answer", lambda: get_json(port)["status"] == "edited", timeout=300)
        print(f"edit to new answer: {time.monotonic() - saved:.1f}s")
        assert app.stderr().count("run       ") == 2  # started twice: the first build and the edit

        main.write_text(main.read_text() + "\nfunc broken( {\n")
        app.wait_for_line("the build failed (exit 3); the running version stays", timeout=300)
        err = app.stderr()
        assert "syntax error" in err and f"{MAIN}:" in err
        assert get_json(port)["status"] == "edited" and err.count("run       ") == 2

        code, _ = app.stop(signal.SIGINT, timeout=15)
        assert code == 0, app.stderr()


def test_what_is_watched_is_what_go_list_says_the_build_reads():
    """A `replace`d sibling module and vendored packages are watched with the service's own; GOROOT is not."""
    sibling = watched_files((FIXTURES / "replace-sibling" / "service").resolve())
    root = str((FIXTURES / "replace-sibling").resolve())
    assert {d[len(root) + 1 :] for d in sibling.dirs} == {"service", "service/cmd/service", "greetlib"}
    assert sibling.matters(f"{root}/greetlib/greet.go") and sibling.matters(f"{root}/service/go.mod")
    assert sibling.matters(f"{root}/greetlib/new_file.go")  # a new file of a watched package
    assert not sibling.matters(f"{root}/greetlib/greet_test.go") and not sibling.matters(f"{root}/greetlib/README")
    vendored = watched_files((FIXTURES / "vendored-service").resolve())
    assert any(d.endswith("vendor/example.com/vendored/greet") for d in vendored.dirs)
    assert not any("/go/src/" in d or d.startswith("/usr/local/go") for d in vendored.dirs)
