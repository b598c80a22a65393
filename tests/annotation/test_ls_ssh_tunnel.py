"""The SSH-tunnel recipe of docs/admin/servers.md for annotators on other machines, run for real on loopback: an OpenSSH
server (Debian's `openssh-server`, on a free port with its own host key and one authorised key) and the OpenSSH client's
`ssh -N -L` forwarding a local port to the managed server, which stays bound to 127.0.0.1. A person logs in through the
tunnel and a script calls the API through it."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from annotation.labelstudio.process import free_port
from annotation.labelstudio.procfs import listening as _listening
from tests.annotation.test_workflow_ls import _login

pytestmark = pytest.mark.server  # an sshd of its own

SSHD = "/usr/sbin/sshd"


@pytest.fixture()
def ssh_server(tmp_path):
    """(port, client key) of an sshd on 127.0.0.1 that accepts the key for the current user."""
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True, timeout=60)
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege-separation folder (made by its init script)
    port = free_port()
    options = {"Port": port, "ListenAddress": "127.0.0.1", "HostKey": keys / "host", "PidFile": "none",
               "AuthorizedKeysFile": keys / "authorized_keys", "PasswordAuthentication": "no", "UsePAM": "no",
               "KbdInteractiveAuthentication": "no", "AllowTcpForwarding": "local",
               "StrictModes": "no"}  # the keys live under /tmp, which is world-writable  # fmt: skip
    argv = [SSHD, "-D", "-e", "-f", "/dev/null"] + [a for k, v in options.items() for a in ("-o", f"{k}={v}")]
    sshd = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not _listening(sshd.pid):
            assert sshd.poll() is None and time.monotonic() < deadline, sshd.stderr.read()
            time.sleep(0.05)
        yield port, keys / "client"
    finally:
        sshd.terminate()
        sshd.wait(timeout=30)


def test_an_annotator_reaches_the_loopback_server_through_an_ssh_tunnel(ls_server, ssh_server):
    ssh_port, key = ssh_server
    local = free_port()
    tunnel = subprocess.Popen(
        ["ssh", "-N", "-L", f"{local}:127.0.0.1:{ls_server.config.port}", "-p", str(ssh_port), "-i", str(key),
         "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{getpass.getuser()}@127.0.0.1"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not any(port == local for _, port in _listening(tunnel.pid)):
            assert tunnel.poll() is None and time.monotonic() < deadline, tunnel.stderr.read()
            time.sleep(0.05)
        url = f"http://127.0.0.1:{local}"
        assert _login(url, ls_server.config.username, ls_server.config.password)["email"] == ls_server.config.username
        request = urllib.request.Request(
            f"{url}/api/projects", headers={"Authorization": f"Token {ls_server.config.token}"}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        assert "results" in json.loads(opener.open(request, timeout=30).read())
        assert _listening(ls_server.pid) == {("127.0.0.1", ls_server.config.port)}, (
            "the server itself stays on loopback"
        )
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=30)
