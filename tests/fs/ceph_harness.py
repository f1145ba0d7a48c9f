"""ceph_harness - a one-host Ceph cluster for the tests (issue 14).

A Python face on tools/ceph-cluster.sh, in the manner of vm_harness's
SystemLibvirtd over tools/system-libvirtd.sh: the script does the work (and
serves benchmarks and users alike), this module starts and stops it and
makes sure nothing is left running.

    c = CephCluster(dir)                  # or CephCluster.temporary()
    c.start()                             # ~10 s: mon, mgr, one OSD, the pool
    c.rados('put', 'obj', '/etc/hostname')
    c.objects()                           # ['obj']
    c.ceph('osd', 'pool', 'set-quota', c.pool, 'max_bytes', '1048576')
    c.stop()                              # always safe, any number of times

- Everything of a cluster lives in its DIR (tools/ceph-cluster.sh says
  what); c.conf is DIR/ceph.conf, what a client (librados, `rados -c`,
  snapfs's -o ceph_conf=) is given.
- The monitor listens on ADDR:3300.  Two clusters on one host need two
  addresses; free_loopback_addr() picks an unused 127.x.y.z (every one of
  them is the loopback device), so that a test never collides with another
  run's cluster on 127.0.0.1.
- Cleanup: every cluster this process started is stopped at exit (atexit)
  and on SIGTERM/SIGHUP (turned into KeyboardInterrupt, so that pytest's
  teardown runs first, as vm_harness does); conftest.py's
  pytest_sessionfinish stops the session's shared cluster (ceph_cluster()).
  DIR/owner holds the pid of the process that started it: a later process
  stops and removes the clusters of one that was killed outright
  (reap_stale_clusters(), run by CephCluster.temporary()).

Only the Python 3.11 standard library is used here.
"""

import atexit
import contextlib
import glob
import os
import random
import shutil
import socket
import tempfile
import threading

from snapfs_harness import (SessionDaemon, interrupt_on_termination, pid_alive,
                            read_pid, run)

CEPH_CLUSTER_SH = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tools', 'ceph-cluster.sh'))
CEPH_PREFIX = 'snapfs-ceph-'
MON_PORT = 3300
DAEMONS = ('mon.a', 'mgr.x', 'osd.0')
START_TIMEOUT = 240     # the script waits up to 60 s per step


def missing_prerequisites():
    """Reasons a cluster cannot start here (empty list: it can)."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append('not root')
    for prog in ('ceph-mon', 'ceph-mgr', 'ceph-osd', 'ceph', 'rados', 'monmaptool'):
        if shutil.which(prog, path=os.environ.get('PATH', '') + ':/usr/sbin:/sbin') is None:
            reasons.append(prog + ' missing (tools/install-deps.sh)')
    if not os.path.isfile(CEPH_CLUSTER_SH):
        reasons.append(CEPH_CLUSTER_SH + ' missing')
    return reasons


def free_loopback_addr():
    """An address 127.x.y.z on which nothing listens on MON_PORT."""
    rng = random.SystemRandom()
    for _ in range(50):
        addr = '127.%d.%d.%d' % (rng.randrange(1, 255), rng.randrange(0, 256),
                                 rng.randrange(1, 255))
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex((addr, MON_PORT)) != 0:
                return addr
    raise AssertionError('no free 127.x.y.z address for a Ceph monitor')


# every cluster this process started and has not stopped: stopped at exit
_started = set()
_started_lock = threading.Lock()


class CephCluster:
    """One ceph-mon, one ceph-mgr and one ceph-osd in @dir, serving @pool
    (pg_num 8, application rados) with the monitor on @addr:3300."""

    def __init__(self, dir, addr='127.0.0.1', pool='snapfs'):
        self.dir = os.path.abspath(dir)
        self.addr = addr
        self.pool = pool
        self.conf = os.path.join(self.dir, 'ceph.conf')

    @classmethod
    def temporary(cls, pool='snapfs', addr=None):
        """A cluster in a new directory /var/tmp/snapfs-ceph-*, on a free
        loopback address unless @addr is given; the directory goes with
        close().  Reaps the clusters of dead processes first."""
        reap_stale_clusters()
        base = '/var/tmp' if os.path.isdir('/var/tmp') else None
        return cls(tempfile.mkdtemp(prefix=CEPH_PREFIX, dir=base),
                   addr=addr or free_loopback_addr(), pool=pool)

    # -- the daemons -------------------------------------------------------------

    def start(self):
        """Start the cluster (a new one, or the stopped one in DIR with its
        data).  Raises AssertionError with the script's output (the tail of
        the failing daemon's log) when it does not come up; whatever it had
        started is stopped again by then."""
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, 'owner'), 'w') as f:
            f.write('%d\n' % os.getpid())
        _arm_cleanup()
        with _started_lock:
            _started.add(self)
        out = run(['bash', CEPH_CLUSTER_SH, 'start', self.dir, '--addr', self.addr,
                   '--pool', self.pool], timeout=START_TIMEOUT, check=False)
        if out.returncode != 0:
            raise AssertionError('tools/ceph-cluster.sh start %s exited %d:\n%s%s' % (
                self.dir, out.returncode, out.stdout, out.stderr))
        lines = out.stdout.strip().splitlines()
        assert lines and lines[-1] == self.conf, \
            'ceph-cluster.sh printed %r, expected %r last' % (out.stdout, self.conf)

    def stop(self, remove=False):
        """Stop the daemons (TERM, then KILL after 10 s); with @remove also
        delete DIR.  Safe to call at any time, any number of times; raises
        AssertionError only when the script fails."""
        with _started_lock:
            _started.discard(self)
        if not os.path.isdir(self.dir):
            return
        if remove and not os.path.exists(self.conf):
            # a start that failed before writing ceph.conf started nothing
            # and left the owner file alone; the script removes only
            # directories with its ceph.conf in them
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.dir, 'owner'))
            with contextlib.suppress(OSError):
                os.rmdir(self.dir)
            return
        argv = ['bash', CEPH_CLUSTER_SH, 'stop', self.dir] + (['--remove'] if remove else [])
        out = run(argv, timeout=120, check=False)
        if out.returncode != 0:
            raise AssertionError('tools/ceph-cluster.sh stop %s exited %d: %s%s' % (
                self.dir, out.returncode, out.stdout, out.stderr))

    def close(self):
        """stop(remove=True), never raising (cleanup paths)."""
        with contextlib.suppress(Exception):
            self.stop(remove=True)

    def pid(self, name):
        """The pid of daemon @name ('mon.a', 'mgr.x', 'osd.0') when it runs
        for this DIR, else None."""
        pid = read_pid(os.path.join(self.dir, 'run', name + '.pid'))
        if not pid_alive(pid):
            return None
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                if self.conf.encode() not in f.read():
                    return None
        except OSError:
            return None
        return pid

    def alive(self):
        return all(self.pid(d) is not None for d in DAEMONS)

    def log_tail(self, lines=30):
        parts = []
        for name in DAEMONS:
            for suffix in ('.stderr', '.log'):
                path = os.path.join(self.dir, 'log', name + suffix)
                try:
                    with open(path, errors='replace') as f:
                        text = f.read().splitlines()
                except OSError:
                    continue
                if text:
                    parts.append('---- %s (last %d lines) ----' % (path, lines))
                    parts += text[-lines:]
        return '\n'.join(parts)

    # -- clients ---------------------------------------------------------------------

    def ceph(self, *args, check=True, timeout=60):
        """The ceph CLI against this cluster: ceph('osd', 'pool', 'ls')."""
        return run(['ceph', '-c', self.conf, '--connect-timeout', '10'] + list(args),
                   timeout=timeout, check=check)

    def rados(self, *args, pool=None, namespace=None, check=True, timeout=60,
              op_timeout=30):
        """The rados CLI on @pool (default: the cluster's), in @namespace:
        rados('put', 'obj', path).  Operations time out after @op_timeout
        seconds (a stopped OSD makes it fail, not hang)."""
        argv = ['rados', '-c', self.conf, '-p', pool or self.pool,
                '--rados-osd-op-timeout', str(op_timeout),
                '--rados-mon-op-timeout', str(op_timeout)]
        if namespace is not None:
            argv += ['-N', namespace]
        return run(argv + list(args), timeout=timeout, check=check)

    def objects(self, pool=None, namespace=None, prefix=''):
        """Sorted names of the objects in @pool and @namespace (None: the
        default namespace) that begin with @prefix."""
        out = self.rados('ls', pool=pool, namespace=namespace)
        return sorted(n for n in out.stdout.splitlines() if n.startswith(prefix))

    def create_pool(self, name, pg_num=8):
        """A new replicated pool (one replica), application rados."""
        self.ceph('osd', 'pool', 'create', name, str(pg_num), str(pg_num))
        self.ceph('osd', 'pool', 'application', 'enable', name, 'rados')

    def remove_pool(self, name):
        self.ceph('osd', 'pool', 'rm', name, name, '--yes-i-really-really-mean-it')


def reap_stale_clusters():
    """Stop and remove the clusters /var/tmp/snapfs-ceph-* of processes that
    died without closing them (their DIR/owner names a process that is
    gone)."""
    base = '/var/tmp' if os.path.isdir('/var/tmp') else tempfile.gettempdir()
    for owner in glob.glob(os.path.join(base, CEPH_PREFIX + '*', 'owner')):
        if pid_alive(read_pid(owner)):
            continue
        CephCluster(os.path.dirname(owner)).close()


def _stop_started():
    with _started_lock:
        clusters = list(_started)
    for c in clusters:
        c.close()


_armed = []


def _arm_cleanup():
    """At the first start: stop every started cluster at exit, and turn
    SIGTERM/SIGHUP into KeyboardInterrupt (where nobody handles them yet)
    so that the exit runs."""
    with _started_lock:
        if _armed:
            return
        _armed.append(True)
    atexit.register(_stop_started)
    interrupt_on_termination()


# ---- one cluster per pytest session ------------------------------------------------------

_session_cluster = SessionDaemon('the Ceph cluster', lambda: CephCluster.temporary())


def ceph_cluster():
    """The Ceph cluster of this pytest process, started by the first call
    (again when found dead) in a temporary directory on a free loopback
    address; a start that failed fails every later call at once.
    stop_ceph_cluster() ends it (conftest.py, at the end of the session)."""
    return _session_cluster.get()


def stop_ceph_cluster():
    """Stop and remove the session's cluster, if one was started (safe to
    call twice)."""
    _session_cluster.stop()
