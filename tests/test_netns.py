"""Tests of the tests/netns.py multi-host helper itself, with real TCP traffic."""

import os
import select
import subprocess
import sys
import time

import pytest

try:  # tests/ has no __init__.py: pytest puts tests/ itself on sys.path
    import netns
except ImportError:  # pragma: no cover - if tests/ ever becomes a package
    from tests import netns

Hosts = netns.Hosts

pytestmark = pytest.mark.slow

# Threaded echo server: binds to argv[1] on an ephemeral port, prints the port.
SERVER = r"""
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
def serve(c):
    with c:
        c.settimeout(10)
        while data := c.recv(4096):
            c.sendall(data)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# Client: argv = ip port timeout message; prints the echo, exits non-zero on error.
CLIENT = r"""
import socket, sys
ip, port, timeout, msg = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
with socket.create_connection((ip, port), timeout=timeout) as c:
    c.settimeout(timeout)
    c.sendall(msg.encode())
    c.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := c.recv(4096):
        data += chunk
print(data.decode(), end="")
"""

CLIENT_TIMEOUT = 2.0  # seconds per connect/recv


def start_server(host):
    proc = host.python(SERVER, host.ip, stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    assert ready, "echo server did not report its port within 15s"
    line = proc.stdout.readline().strip()
    assert line.isdigit(), f"bad server output {line!r} (rc={proc.poll()})"
    return proc, int(line)


def echo(client, server_ip, port, msg):
    return client.run([sys.executable, "-c", CLIENT, server_ip, port, CLIENT_TIMEOUT, msg],
                      capture_output=True, text=True, timeout=CLIENT_TIMEOUT + 15)


def assert_echo(client, server_ip, port, msg):
    r = echo(client, server_ip, port, msg)
    assert (r.returncode, r.stdout) == (0, msg), r.stderr


def netns_list():
    return subprocess.run([netns.IP, "netns", "list"], capture_output=True, text=True,
                          timeout=10).stdout


@pytest.fixture(params=["auto", "loopback"])
def hosts(request, monkeypatch):
    """Hosts(3) in whatever mode the machine supports, and forced loopback fallback."""
    if request.param == "loopback":
        monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)  # pretend not root
        monkeypatch.delenv("MRENGINE_REQUIRE_NETNS", raising=False)
    with Hosts(3) as h:
        if request.param == "loopback":
            assert h.mode == "loopback" and not h.isolated and h.fallback_reason
        yield h


def test_mode_reported(hosts):
    # Shows up with -rA / -v; the important bit is that it is one of the two.
    print(f"mode={hosts.mode} reason={hosts.fallback_reason}")
    assert hosts.mode in ("netns", "loopback")
    assert len({h.ip for h in hosts}) == len({h.name for h in hosts}) == 3


def test_echo_across_hosts(hosts):
    server, port = start_server(hosts[0])
    for client in (hosts[1], hosts[2], hosts[0]):
        assert_echo(client, hosts[0].ip, port, f"hello from {client.name}")
    assert server.poll() is None


def test_link_down_and_up(hosts):
    server, port = start_server(hosts[0])
    assert_echo(hosts[1], hosts[0].ip, port, "before")

    if not hosts.isolated:  # a loopback address cannot lose its link: the helper says so by skipping
        with pytest.raises(pytest.skip.Exception, match="need network namespaces"):
            hosts[0].link_down()
        return
    hosts[0].link_down()
    t0 = time.monotonic()
    r = echo(hosts[1], hosts[0].ip, port, "during")
    assert r.returncode != 0, r.stdout
    assert time.monotonic() - t0 < CLIENT_TIMEOUT + 10
    # The other hosts are unaffected.
    server2, port2 = start_server(hosts[2])
    assert_echo(hosts[1], hosts[2].ip, port2, "still fine")

    hosts[0].link_up()
    assert_echo(hosts[1], hosts[0].ip, port, "after")
    assert_echo(hosts[2], hosts[0].ip, port, "after")
    assert server.poll() is None and server2.poll() is None


def test_refuse_rejects_one_port_at_once_from_anywhere_it_is_set(hosts):
    server, port = start_server(hosts[0])
    other, other_port = start_server(hosts[0])
    if not hosts.isolated:
        with pytest.raises(pytest.skip.Exception, match="need network namespaces"):
            hosts[1].refuse(hosts[0].ip, port)
        return
    for client in (hosts[1], hosts[0]):  # another host, and the server's own host (its "local" table)
        client.refuse(hosts[0].ip, port)
        t0 = time.monotonic()
        r = echo(client, hosts[0].ip, port, "refused")
        assert r.returncode != 0 and time.monotonic() - t0 < 5, r.stdout
        assert_echo(client, hosts[0].ip, other_port, "another port still answers")
    assert_echo(hosts[2], hosts[0].ip, port, "a host without the rule still gets through")
    assert server.poll() is None and other.poll() is None


def test_no_route_outside():
    with Hosts(2) as hosts:
        if not hosts.isolated:
            pytest.skip("loopback fallback is not isolated")
        for h in hosts:
            routes = h.run([netns.IP, "route"], capture_output=True, text=True, timeout=10).stdout
            assert "default" not in routes and routes.count("\n") == 1, routes
            # An address outside the /24 is unreachable at once (no route), not timed out.
            r = h.run([sys.executable, "-c",
                       "import socket; socket.create_connection(('192.0.2.1', 80), timeout=5)"],
                      capture_output=True, text=True, timeout=20)
            assert r.returncode != 0 and "unreachable" in r.stderr.lower(), r.stderr


def root_links():
    out = subprocess.run([netns.IP, "-o", "link"], capture_output=True, text=True, timeout=10).stdout
    return {line.split(":")[1].strip() for line in out.splitlines()}


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # zombies count as dead
    except FileNotFoundError:
        return False


def _assert_gone(hosts, procs, links_before):
    assert all(p.poll() is not None for p in procs), "processes survived teardown"
    # Nothing was left (or ever created) in the root namespace.
    assert root_links() == links_before
    if hosts.isolated:
        listed = netns_list()
        assert hosts.prefix not in listed, listed
        # Switch namespace (with the bridge and the veth ports) no longer exists.
        r = subprocess.run([netns.IP, "-n", hosts.switch, "link"], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode != 0


def test_teardown_removes_everything():
    links_before = root_links()
    with Hosts(3) as hosts:
        procs = [start_server(h)[0] for h in hosts]
        # A grandchild in its own session, outside our process group: in netns
        # mode it is still killed by the `ip netns pids` sweep.
        out = hosts[1].run([sys.executable, "-c",
                            "import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', "
                            "'import time; time.sleep(600)'], start_new_session=True, "
                            "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)"],
                           capture_output=True, text=True, timeout=15, check=True).stdout
        orphan = int(out)
        assert alive(orphan)
        if hosts.isolated:
            assert hosts.prefix in netns_list()
            assert len(root_links()) == len(links_before)
    try:
        _assert_gone(hosts, procs, links_before)
        if hosts.isolated:
            deadline = time.monotonic() + 5
            while alive(orphan) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not alive(orphan), "process left inside the namespace survived teardown"
    finally:
        if alive(orphan):  # loopback mode cannot find it (documented limitation)
            os.kill(orphan, 9)


def test_teardown_on_exception():
    links_before = root_links()
    with pytest.raises(ZeroDivisionError):
        with Hosts(2) as hosts:
            procs = [start_server(hosts[0])[0], hosts[1].popen(["sleep", "600"])]
            1 / 0
    _assert_gone(hosts, procs, links_before)


def test_require_netns_makes_fallback_an_error(monkeypatch):
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("MRENGINE_REQUIRE_NETNS", "1")
    with pytest.raises(RuntimeError, match="MRENGINE_REQUIRE_NETNS"):
        with Hosts(2):
            pass
