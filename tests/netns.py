"""Simulate several "hosts" on one Linux machine for multi-host cluster tests.

    with Hosts(3) as hosts:
        srv = hosts[0].popen([sys.executable, "-m", "mrengine.cli", ...])
        hosts[1].run([...], timeout=30)
        hosts[0].link_down()          # pull host 0's network cable
        ...

Topology in ``netns`` mode (needs root and iproute2's ``ip``)::

    [mre<pid>-<rand>-sw]  bridge "br0" -- veth "p0" ... "pN-1"
                                           |            |
    [mre<pid>-<rand>-h0]  eth0 10.213.0.1/24   [...-hN-1] eth0 10.213.0.N/24

The bridge lives in a dedicated "switch" namespace rather than in the root
namespace because:
  * nothing is ever created in the root namespace, so a crashed run cannot
    leave interfaces behind on the machine and names cannot collide there
    (every interface name is only unique within its own namespace);
  * the switch namespace holds only the bridge (no uplink, no addresses) and
    each host namespace only lo + its veth, so there is physically no path
    from the hosts to anywhere else: no default route, no NAT, no
    forwarding, whatever the machine's own config.  For the same reason the
    10.213.0.0/24 subnet cannot collide with the machine's own networks, and
    concurrent Hosts instances can all reuse it (each has its own switch);
  * the host's firewall does not apply: net.bridge.bridge-nf-call-iptables
    (=1 on this machine when br_netfilter is loaded) would send bridged
    frames through iptables FORWARD, where e.g. Docker's DROP policy kills
    them.  Netfilter state and these sysctls are per network namespace and a
    fresh namespace has no rules, so no sysctl needs changing.

Fallback ``loopback`` mode (not root, no ``ip``, or ``ip netns add`` fails):
hosts get 127.0.0.2, 127.0.0.3, ... (all routed to ``lo`` on Linux), commands
run directly, and ``link_down``/``link_up`` skip the calling test.  Set
``MRENGINE_REQUIRE_NETNS=1`` to turn the fallback into an error (CI as root).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

import pytest

IP = shutil.which("ip") or "/usr/sbin/ip"
SUBNET = "10.213.0"  # /24; host i gets .i+1
CMD_TIMEOUT = 10  # seconds, for every `ip ...` setup/teardown command
KILL_GRACE = 3  # seconds between SIGTERM and SIGKILL at teardown


def _ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, capture_output=True, text=True, timeout=CMD_TIMEOUT)


def _ip_quiet(*args: str) -> None:
    """Best-effort variant used during teardown: never raises."""
    try:
        subprocess.run([IP, *args], capture_output=True, timeout=CMD_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    # Processes are started with start_new_session=True, so pid == pgid and the
    # signal also reaches children they spawned (worker pools etc.).
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Host:
    """One simulated host.  ``netns`` is the namespace name, or None in loopback mode."""

    def __init__(self, hosts: "Hosts", index: int, ip: str, netns: str | None):
        self._hosts = hosts
        self.index = index
        self.ip = ip
        self.netns = netns
        self.name = netns or f"host{index}"
        self._local_moved = False  # whether `refuse` has put the "local" routing table after its rules

    def __repr__(self) -> str:
        return f"Host({self.name!r}, ip={self.ip!r})"

    def popen(self, argv, **kwargs) -> subprocess.Popen:
        """subprocess.Popen(argv) inside this host.  Tracked and killed at teardown."""
        argv = [str(a) for a in argv]
        if self.netns:
            # `ip netns exec` setns()es and then execs argv in place (no fork), so
            # the Popen pid is the command itself.
            argv = [IP, "netns", "exec", self.netns, *argv]
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(argv, **kwargs)
        self._hosts._procs.append(proc)
        return proc

    def python(self, code: str, *args, **kwargs) -> subprocess.Popen:
        """popen([sys.executable, "-c", code, *args])."""
        return self.popen([sys.executable, "-c", code, *args], **kwargs)

    def run(self, argv, *, timeout: float = 60, check: bool = False, input=None,
            capture_output: bool = False, **kwargs) -> subprocess.CompletedProcess:
        """subprocess.run equivalent inside this host; ``timeout`` is mandatory-ish
        (defaults to 60 s) and on expiry the whole process group is killed."""
        if capture_output:
            kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
        if input is not None:
            kwargs["stdin"] = subprocess.PIPE
        proc = self.popen(argv, **kwargs)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.communicate(timeout=CMD_TIMEOUT)
            raise
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check:
            result.check_returncode()
        return result

    def link_down(self) -> None:
        """Cut this host off the network, like pulling its cable.

        The switch-side port is downed (not eth0 inside the host): the host keeps
        its address and routes, sees NO-CARRIER, and packets are silently lost
        both ways, so peers time out instead of getting a clean error."""
        self._require_netns()
        _ip("-n", self._hosts.switch, "link", "set", f"p{self.index}", "down")

    def link_up(self, timeout: float = 10) -> None:
        """Restore the link and wait (bounded) until the host's eth0 is UP again."""
        self._require_netns()
        _ip("-n", self._hosts.switch, "link", "set", f"p{self.index}", "up")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run([IP, "-n", self.netns, "-br", "link", "show", "eth0"],
                                 capture_output=True, text=True, timeout=CMD_TIMEOUT).stdout
            if " UP " in out:
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name}: eth0 not UP {timeout}s after link_up: {out!r}")

    def refuse(self, ip: str, port: int) -> None:
        """Make this host's TCP connections to ip:port fail at once, as a firewall's REJECT would: a
        routing rule prohibits them (EACCES on connect), and only those it sends. The rule goes before the
        "local" table, so it holds for this host's own address too."""
        self._require_netns()
        if not self._local_moved:
            _ip("-n", self.netns, "rule", "add", "pref", "100", "lookup", "local")
            _ip("-n", self.netns, "rule", "del", "pref", "0")
            self._local_moved = True
        # `iif lo`: only what this host sends, not what it receives (the same rule would refuse those too).
        _ip("-n", self.netns, "rule", "add", "pref", "50", "iif", "lo", "to", f"{ip}/32", "ipproto", "tcp", "dport",
            str(port), "prohibit")

    def _require_netns(self) -> None:
        if not self.netns:
            pytest.skip("link failures need network namespaces (running in loopback fallback mode)")


class Hosts:
    """Context manager creating ``n`` simulated hosts; indexable and iterable.

    ``mode`` is "netns" or "loopback"; ``isolated`` is True in netns mode.
    ``fallback_reason`` says why netns mode was not used (None otherwise)."""

    def __init__(self, n: int, *, require_netns: bool | None = None):
        if not 1 <= n <= 200:
            raise ValueError("n must be between 1 and 200")
        if require_netns is None:
            require_netns = os.environ.get("MRENGINE_REQUIRE_NETNS") == "1"
        self.n = n
        self.require_netns = require_netns
        # pid makes stale namespaces from a killed run attributable; the random
        # part keeps concurrent runs (even across pid namespaces) apart.
        self.prefix = f"mre{os.getpid()}-{secrets.token_hex(3)}"
        self.switch = f"{self.prefix}-sw"
        self.mode: str | None = None
        self.fallback_reason: str | None = None
        self.hosts: list[Host] = []
        self._procs: list[subprocess.Popen] = []
        self._namespaces: list[str] = []  # created ones, for teardown

    @property
    def isolated(self) -> bool:
        return self.mode == "netns"

    def __enter__(self) -> "Hosts":
        try:
            self._setup_netns()
            self.mode = "netns"
        except BaseException as exc:
            if not isinstance(exc, Exception):  # e.g. KeyboardInterrupt: clean up, re-raise
                self._teardown()
                raise
            # Any other failure means "no netns here" (__exit__ won't run for us).
            self._teardown()
            reason = str(exc)
            if isinstance(exc, subprocess.CalledProcessError):
                reason = f"{' '.join(exc.cmd)}: {(exc.stderr or '').strip()}"
            if self.require_netns:
                raise RuntimeError(f"MRENGINE_REQUIRE_NETNS=1 but netns setup failed: {reason}") from exc
            self.fallback_reason = reason
            self.mode = "loopback"
            self.hosts = [Host(self, i, f"127.0.0.{i + 2}", None) for i in range(self.n)]
        return self

    def __exit__(self, *exc_info) -> None:
        self._teardown()

    def __getitem__(self, i: int) -> Host:
        return self.hosts[i]

    def __iter__(self):
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def _add_ns(self, name: str) -> None:
        _ip("netns", "add", name)  # fails with "File exists" rather than reusing
        self._namespaces.append(name)

    def _setup_netns(self) -> None:
        if os.geteuid() != 0:
            raise PermissionError("not root")
        if not os.path.exists(IP):
            raise FileNotFoundError(f"{IP} (iproute2) not found")
        self._add_ns(self.switch)
        # No STP (the default): ports forward immediately after coming up.
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i in range(self.n):
            ns = f"{self.prefix}-h{i}"
            self._add_ns(ns)
            # Both veth ends are created directly in their target namespaces.
            _ip("-n", self.switch, "link", "add", f"p{i}", "type", "veth",
                "peer", "name", "eth0", "netns", ns)
            _ip("-n", self.switch, "link", "set", f"p{i}", "master", "br0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            # Only a connected /24 route results: no default route, by design.
            _ip("-n", ns, "addr", "add", f"{SUBNET}.{i + 1}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            self.hosts.append(Host(self, i, f"{SUBNET}.{i + 1}", ns))

    def _teardown(self) -> None:
        """Kill every process we started (and, in netns mode, anything else still
        inside our namespaces), then delete the namespaces.  Never raises.
        Deleting a host namespace destroys its veth pair; deleting the switch
        namespace destroys the bridge."""
        live = [p for p in self._procs if p.poll() is None]
        for p in live:
            _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE
        for p in live:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self._procs:
            # Also covers exited leaders whose children still hold the group.
            _signal_group(p, signal.SIGKILL)
            try:
                p.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                pass
        for ns in self._namespaces:
            self._kill_ns_pids(ns)
        for ns in reversed(self._namespaces):
            _ip_quiet("netns", "delete", ns)
        self._namespaces.clear()
        self._procs.clear()

    @staticmethod
    def _kill_ns_pids(ns: str) -> None:
        # A namespace outlives `ip netns delete` while processes are in it, so
        # sweep stragglers (e.g. daemons that left our process group).
        for _ in range(5):
            try:
                out = subprocess.run([IP, "netns", "pids", ns], capture_output=True,
                                     text=True, timeout=CMD_TIMEOUT).stdout
            except (OSError, subprocess.SubprocessError):
                return
            pids = [int(p) for p in out.split() if p.isdigit()]
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
