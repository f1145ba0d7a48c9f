"""netns_harness - hosts in network namespaces around one Ceph cluster, for
the tests of several snapfs hosts sharing a RADOS secondary (issue 14).

    with ceph_hosts(['kvm-a', 'kvm-b']) as hosts:
        a = Snapfs('a')
        hosts.place(a, 'kvm-a', 'drill')    # a's daemon runs in kvm-a's namespace,
        a.mount()                           # -o host=kvm-a,secondary=rados:snapfs/drill,
                                            #    ceph_conf=<the cluster's>
        hosts.cluster.objects(namespace='drill')

- HostsNetwork: a bridge in the root namespace holding 10.77.N.1/24 (N
  chosen free under a lock: no address or route of the machine in that
  /24, no other run's), and one network namespace per host,
  snapfs-N-<host>, whose veth end (eth0 in it) is 10.77.N.2, .3, ...;
  the other end is a port of the bridge.  prefix(host) is the command
  prefix that runs a program in a host's namespace: Snapfs.prefix.
- ceph_hosts(): such a network and a CephCluster.temporary() whose
  monitor, manager and OSD listen on the bridge's address, so that each
  namespace reaches the whole cluster over its veth; stopped in reverse
  order (the cluster, then the network) even when the test fails.
- Cleanup: every network this process made is torn down at exit (atexit)
  and on SIGTERM/SIGHUP (a KeyboardInterrupt, as in ceph_harness);
  /run/snapfs-netns/N/owner holds the pid of the process that made it,
  and the next HostsNetwork.start() tears down (processes in its
  namespaces killed, namespaces and bridge deleted) the networks of
  processes that are gone (reap_stale_networks()).  /run is a tmpfs: the
  owner files go with a reboot, as the namespaces do.

What an experiment found (Debian 12, iproute2 6.1, util-linux 2.38), and
why the hosts run under `nsenter --net=` and not `ip netns exec`:
- `ip netns exec NS snapfs ... MNT` runs snapfs in a new *mount*
  namespace too (ip unshares one to mount the namespace's own /sys and
  makes / a recursive slave): its FUSE mount is in that namespace only.
  The test's /proc/self/mountinfo does not list it, MNT reads as the
  empty directory, and the mount goes when the daemon dies.  Unusable
  for the tests, which read and write MNT.
- `nsenter --net=/run/netns/NS snapfs ... MNT` enters the network
  namespace only: the mount is in the test's mount namespace, listed in
  its mountinfo and served to it (MNT lists README, volumes, ...);
  fusermount3 -u from the test unmounts it.  nsenter execs snapfs, so
  Popen's pid is the daemon's (kill -9 of it is a crash of snapfs).
- librados in a namespace reaches a cluster started with --addr 10.77.N.1
  (tools/ceph-cluster.sh binds the monitor, the manager and the OSD
  there): `rados ls` and `rados stat` from the namespace answer.  A
  cluster on 127.x.y.z (ceph_harness's default) cannot serve a
  namespace: connecting to its monitor from one is refused, the
  namespace's loopback being its own.
- The embedded libvirt driver, and a system libvirtd reached through its
  unix socket (a path, which network namespaces do not separate), work
  from a namespace as from the root one.

Only the Python 3.11 standard library is used here.
"""

import atexit
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import threading

from ceph_harness import CephCluster
from snapfs_harness import interrupt_on_termination, pid_alive, read_pid, run

STATE_DIR = '/run/snapfs-netns'
LOCK_FILE = '/run/snapfs-netns.lock'
SUBNET = '10.77.%d'


def missing_prerequisites():
    """Reasons namespaces cannot be made here (empty list: they can)."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append('not root')
    for prog in ('ip', 'nsenter'):
        if shutil.which(prog, path=os.environ.get('PATH', '') + ':/usr/sbin:/sbin') is None:
            reasons.append(prog + ' missing')
    return reasons


def _ip(*args, check=True):
    return run(['ip'] + list(args), timeout=30, check=check)


def _subnet_in_use(n):
    """Whether an address or a route of the machine overlaps 10.77.@n.0/24,
    or a link of ours numbered @n exists."""
    candidate = ipaddress.ip_network((SUBNET % n) + '.0/24')
    nets = []
    for a in json.loads(_ip('-j', '-4', 'addr', 'show').stdout or '[]'):
        for info in a.get('addr_info', []):
            nets.append('%s/%s' % (info['local'], info['prefixlen']))
    for r in json.loads(_ip('-j', '-4', 'route', 'show', 'table', 'all').stdout or '[]'):
        if r.get('dst') not in (None, 'default'):
            nets.append(r['dst'])
    for text in nets:
        with contextlib.suppress(ValueError):
            if ipaddress.ip_network(text, strict=False).overlaps(candidate):
                return True
    return _ip('link', 'show', 'snfs%d' % n, check=False).returncode == 0


class HostsNetwork:
    """A bridge at 10.77.N.1/24 in the root namespace and one network
    namespace per name in @hosts, each with a veth into the bridge."""

    def __init__(self, hosts):
        assert hosts and all(re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,31}', h)
                             for h in hosts), hosts
        self.hosts = list(hosts)
        self.n = None

    @property
    def bridge(self):
        return 'snfs%d' % self.n

    @property
    def addr(self):
        """The bridge's address, where the namespaces reach the root one."""
        return (SUBNET % self.n) + '.1'

    def host_addr(self, host):
        return (SUBNET % self.n) + '.%d' % (2 + self.hosts.index(host))

    def netns(self, host):
        return 'snapfs-%d-%s' % (self.n, host)

    def prefix(self, host):
        """The command prefix running a program in @host's network
        namespace (and nothing else: see the module's docstring)."""
        return ['nsenter', '--net=/run/netns/' + self.netns(host), '--']

    def run(self, host, argv, **kw):
        return run(self.prefix(host) + list(argv), **kw)

    def start(self):
        """Pick a free /24, make the bridge and the namespaces.  Whatever
        was made is undone when a step fails (AssertionError)."""
        reap_stale_networks()
        _arm_cleanup()
        os.makedirs(STATE_DIR, exist_ok=True)
        with open(LOCK_FILE, 'a') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for n in range(1, 255):
                if os.path.exists(os.path.join(STATE_DIR, str(n))) or _subnet_in_use(n):
                    continue
                os.makedirs(os.path.join(STATE_DIR, str(n)))
                with open(os.path.join(STATE_DIR, str(n), 'owner'), 'w') as f:
                    f.write('%d\n' % os.getpid())
                self.n = n
                break
            else:
                raise AssertionError('no free 10.77.N.0/24 for the hosts\' network')
        with _made_lock:
            _made.add(self)
        try:
            with open(os.path.join(STATE_DIR, str(self.n), 'hosts'), 'w') as f:
                f.write('\n'.join(self.hosts) + '\n')
            _ip('link', 'add', self.bridge, 'type', 'bridge')
            _ip('addr', 'add', self.addr + '/24', 'dev', self.bridge)
            _ip('link', 'set', self.bridge, 'up')
            for i, host in enumerate(self.hosts, 1):
                ns, veth = self.netns(host), '%s-%d' % (self.bridge, i)
                _ip('netns', 'add', ns)
                _ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
                _ip('link', 'set', veth, 'master', self.bridge, 'up')
                _ip('-n', ns, 'addr', 'add', self.host_addr(host) + '/24', 'dev', 'eth0')
                _ip('-n', ns, 'link', 'set', 'eth0', 'up')
                _ip('-n', ns, 'link', 'set', 'lo', 'up')
        except BaseException:
            self.close()
            raise

    def close(self):
        """Kill what still runs in the namespaces, delete them (their veths
        go with them) and the bridge.  Safe to call at any time, twice;
        returns [(pid, cmdline)] of the processes it had to kill."""
        with _made_lock:
            _made.discard(self)
        if self.n is None:
            return []
        killed = _teardown(self.n, self.hosts)
        self.n = None
        return killed


def _processes_in(ns):
    out = _ip('netns', 'pids', ns, check=False)
    found = []
    for word in out.stdout.split():
        with contextlib.suppress(OSError, ValueError):
            with open('/proc/%d/cmdline' % int(word), 'rb') as f:
                found.append((int(word), f.read().replace(b'\0', b' ').decode(errors='replace')))
    return found


def _teardown(n, hosts):
    killed = []
    for host in hosts:
        ns = 'snapfs-%d-%s' % (n, host)
        if not os.path.exists('/run/netns/' + ns):
            continue
        procs = _processes_in(ns)
        for pid, _ in procs:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        killed += procs
        _ip('netns', 'del', ns, check=False)
    _ip('link', 'del', 'snfs%d' % n, check=False)
    shutil.rmtree(os.path.join(STATE_DIR, str(n)), ignore_errors=True)
    return killed


def reap_stale_networks():
    """Tear down the networks of processes that died without closing them
    (their /run/snapfs-netns/N/owner names a process that is gone)."""
    if not os.path.isdir(STATE_DIR):
        return
    for name in os.listdir(STATE_DIR):
        d = os.path.join(STATE_DIR, name)
        if not name.isdigit() or pid_alive(read_pid(os.path.join(d, 'owner'))):
            continue
        try:
            with open(os.path.join(d, 'hosts')) as f:
                hosts = f.read().split()
        except OSError:
            hosts = []
        # a host whose name the file lost still has its namespace listed
        listed = _ip('netns', 'list', check=False).stdout.split()
        hosts += [ns[len('snapfs-%s-' % name):] for ns in listed
                  if ns.startswith('snapfs-%s-' % name)]
        _teardown(int(name), sorted(set(hosts)))


# every network this process made and has not closed: closed at exit
_made = set()
_made_lock = threading.Lock()
_armed = []


def _close_made():
    with _made_lock:
        nets = list(_made)
    for net in nets:
        with contextlib.suppress(Exception):
            net.close()


def _arm_cleanup():
    with _made_lock:
        if _armed:
            return
        _armed.append(True)
    atexit.register(_close_made)
    interrupt_on_termination()


class CephHosts:
    """A HostsNetwork and the Ceph cluster on its bridge (ceph_hosts())."""

    def __init__(self, net, cluster):
        self.net, self.cluster = net, cluster

    def secondary(self, namespace):
        """The -o secondary= value for @namespace of the cluster's pool."""
        return 'rados:%s/%s' % (self.cluster.pool, namespace)

    def place(self, env, host, namespace):
        """Make the Snapfs @env host @host: its daemon runs in @host's
        network namespace with -o host=@host, its SECONDARY @namespace of
        the cluster's pool, -o ceph_conf=<the cluster's>."""
        env.prefix = self.net.prefix(host)
        env.secondary = self.secondary(namespace)
        env.options.update(host=host, ceph_conf=self.cluster.conf)
        return env


@contextlib.contextmanager
def ceph_hosts(hosts):
    """A network of @hosts (HostsNetwork) and a Ceph cluster listening on
    its bridge; both gone on the way out, the cluster first.  Raises
    AssertionError when either cannot start (nothing is left then).  On
    the way out, processes still running in a namespace (daemons a test
    did not stop) are killed and make an AssertionError."""
    net = HostsNetwork(hosts)
    net.start()
    cluster = None
    killed = []
    try:
        cluster = CephCluster.temporary(addr=net.addr)
        cluster.start()
        yield CephHosts(net, cluster)
    finally:
        if cluster is not None:
            cluster.close()
        killed = net.close()
    assert not killed, 'still running in the hosts\' namespaces (killed): %s' % killed
