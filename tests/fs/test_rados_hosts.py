"""Two hosts over one RADOS secondary (issue 14): hosts kvm-a and kvm-b,
each a snapfs in its own network namespace with its own SOURCE and
PRIMARY (netns_harness.py), reach one Ceph cluster over their veths and
share one pool namespace as SECONDARY.  They back up at once with data
in common (a chunk both write is stored once); A's GC, run while B's
backups have written their chunks and published nothing, keeps what B's
lease protects and frees what it does not; B, killed with -9 in those
backups and mounted again, publishes them; then every published backup
of both hosts restores, on the other host, to the data written.

The drill of a fresh host restoring and booting a dead host's VM over
RADOS is test_import.py's (parametrized by the secondary).

Without Ceph, ip or nsenter the module exits 77 (meson SKIP), never passes.
"""

import hashlib
import os
import re
import tempfile
import time
import uuid

import pytest

import ceph_harness
import netns_harness
from repo_backend import MiB, RADOS_CHUNK
from snapfs_harness import qemu_img_compare, snapfs_env
from test_clone import check_clone, wait_clone
from test_import import gc_after_a_delete, restore

_missing = ceph_harness.missing_prerequisites() + netns_harness.missing_prerequisites()
if _missing:
    pytest.exit('RADOS host tests skipped: ' + ', '.join(_missing), returncode=77)

CHUNK = RADOS_CHUNK     # repository.json's chunk_size for new repositories
HANG = 'backup.repo.chunks_written'


@pytest.fixture(scope='module')
def hosts():
    """kvm-a and kvm-b in their namespaces, the cluster on their bridge."""
    with netns_harness.ceph_hosts(['kvm-a', 'kvm-b']) as h:
        yield h


def chunk_object(pattern):
    """The object name of a chunk holding CHUNK bytes of @pattern."""
    digest = hashlib.sha256(bytes([pattern]) * CHUNK).hexdigest()
    return '.chunks/%s/%s' % (digest[:2], digest)


def set_snapfs_t(cluster, ns, obj, t):
    """Set an object's `snapfs.t` (when snapfs last put or touched it) to
    unix time @t: ageing it, as POSIX tests set a chunk's mtime."""
    cluster.rados('setxattr', obj, 'snapfs.t', '%020d' % int(t), namespace=ns)


def get_object(cluster, ns, obj):
    with tempfile.NamedTemporaryFile() as f:
        cluster.rados('get', obj, f.name, namespace=ns)
        return f.read().decode(errors='replace')


def put_object(cluster, ns, obj, text):
    with tempfile.NamedTemporaryFile('w') as f:
        f.write(text)
        f.flush()
        cluster.rados('put', obj, f.name, namespace=ns)


def not_a_manifest_copy(env):
    """Files under SOURCE/secondary other than volumes/<vol>/<uuid>.json,
    the local copies of manifests (the objects are the truth)."""
    found = []
    root = os.path.join(env.source, 'secondary')
    for dirpath, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if not re.fullmatch(r'volumes/[^/]+/[0-9a-f-]{36}\.json', rel):
                found.append(rel)
    return found


def hangs_logged(env, point):
    return env.log_text().count('testpoint: hanging at %s' % point)


def test_two_hosts_back_up_at_once_gc_spares_the_other_and_kill9(env, hosts):
    cluster, ns = hosts.cluster, 'two-hosts-' + uuid.uuid4().hex[:8]
    S, X, A2, Y1, Y2 = 0x5a, 0xa1, 0xa2, 0xb1, 0xb2
    # whole chunks of one pattern each, so that each chunk's name is known:
    # S is on both hosts, X only in A's a1, A2 in A's a2 and B's b2
    data = {('kvm-a', 'a1'): [(S, 0, '4M'), (X, '4M', '4M')],
            ('kvm-a', 'a2'): [(A2, 0, '4M')],
            ('kvm-b', 'b1'): [(S, 0, '4M'), (Y1, '4M', '4M')],
            ('kvm-b', 'b2'): [(Y2, 0, '4M'), (A2, '8M', '4M')]}
    refs = {key: env.make_reference('16M', w) for key, w in data.items()}
    a = hosts.place(env, 'kvm-a', ns)
    with snapfs_env('host-b') as b:
        hosts.place(b, 'kvm-b', ns)
        b.start_watchdog()
        for (host, vol), writes in data.items():
            (a if host == 'kvm-a' else b).make_volume(vol, '16M', writes)
        a.mount()
        # B's backups stop once their chunks are in RADOS, before any index
        b.mount_hanging(HANG)
        for vol in ('a1', 'a2'):
            a.take(vol, 's')
        for vol in ('b1', 'b2'):
            b.take(vol, 's')
        for vol in ('a1', 'a2'):
            a.wait_state(vol, 's', 'BackedUp')
        b.wait_for(lambda: hangs_logged(b, HANG) == 2,
                   "both of B's backups to write their chunks")
        assert b.state('b1', 's') == b.state('b2', 's') == 'BackingUp'
        chunks = cluster.objects(namespace=ns, prefix='.chunks/')
        assert chunks == sorted(chunk_object(p) for p in (S, X, A2, Y1, Y2)), chunks
        assert not cluster.objects(namespace=ns, prefix='volumes/b')
        lease = get_object(cluster, ns, '.leases/kvm-b')
        assert lease.startswith('oldest '), lease
        assert abs(int(lease.split()[1]) - time.time()) < 300, lease
        assert get_object(cluster, ns, '.leases/kvm-a') == 'idle\n'

        # As if B's backups had begun two hours ago and last touched their
        # chunks one hour ago, and A's X had been written three hours ago:
        # all far older than GC's grace.  Once A's a1 is deleted, S, Y1 and
        # Y2 are named by no published index; B's lease alone keeps them.
        now = time.time()
        put_object(cluster, ns, '.leases/kvm-b', 'oldest %d\n' % (now - 7200))
        for p in (S, Y1, Y2):
            set_snapfs_t(cluster, ns, chunk_object(p), now - 3600)
        set_snapfs_t(cluster, ns, chunk_object(X), now - 3 * 3600)
        ev = gc_after_a_delete(a, 'a1', 's')
        assert ev.get('result') == 'ok' and '1 other host lease(s)' in ev['message'], ev
        assert ' 1 of 5 chunk file(s) removed' in ev['message'], ev
        chunks = cluster.objects(namespace=ns, prefix='.chunks/')
        assert chunks == sorted(chunk_object(p) for p in (S, A2, Y1, Y2)), chunks

        # B dies in its backups; mounted again, it publishes both and
        # says idle
        b.kill9()
        b.mount()
        for vol in ('b1', 'b2'):
            b.wait_state(vol, 's', 'BackedUp')
        assert get_object(cluster, ns, '.leases/kvm-b') == 'idle\n'
        for vol in ('b1', 'b2'):
            objs = cluster.objects(namespace=ns, prefix='volumes/%s/' % vol)
            assert [o.rsplit('.', 1)[1] for o in objs] == ['index', 'json'], objs

        # every published backup, seen from both hosts and restored on the
        # other one, holds what was written
        published = [('kvm-a', 'a2'), ('kvm-b', 'b1'), ('kvm-b', 'b2')]
        for host, vol in published:
            mine, theirs = (a, b) if host == 'kvm-a' else (b, a)
            assert qemu_img_compare(refs[host, vol], mine.backup_file(vol, 's')) == 0, vol
            assert qemu_img_compare(refs[host, vol], theirs.p(
                'backed-up', 'hosts', host, 'volumes', vol, 's.qcow2')) == 0, vol
        assert a.listdir('backed-up', 'hosts', 'kvm-b', 'volumes') == ['b1', 'b2']
        assert b.listdir('backed-up', 'hosts', 'kvm-a', 'volumes') == ['a2']
        for host, vol in published:
            theirs = b if host == 'kvm-a' else a
            n = len(theirs.read_events())
            assert restore(theirs, 'restore %s/%s/s r-%s' % (host, vol, vol)) == 0
            wait_clone(theirs, vol, 's', 'r-' + vol, n)
            check_clone(theirs, 'r-' + vol, refs[host, vol], 16 * MiB)
        for e in (a, b):
            assert e.alerts() == {}, e.alerts()
            assert e.no_jobs_left()
            fails = [ev for ev in e.read_events() if ev['type'].endswith('.fail')]
            assert not fails, fails
        b.unmount()
        a.unmount()
        # the repository is in the pool namespace: all SOURCE/secondary
        # holds is the local copies of manifests backed-up/ serves
        for e in (a, b):
            local = not_a_manifest_copy(e)
            assert local == [], local
