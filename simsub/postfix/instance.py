"""A private Postfix instance on loopback, for ``simsub twin`` and the export tests.

Everything lives in one temporary folder (configuration, queue, data, log);
the instance listens on 127.0.0.1 only, lets loopback clients use XCLIENT, and
delivers every accepted message to the discard(8) agent: nothing leaves the
machine and the system's own Postfix, if any, is not touched.  It needs root
(Postfix's master starts as root and drops to the ``postfix`` user) and the
Debian packages ``postfix`` and ``postfix-pcre``.

Pitfalls this module handles (each costs an afternoon when missed): the data
directory must belong to ``postfix``; ``maillog_file`` must sit under a
``maillog_file_prefixes`` entry and needs the ``postlog`` service; Debian's
master.cf chroots services (the maps and the temporary folder would be out of
reach), so this master.cf is written from scratch with chroot off; smtpd reads
its maps once per process, so the instance is started after the files exist.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..scenario.types import Scenario
from .export import PostfixExport, export_policy, parameter_prefix

#: Services the instance needs besides the submission entry (master.cf lines, chroot off).
_BASE_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


_SHARED_CHECK_QUEUE: Path | None = None

#: Postfix's default_process_limit, kept in every instance; the submission service's
#: accept queue is max(its maxproc, this).
DEFAULT_PROCESS_LIMIT = 100


class PostfixError(RuntimeError):
    """The private instance could not be set up or started; the message says why."""


def unavailable_reason() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if shutil.which("postfix") is None or not Path("/usr/lib/postfix/sbin/smtpd").exists():
        return ("Postfix is not installed: as root, run "
                "`DEBIAN_FRONTEND=noninteractive apt-get install -y postfix postfix-pcre` "
                "(answer 'No configuration'; see README.md)")
    if not Path("/usr/lib/postfix/postfix-pcre.so").exists():
        return "the pcre map type is missing: apt-get install -y postfix-pcre"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (its master process starts as root)"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "there is no 'postfix' user (reinstall the postfix package)"
    return None


def free_port() -> int:
    """An unprivileged loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostfix:
    """``with PrivatePostfix(scenario, policy) as pf:`` — started on enter, stopped and removed on exit
    (``start=False``: only written and checked with ``postfix check``).

    The configuration is :func:`~simsub.postfix.export.export_policy` of the
    policy (maps in the instance's folder) plus the instance's own settings.

    ``process_limit``: maxproc of the submission entry; its accept queue is
    max(process_limit, default_process_limit), as in Postfix, with
    default_process_limit left at Postfix's 100 (it also caps every other
    service: a small value there slows the instance down).  ``keep``: leave the
    folder for inspection.  ``policy_endpoint``: where its check_policy_service
    lines point (``inet:127.0.0.1:PORT`` of a running ``simsub policyd``).
    ``main_cf_extra``, ``master_cf_extra``: text appended to main.cf and
    master.cf (probes: more listeners with other settings on one instance;
    ``{port}`` in master_cf_extra is replaced by further free ports, listed in
    ``extra_ports``).
    """

    def __init__(self, scenario: Scenario, policy: str, *, port: int | None = None, process_limit: int = 100,
                 keep: bool = False, start: bool = True, policy_endpoint: str | None = None,
                 main_cf_extra: str = "", master_cf_extra: str = ""):
        self.scenario = scenario
        self.policy_endpoint = policy_endpoint  # where `simsub policyd` answers (default: export's 10040)
        self.main_cf_extra = main_cf_extra
        self.extra_ports: list[int] = []
        self.master_cf_extra = _fill_ports(master_cf_extra, self.extra_ports)
        self.policy = policy
        self.export: PostfixExport | None = None
        self.port = port or free_port()
        self.process_limit = process_limit
        self.keep = keep
        self.start = start  # False: write and `postfix check` the configuration only
        self.root: Path | None = None
        self.started = False
        self._group: int | None = None  # the master's pid = its process group

    # ------------------------------------------------------------------ paths
    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def maillog(self) -> Path:
        return self.root / "log" / "maillog"

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> "PrivatePostfix":
        reason = unavailable_reason()
        if reason:
            raise PostfixError(reason)
        self.root = Path(tempfile.mkdtemp(prefix="simsub-postfix-"))
        try:
            self._write_configuration()
            self.check()
            if self.start:
                self._postfix("start")
                self.started = True
                self._group = self._master_pid()
                self._wait_listening()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc) -> None:
        try:
            # Also when `postfix start` was interrupted: the master may be up without
            # `started` having been set.
            if self.started or (self.root is not None and self._master_pid() is not None):
                self.stop()
        finally:
            if self.root is not None and not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)

    def stop(self) -> None:
        """Stop the master and wait until every process of the instance is gone.

        ``postfix stop`` alone leaves smtpd processes that are still sleeping to
        finish their sleep.  The master is a session leader, so every process it
        started — also one forked after a first look — is in its process group,
        which gets SIGKILL after a grace period."""
        group = self._master_pid() or self._group
        subprocess.run(["postfix", "-c", str(self.config_dir), "stop"], capture_output=True, text=True)
        deadline = time.monotonic() + 5
        while group and _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group and _group_alive(group):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while _group_alive(group) and time.monotonic() < deadline + 5:
                time.sleep(0.02)
        self.started = False

    def pids(self) -> list[int]:
        """Processes that belong to this instance: its master's process group."""
        group = self._master_pid() or self._group
        return _group_members(group) if group else []

    def check(self) -> str:
        """``postfix check`` on the instance; PostfixError with its output if it complains."""
        done = subprocess.run(["postfix", "-c", str(self.config_dir), "check"], capture_output=True, text=True)
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0 or "fatal" in output or "warning" in output:
            raise PostfixError(f"postfix check failed on the exported configuration:\n{output}")
        return output

    def log_text(self) -> str:
        try:
            return self.maillog.read_text(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------ internals
    def _write_configuration(self) -> None:
        root = self.root
        extra = {"policy_endpoint": self.policy_endpoint} if self.policy_endpoint else {}
        self.export = export_policy(self.scenario, self.policy, map_dir=str(root / "etc" / "maps"),
                                    process_limit=self.process_limit, **extra)
        for sub in ("etc", "etc/maps", "queue", "data", "log"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        postfix = pwd.getpwnam("postfix")
        os.chown(root / "data", postfix.pw_uid, postfix.pw_gid)
        os.chmod(root, 0o755)
        for name, text in self.export.maps.items():
            (root / "etc" / "maps" / name).write_text(text)
        instance = f"""\
# A private simsub instance: loopback only, everything delivered to discard(8).
compatibility_level = 3.6
queue_directory = {self._queue_directory()}
data_directory = {root}/data
mail_owner = postfix
myhostname = twin.simsub.invalid
mydomain = simsub.invalid
myorigin = $myhostname
mydestination =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
default_process_limit = {DEFAULT_PROCESS_LIMIT}
maillog_file = {root}/log/maillog
maillog_file_prefixes = {root}/log
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_peername_lookup = no
default_transport = discard
relay_transport = discard
local_transport = discard
virtual_transport = discard
biff = no
"""
        if "\nmynetworks =" not in "\n" + self.export.main_cf:
            instance += "mynetworks = 127.0.0.0/8\n"  # Postfix's default would take this host's networks
        entry = self.export.master_cf.replace("submission inet", f"127.0.0.1:{self.port} inet", 1)
        # The twin's clients connect from 127.0.0.1 and become themselves with XCLIENT,
        # which runs the pre-banner restrictions again for the client they play: let
        # 127.0.0.1 through the first run (it is the only one that sees 127.0.0.1).
        pre_banner = f"-o smtpd_client_restrictions=${parameter_prefix(self.policy)}_client_restrictions"
        if "smtpd_delay_reject=no" in entry and pre_banner in entry:
            instance += ("simsub_twin_client_restrictions = check_client_access inline:{ 127.0.0.1=OK }, "
                         f"${parameter_prefix(self.policy)}_client_restrictions\n")
            entry = entry.replace(pre_banner, "-o smtpd_client_restrictions=$simsub_twin_client_restrictions")
        (root / "etc" / "main.cf").write_text(instance + "\n" + self.export.main_cf + self.main_cf_extra)
        (root / "etc" / "master.cf").write_text(_set_maxproc(entry, self.process_limit) + _BASE_SERVICES
                                                + self.master_cf_extra)
        # Postfix waits (up to about 2 s, in 300 ms naps) until a configuration file is
        # older than its own start, lest it read a file being written: date them back.
        past = time.time() - 60
        for path in (root / "etc").rglob("*"):
            os.utime(path, (past, past))

    def _queue_directory(self) -> Path:
        """The instance's own queue, or for check-only instances one shared per process:
        the first `postfix check` on a new queue spends about 2 s creating its
        directories, later ones 0.3 s."""
        if self.start:
            return self.root / "queue"
        global _SHARED_CHECK_QUEUE
        if _SHARED_CHECK_QUEUE is None or not _SHARED_CHECK_QUEUE.is_dir():
            _SHARED_CHECK_QUEUE = Path(tempfile.mkdtemp(prefix="simsub-postfix-check-queue-"))
            os.chmod(_SHARED_CHECK_QUEUE, 0o755)
            atexit.register(shutil.rmtree, _SHARED_CHECK_QUEUE, True)
        return _SHARED_CHECK_QUEUE

    def _postfix(self, action: str) -> None:
        done = subprocess.run(["postfix", "-c", str(self.config_dir), action], capture_output=True, text=True)
        if done.returncode != 0:
            raise PostfixError(f"postfix {action} failed: {(done.stdout + done.stderr).strip()}\n{self.log_text()}")

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.recv(512)  # the banner; the smtpd it cost is reused
                    s.sendall(b"QUIT\r\n")
                return
            except OSError:
                time.sleep(0.05)
        raise PostfixError(f"the private Postfix did not answer on 127.0.0.1:{self.port} within {timeout:g} s:\n"
                           f"{self.log_text()}")

    def _master_pid(self) -> int | None:
        try:
            pid = int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError, TypeError):
            return None
        return pid if _alive(pid) else None


def _fill_ports(text: str, ports: list[int]) -> str:
    """``text`` with each ``{port}`` replaced by a new free loopback port (appended to ``ports``)."""
    parts = text.split("{port}")
    out = parts[0]
    for part in parts[1:]:
        port = free_port()
        while port in ports:  # the kernel may hand out a just-closed port again
            port = free_port()
        ports.append(port)
        out += f"{ports[-1]}{part}"
    return out


def _set_maxproc(entry: str, maxproc: int) -> str:
    """Set the maxproc column of the first (service) line of a master.cf entry."""
    lines = entry.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", " ", "\t")):
            fields = line.split()
            fields[6] = str(maxproc)
            lines[i] = " ".join(fields)
            break
    return "\n".join(lines) + "\n"


def _group_members(group: int) -> list[int]:
    """Live (non-zombie) processes of process group ``group``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _group_alive(group: int) -> bool:
    return bool(_group_members(group))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
