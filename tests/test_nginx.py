"""nginx in front of two ``fingerspell serve`` processes, with the shipped ``deploy/nginx.conf``.

The test runs Debian's nginx itself, on a loopback port, with the shipped configuration (its
ports changed to the test's) inside a main configuration written under the test's folder, and
stops it in ``finally``. A real Chromium opens the page through nginx; its stream lands on one
server; that server is killed mid-stream; the page reconnects through nginx to the other and
keeps its text, which the other server then edits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from _live import ROOT, ServerProcess, free_port
from test_e2e_browser import launch, open_page, playwright  # noqa: F401

pytestmark = pytest.mark.e2e

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SHIPPED = ROOT / "deploy" / "nginx.conf"
FAKE_CAMERA = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
SEED = ("if (!sessionStorage.getItem('seeded')) { sessionStorage.setItem('seeded', '1');"
        " localStorage.setItem('fingerspell.text', 'HELLO'); }")


def nginx_config(folder: Path, port: int, servers: list[int]) -> Path:
    """The shipped configuration on the test's ports, inside a main configuration of its own."""
    shipped = SHIPPED.read_text()
    listed = re.findall(r"server 127\.0\.0\.1:\d+", shipped)
    assert len(listed) == len(servers), "deploy/nginx.conf lists two servers"
    for old, new in zip(listed, servers):
        shipped = shipped.replace(old, f"server 127.0.0.1:{new}", 1)
    shipped = shipped.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    (folder / "fingerspell.conf").write_text(shipped)
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                               "uwsgi", "scgi"))
    main = folder / "nginx.conf"
    main.write_text(f"""{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {folder / "access.log"};
{temp}
    include {folder / "fingerspell.conf"};
}}
""")
    return main


def open_streams(server: ServerProcess) -> int:
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as resp:
        return json.load(resp)["open_streams"]


def test_behind_nginx_a_page_whose_server_is_killed_reconnects_to_the_other_and_keeps_its_text(
        playwright, tiny_bundle, tmp_path):  # noqa: F811
    if not Path(NGINX).exists():
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed: scripts/test.sh installs it")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    env = {"FINGERSPELL_LEXICON": "false", "FINGERSPELL_DATA_DIR": str(tmp_path / "data")}
    servers = [ServerProcess(tiny_bundle, log_dir=tmp_path, env=env) for _ in range(2)]
    port = free_port()
    config = nginx_config(tmp_path, port, [s.port for s in servers])
    nginx = browser = None
    try:
        for server in servers:
            server.start()
        nginx = subprocess.Popen([NGINX, "-c", str(config), "-p", str(tmp_path), "-g", "daemon off;"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or nginx.poll() is not None:
                    raise RuntimeError("nginx did not start:\n" + (tmp_path / "error.log").read_text())
                time.sleep(0.1)

        browser = launch(playwright, *FAKE_CAMERA)
        page, errors = open_page(browser, url + "/", SEED)
        outside = []
        page.on("request", lambda r: r.url.startswith(url + "/") or outside.append(r.url))
        page.wait_for_function("() => document.getElementById('status').textContent === 'Connected'", timeout=15_000)
        page.wait_for_function("() => document.getElementById('fps').textContent !== '–'", timeout=30_000)
        page.click("#delete")
        page.wait_for_function("() => document.getElementById('text').textContent === 'HELL'", timeout=5_000)
        [holder] = [s for s in servers if open_streams(s) == 1]
        [other] = [s for s in servers if s is not holder]
        assert open_streams(other) == 0

        holder.proc.kill()  # mid-stream, with no goodbye
        holder.proc.wait(timeout=10)
        page.wait_for_function("() => document.getElementById('status').textContent.includes('reconnecting')",
                               timeout=10_000)
        page.wait_for_function("() => document.getElementById('status').textContent === 'Connected'", timeout=30_000)
        page.wait_for_function("() => document.getElementById('fps').textContent !== '–'", timeout=30_000)
        assert open_streams(other) == 1
        assert page.inner_text("#text") == "HELL"
        page.locator("body").press("Backspace")  # answered by the other server, from the text it was given
        page.wait_for_function("() => document.getElementById('text').textContent === 'HEL'", timeout=5_000)
        assert errors == [] and outside == []
    except BaseException:
        for server in servers:
            print(f"---- server {server.port} ----\n{server.logs()}")
        if (tmp_path / "error.log").exists():
            print("---- nginx ----\n" + (tmp_path / "error.log").read_text()[-5000:])
        raise
    finally:
        if browser is not None:
            browser.close()
        if nginx is not None:
            nginx.terminate()
            try:
                nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()
        for server in servers:
            server.stop()
