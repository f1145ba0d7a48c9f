"""The repository on RADOS (issue 14, -o secondary=rados:<pool>/<namespace>):
what only a RADOS secondary has.  A mount is refused, with a clear error
and nothing mounted, when the pool does not exist, when the monitor cannot
be reached and with repository=off; a backup leaves exactly
repository.json, its chunks, its index and manifest and the host's lease
(no temporary object), each with its snapfs.t; a pool quota reached in the
middle of a backup makes it BackupFailed with an alert and an event, the
earlier backups still restore, and once the quota is lifted the backup
succeeds; a new SOURCE over the same pool and namespace gets its backups
back (disaster recovery), and another host sees them under
backed-up/hosts/ and restores one.

Every test runs once, [rados], in a namespace of its own of the session's
Ceph cluster (the `backend` fixture, conftest.py); the quota test in a
pool of its own, since quotas are per pool.  The mount with an unreachable
monitor, which takes the engine's RADOS timeout (30 s) to fail, runs in a
thread beside the other tests, and the refusal test, the last, checks it.  The repository's other
behaviour on RADOS is test_repository.py's and test_verify.py's [rados]
cases."""

import contextlib
import json
import os
import shutil
import threading
import time
import types
import uuid

import pytest

import ceph_harness
from repo_backend import PosixRepo, RadosRepo, chunk_name, is_chunk, rados_namespace
from snapfs_harness import events_of, qemu_img_compare, snapfs_env
from test_clone import check_clone, wait_clone
from test_import import import_events, lose_source_and_primary, restore
from test_repository import (A, B, check_published, clone_and_compare, index_of,
                             take_backed_up)

MiB = 1 << 20
W = [(0xd1, '1M', '3M')]

pytestmark = [pytest.mark.usefixtures('backend', 'unreachable_monitor'),
              pytest.mark.rados_only('what only a RADOS secondary has')]


# ---- helpers ------------------------------------------------------------------------

def lines_with(text, *words):
    """The lines of @text that contain every one of @words (any case)."""
    return [line for line in text.splitlines()
            if all(w.lower() in line.lower() for w in words)]


def poll(predicate, what, timeout):
    """Poll @predicate (no daemon needed) until true, at most @timeout s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'timed out after %d s waiting for %s' % (
            timeout, what)
        time.sleep(0.1)


def pool_flags(cluster, pool):
    dump = json.loads(cluster.ceph('osd', 'dump', '--format', 'json').stdout)
    for p in dump['pools']:
        if p['pool_name'] == pool:
            return p.get('flags_names', '').split(',')
    raise AssertionError('no pool %s in the OSD map' % pool)


def wait_pool_full(cluster, pool, full):
    poll(lambda: ('full_quota' in pool_flags(cluster, pool)) == full,
         'the pool %s to be %s' % (pool, 'flagged full' if full else 'no longer full'), 60)


# ---- what a backup leaves -----------------------------------------------------------

def test_objects_after_a_backup(env):
    """After a backup the namespace holds exactly repository.json, the
    backup's chunks, its index and manifest, and this host's lease (idle):
    no temporary object; every one carries snapfs.t (20 digits, about now);
    SECONDARY the directory is not used."""
    env.make_volume('v', '64M', A)
    env.mount(host='kvm-a')
    t0 = int(time.time())
    take_backed_up(env, 'v', 's1')
    env.no_jobs_left()
    check_published(env, 'v', 's1', 64 * MiB)
    u = env.info('v', 's1')['uuid']
    chunks = sorted(chunk_name(d) for d in set(index_of(env, 'v', 's1')[2]) - {None})
    assert len(chunks) == 3, chunks      # 6 entries of 2 MiB, 3 distinct
    want = sorted(['repository.json', '.leases/kvm-a', 'volumes/v/%s.index' % u,
                   'volumes/v/%s.json' % u] + chunks)
    have = env.repo.names()
    assert have == want, 'objects: %s\nexpected: %s' % (have, want)
    assert all(is_chunk(n) for n in have if n.startswith('.chunks/'))
    assert env.repo.read('.leases/kvm-a') == b'idle\n'
    assert env.repo.size(chunks[0]) == 16 + env.repo.new_chunk_size
    for name in have:
        t = env.repo.touched(name)
        assert t is not None and t0 - 5 <= t <= time.time() + 5, (name, t, t0)
    # the catalog, the log and PRIMARY stay local, and the manifests'
    # copies that backed-up/ serves; nothing of the repository is local
    local = PosixRepo(env.secondary).names()
    assert set(local) <= {'volumes/v/%s.json' % u}, local
    assert env.secondary_files() == have
    assert env.secondary_backup_files() == ['volumes/v/%s.index' % u, 'volumes/v/%s.json' % u]


# ---- a pool quota -----------------------------------------------------------------------

def test_pool_quota_reached_mid_backup(env):
    """A pool of its own.  s1 backs up.  s2's backup writes its chunks and
    is cut there (kill -9 at a test point); the pool's quota is then set
    below what it holds; the remounted daemon's run of s2 meets the quota
    when it writes: BackupFailed with an alert and an event naming EDQUOT,
    nothing of s2 published, the volume and s1 intact and restorable.
    Once the quota is lifted, a retry of s2 and a new backup succeed."""
    cluster = ceph_harness.ceph_cluster()
    pool = 'snapfs-quota-' + uuid.uuid4().hex[:8]
    cluster.create_pool(pool)
    try:
        env.use_rados(RadosRepo(cluster, rados_namespace('quota'), pool=pool))
        env.make_volume('v', '64M', A)
        ref_a = env.make_reference('64M', A)
        ref_ab = env.make_reference('64M', A + B)
        env.mount(workers=1, retries=0)
        take_backed_up(env, 'v', 's1')
        env.unmount()

        env.write_volume('v', B)
        env.mount_hanging('backup.repo.chunks_written')
        s1_chunks = set(index_of(env, 'v', 's1')[2]) - {None}
        assert env.repo.chunk_names() == sorted(s1_chunks)
        env.take('v', 's2')
        env.wait_testpoint('backup.repo.chunks_written')
        env.kill9()
        assert len(env.repo.chunk_names()) > len(s1_chunks), \
            "s2's chunks should be written by now"

        cluster.ceph('osd', 'pool', 'set-quota', pool, 'max_bytes', str(MiB))
        wait_pool_full(cluster, pool, True)
        n = 0
        env.mount()
        env.wait_state('v', 's2', 'BackupFailed', fail_fast=False, timeout=60)
        info = env.info('v', 's2')
        assert info['on_secondary'] is False and info['on_primary'] is True, info
        assert 'quota' in (info['error'] or '').lower(), info
        alerts = env.wait_for(lambda: env.alerts_for('v', 's2'), 'the alert of v/s2',
                              timeout=10)
        assert [a['errno'] for a in alerts.values()] == ['EDQUOT'], alerts
        fails = events_of(env.events_since(n), 'backup.fail', 'v', 's2')
        assert fails and fails[-1].get('errno') in ('EDQUOT', 122), env.events_since(n)
        # nothing of s2 published; s1 and the volume intact
        u1 = env.info('v', 's1')['uuid']
        assert env.repo.listdir('volumes/v') == sorted([u1 + '.index', u1 + '.json'])
        assert env.backups('v') == ['s1.json', 's1.qcow2'], env.backups('v')
        assert qemu_img_compare(ref_ab, env.volume_path('v'), force_share=True) == 0
        assert qemu_img_compare(ref_a, env.backup_file('v', 's1')) == 0
        clone_and_compare(env, 'v', 's1', 'c1', ref_a)

        # the quota lifted: the retry and a new backup go through
        cluster.ceph('osd', 'pool', 'set-quota', pool, 'max_bytes', '0')
        wait_pool_full(cluster, pool, False)
        env.control('v', 'retry s2')
        env.wait_state('v', 's2', 'BackedUp', fail_fast=False)
        check_published(env, 'v', 's2', 64 * MiB)
        assert qemu_img_compare(ref_ab, env.backup_file('v', 's2')) == 0
        env.wait_for(lambda: not env.alerts_for('v', 's2'), 'the alert to be resolved',
                     timeout=10)
        take_backed_up(env, 'v', 's3')
        check_published(env, 'v', 's3', 64 * MiB)
    finally:
        env.cleanup()       # nothing may use the pool when it goes
        cluster.remove_pool(pool)


# ---- disaster recovery ---------------------------------------------------------------

@contextlib.contextmanager
def host_b(env):
    """A second host's state directory over env's pool and namespace."""
    with snapfs_env('host-b') as b:
        b.use_rados(env.rados)
        yield b


def test_disaster_recovery_and_another_host(env):
    """Host kvm-a backs up v twice and w once, then loses SOURCE and
    PRIMARY.  A fresh SOURCE mounting the same pool/namespace as kvm-a gets
    every backup back under backed-up/volumes/ with its name, times and
    checksum, equal to the snapshot; new backups go on.  Host kvm-b over
    the same namespace sees them under backed-up/hosts/kvm-a/ and restores
    one into a volume of its own."""
    env.make_volume('v', '64M', A)
    env.make_volume('w', '16M', W)
    ref_a = env.make_reference('64M', A)
    ref_ab = env.make_reference('64M', A + B)
    ref_w = env.make_reference('16M', W)
    env.mount(host='kvm-a', keep_primary=1)
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 'weekly')
    take_backed_up(env, 'w', 's1')
    keys = (('v', 's1'), ('v', 'weekly'), ('w', 's1'))
    before = {key: env.info(*key) for key in keys}
    manifests = {key: env.manifest(*key) for key in keys}
    env.unmount()
    lose_source_and_primary(env)
    shutil.rmtree(env.secondary, ignore_errors=True)    # it never held anything

    env.mount(host='kvm-a', keep_primary=1)
    summary = [e for e in import_events(env) if 'a new catalog' in e['message']]
    assert len(summary) == 1 and "3 backup(s) of host 'kvm-a' imported (2 new volume(s))" \
        in summary[0]['message'], import_events(env)
    assert sorted(env.listdir('volumes')) == ['v', 'w']
    assert sorted(env.snapshots('v')) == ['s1', 'weekly']
    assert env.listdir('backed-up', 'volumes', 'v') == \
        ['s1.json', 's1.qcow2', 'weekly.json', 'weekly.qcow2']
    for key, old in before.items():
        info = env.info(*key)
        assert info['state'] == 'BackedUp' and info['on_primary'] is False, info
        for field in ('uuid', 'created_at', 'backed_up_at', 'checksum', 'virtual_size'):
            assert info[field] == old[field], (key, field, info, old)
        assert env.manifest(*key) == manifests[key], key
    for (vol, snap), ref in ((('v', 's1'), ref_a), (('v', 'weekly'), ref_ab),
                             (('w', 's1'), ref_w)):
        assert qemu_img_compare(ref, env.backup_file(vol, snap)) == 0, (vol, snap)
    assert not [e for e in env.read_events() if e['type'] == 'recovery.missing']
    # new backups go on in the imported volume
    env.make_volume('v', '64M', [(0xee, 0, '1M')])
    take_backed_up(env, 'v', 's3')
    assert sorted(env.snapshots('v')) == ['s1', 's3', 'weekly']
    env.unmount()

    with host_b(env) as b:
        b.mount(host='kvm-b')
        assert b.listdir('volumes') == []
        assert b.listdir('backed-up', 'hosts') == ['kvm-a']
        theirs = b.p('backed-up', 'hosts', 'kvm-a', 'volumes', 'v')
        assert sorted(os.listdir(theirs)) == ['s1.json', 's1.qcow2', 's3.json', 's3.qcow2',
                                              'weekly.json', 'weekly.qcow2']
        assert qemu_img_compare(ref_ab, os.path.join(theirs, 'weekly.qcow2')) == 0
        with open(os.path.join(theirs, 'weekly.json')) as f:
            assert json.load(f) == manifests[('v', 'weekly')]
        n = len(b.read_events())
        assert restore(b, 'restore kvm-a/v/weekly from-a') == 0
        wait_clone(b, 'v', 'weekly', 'from-a', n)
        check_clone(b, 'from-a', ref_ab, 64 * MiB)
        # and it backs up its own volume into the same namespace
        take_backed_up(b, 'from-a', 'b1')
        assert b.listdir('backed-up', 'volumes', 'from-a') == ['b1.json', 'b1.qcow2']
        b.no_jobs_left()
        b.unmount()
    assert '.leases/kvm-b' in env.repo.names('.leases/')


# ---- refusals -------------------------------------------------------------------------

UNREACHABLE_CONF = """[global]
mon host = v2:%s:%d
auth cluster required = none
auth service required = none
auth client required = none
"""


@pytest.fixture(scope='module')
def unreachable_monitor():
    """A mount whose ceph_conf names a monitor nobody answers on, tried in
    a thread of its own from the module's first test on: the engine gives
    up connecting only after its RADOS timeout (30 s), which so passes
    beside the other tests; the refusal test (the last) checks the result.
    Yields (thread, result dict: refusal or error, the conf's path)."""
    if ceph_harness.missing_prerequisites():
        yield None
        return
    result = {}
    with snapfs_env('unreachable-monitor') as u:
        conf = os.path.join(u.scratch, 'unreachable.conf')
        with open(conf, 'w') as f:
            f.write(UNREACHABLE_CONF % (ceph_harness.free_loopback_addr(),
                                        ceph_harness.MON_PORT))
        u.use_rados(RadosRepo(types.SimpleNamespace(pool='snapfs', conf=conf), 'unreachable'))
        u.make_volume('v', '16M', [(0x11, 0, '1M')])

        def attempt():
            try:
                result['refusal'] = u.mount_refused(timeout=120)
            except BaseException as e:     # reported by the test
                result['error'] = e
        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        yield thread, result, conf
        thread.join(130)


def test_mount_refused_without_pool_monitor_or_with_repository_off(env, unreachable_monitor):
    """No such pool; a ceph_conf whose monitor nobody answers on (refused
    within a bounded time: unreachable_monitor()); a ceph_conf that does
    not exist; repository=off: each refused, one clear line, nothing
    mounted and nothing written in the namespace; then the same SOURCE
    mounts."""
    repo = env.rados
    env.make_volume('v', '16M', [(0x11, 0, '1M')])

    # a pool that does not exist
    env.use_rados(RadosRepo(repo.cluster, repo.namespace, pool='snapfs-no-such-pool'))
    text, _ = env.mount_refused()
    assert lines_with(text, 'snapfs-no-such-pool'), text
    env.use_rados(repo)

    # a monitor nobody answers on: refused within a bounded time
    thread, result, conf = unreachable_monitor
    thread.join(130)
    assert not thread.is_alive(), 'a mount with an unreachable monitor still runs'
    if 'error' in result:
        raise result['error']
    text, took = result['refusal']
    assert lines_with(text, 'connect', conf), text
    assert took < 90, 'refused only after %.0f s' % took

    # a ceph_conf that is not there
    repo.conf = os.path.join(env.scratch, 'missing.conf')
    try:
        text, _ = env.mount_refused()
    finally:
        repo.conf = repo.cluster.conf
    assert lines_with(text, 'missing.conf'), text

    # repository=off: full copies are POSIX only
    text, _ = env.mount_refused(repository='off')
    assert lines_with(text, 'repository=off', 'rados'), text

    assert repo.names() == [], 'a refused mount wrote %s' % repo.names()
    # the same SOURCE, the same options less the bad ones: mounts and backs up
    env.mount()
    take_backed_up(env, 'v', 's1')
