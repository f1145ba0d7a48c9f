"""Disaster recovery (issue 14, docs/repository.md "A catalog rebuilt from
the repository"): a host whose SOURCE and PRIMARY are lost mounts a new,
empty SOURCE over its old SECONDARY, and every backup it made comes back
under backed-up/volumes/ with its snapshot name and times, BackedUp, its
view equal to the snapshot, restorable by a clone; other hosts' backups
and damaged manifests are left in place, the latter with an event; a
remount imports nothing twice.  In both modes: the repository (indexes)
and full copies (qcow2 files)."""

import contextlib
import errno
import json
import os
import shutil
import uuid

import pytest

from snapfs_harness import qemu_img_compare, snapfs_env
from test_clone import check_clone, wait_clone
from vm_harness import VmSnapfs, vmenv  # noqa: F401

MiB = 1 << 20
A = [(0xa1, 0, '4M'), (0xa2, '40M', '2M')]
B = [(0xb2, '8M', '4M')]
W = [(0xd1, '1M', '3M')]


def host_a_backs_up_v(env):
    """Host kvm-a (the env): volume v (A), backed up as s1, unmounted;
    the reference of its data."""
    env.make_volume('v', '64M', A)
    ref = env.make_reference('64M', A)
    env.mount(host='kvm-a')
    take_backed_up(env, 'v', 's1')
    env.unmount()
    return ref


@contextlib.contextmanager
def host_b(env):
    """A second host, kvm-b's state directory, sharing env's SECONDARY
    (not mounted yet); cleaned up on the way out."""
    with snapfs_env('host-b') as b:
        b.secondary = env.secondary
        yield b


def take_backed_up(env, vol, snap):
    env.take(vol, snap)
    env.wait_state(vol, snap, 'BackedUp')


def import_events(env):
    return [e for e in env.read_events() if e['type'] == 'recovery.import']


def lose_source_and_primary(env):
    """What a dead host leaves: SECONDARY only (SOURCE/secondary here)."""
    for name in os.listdir(env.source):
        if name == 'secondary':
            continue
        path = os.path.join(env.source, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    os.makedirs(env.primary)


def plant(env, vol, manifest):
    """A manifest snapfs did not write, under SECONDARY/volumes/@vol/."""
    d = os.path.join(env.secondary, 'volumes', vol)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, manifest['uuid'] + '.json'), 'w') as f:
        json.dump(manifest, f)


@pytest.mark.parametrize('mode', ['on', 'off'], ids=['repository', 'full-copies'])
def test_new_source_over_old_secondary_gets_its_backups_back(env, mode):
    env.make_volume('v', '64M', A)
    env.make_volume('w', '32M', W)
    ref_a = env.make_reference('64M', A)
    ref_ab = env.make_reference('64M', A + B)
    ref_w = env.make_reference('32M', W)
    env.mount(host='kvm-a', repository=mode, keep_primary=1)
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 'weekly')
    take_backed_up(env, 'w', 's1')
    before = {(vol, snap): env.info(vol, snap) for vol, snap in
              (('v', 's1'), ('v', 'weekly'), ('w', 's1'))}
    vol_uuid = env.volume_info('v')['uuid']
    manifests = {key: env.manifest(*key) for key in before}
    env.unmount()

    # another host's backup and a damaged manifest, beside ours
    other = dict(manifests[('v', 's1')], host='kvm-b', uuid=str(uuid.uuid4()),
                 snapshot='theirs', volume_uuid=str(uuid.uuid4()))
    if 'index' in other:
        other['index'] = other['uuid'] + '.index'
    plant(env, 'v', other)
    broken = str(uuid.uuid4())
    with open(os.path.join(env.secondary, 'volumes', 'w', broken + '.json'), 'w') as f:
        f.write('{"volume": "w", "snapshot": "half')
    lose_source_and_primary(env)

    env.mount(host='kvm-a', repository=mode, keep_primary=1)
    evs = import_events(env)
    summary = [e for e in evs if 'a new catalog' in e['message']]
    assert len(summary) == 1, evs
    assert "3 backup(s) of host 'kvm-a' imported (2 new volume(s)), 1 of other hosts " \
           "left to them, 1 skipped" in summary[0]['message'], summary
    skipped = [e for e in evs if 'not imported' in e['message']]
    assert len(skipped) == 1 and broken in skipped[0]['message'] and \
        skipped[0]['volume'] == 'w', skipped
    assert sorted(env.listdir('volumes')) == ['v', 'w']
    assert env.volume_info('v')['uuid'] == vol_uuid
    assert env.volume_info('v')['on_primary'] is False
    assert sorted(env.snapshots('v')) == ['s1', 'weekly']   # not theirs
    for key, old in before.items():
        info = env.info(*key)
        assert info['state'] == 'BackedUp', info
        for field in ('uuid', 'created_at', 'backed_up_at', 'checksum', 'virtual_size'):
            assert info[field] == old[field], (key, field, info, old)
        assert info['on_primary'] is False, info
        m = env.manifest(*key)
        assert m['host'] == 'kvm-a' and m['volume_uuid'] == manifests[key]['volume_uuid'], m
    for (vol, snap), ref in (((('v', 's1')), ref_a), (('v', 'weekly'), ref_ab),
                             (('w', 's1'), ref_w)):
        assert qemu_img_compare(ref, env.backup_file(vol, snap)) == 0, (vol, snap)
    assert not [e for e in env.read_events() if e['type'] == 'recovery.missing']
    # the planted files are left where they are
    assert os.path.exists(os.path.join(env.secondary, 'volumes', 'w', broken + '.json'))
    assert os.path.exists(os.path.join(env.secondary, 'volumes', 'v', other['uuid'] + '.json'))

    # restored from secondary storage, equal to the snapshot
    n = len(env.read_events())
    env.control('v', 'clone weekly restored')
    wait_clone(env, 'v', 'weekly', 'restored', n)
    check_clone(env, 'restored', ref_ab, 64 * MiB)

    # and new backups go on, in the same volume
    env.remount()
    assert len(import_events(env)) == len(evs)   # nothing imported twice
    env.make_volume('v', '64M', [(0xee, 0, '1M')])
    take_backed_up(env, 'v', 's3')
    assert sorted(env.snapshots('v')) == ['s1', 's3', 'weekly']
    assert env.state('v', 's1') == 'BackedUp'


def test_another_host_name_imports_nothing(env):
    """A new SOURCE mounted under another host name sees that SECONDARY's
    backups as another host's: none comes under backed-up/volumes/."""
    env.make_volume('v', '16M', [(0x11, 0, '1M')])
    env.mount(host='kvm-a')
    take_backed_up(env, 'v', 's1')
    env.unmount()
    lose_source_and_primary(env)
    env.options.pop('host')
    env.mount(host='kvm-b')
    assert env.listdir('volumes') == []
    summary = [e for e in import_events(env) if 'a new catalog' in e['message']]
    assert summary and "0 backup(s) of host 'kvm-b' imported (0 new volume(s)), 1 of other " \
        "hosts left to them" in summary[0]['message'], summary


def test_other_hosts_backups_are_served_under_hosts(env):
    """Two hosts, one SECONDARY (one after the other here): each sees its
    own backups under backed-up/volumes/ and the other's, read-only and
    equal to the snapshot, under backed-up/hosts/<host>/volumes/; the same
    volume name on both stays two volumes."""
    ref_a = host_a_backs_up_v(env)
    env.mount()
    a_manifest = env.manifest('v', 's1')
    assert env.listdir('backed-up', 'hosts') == []
    env.unmount()
    with host_b(env) as b:
        b.make_volume('v', '32M', W)
        ref_w = env.make_reference('32M', W)
        b.mount(host='kvm-b')
        take_backed_up(b, 'v', 's1')
        # its own v/s1, and kvm-a's v/s1 beside it
        assert b.listdir('backed-up', 'volumes', 'v') == ['s1.json', 's1.qcow2']
        assert qemu_img_compare(ref_w, b.backup_file('v', 's1')) == 0
        assert b.listdir('backed-up', 'hosts') == ['kvm-a']
        assert b.listdir('backed-up', 'hosts', 'kvm-a') == ['volumes']
        assert b.listdir('backed-up', 'hosts', 'kvm-a', 'volumes') == ['v']
        theirs = b.p('backed-up', 'hosts', 'kvm-a', 'volumes', 'v')
        assert sorted(os.listdir(theirs)) == ['s1.json', 's1.qcow2']
        assert qemu_img_compare(ref_a, os.path.join(theirs, 's1.qcow2')) == 0
        with open(os.path.join(theirs, 's1.json')) as f:
            assert json.load(f) == a_manifest
        st = os.stat(os.path.join(theirs, 's1.qcow2'))
        assert st.st_uid == 0 and st.st_mode & 0o777 == 0o444, st
        # stable across remounts, as this host's own
        b.remount()
        again = os.stat(os.path.join(theirs, 's1.qcow2'))
        assert (again.st_ino, again.st_size, again.st_mtime_ns) == \
            (st.st_ino, st.st_size, st.st_mtime_ns)
        # read-only, and names that are no host's are absent
        for path, err in ((os.path.join(theirs, 'x.qcow2'), errno.EROFS),):
            with pytest.raises(OSError) as e:
                open(path, 'w').close()
            assert e.value.errno == err, e.value
        for missing in (('backed-up', 'hosts', 'kvm-b'), ('backed-up', 'hosts', 'nobody'),
                        ('backed-up', 'hosts', 'kvm-a', 'volumes', 'w'),
                        ('backed-up', 'hosts', 'kvm-a', 'volumes', 'v', 's2.qcow2')):
            assert not os.path.exists(b.p(*missing)), missing
        b.unmount()
    # and kvm-a sees kvm-b's
    env.mount()
    assert env.listdir('backed-up', 'hosts') == ['kvm-b']
    assert qemu_img_compare(ref_a, env.backup_file('v', 's1')) == 0
    assert qemu_img_compare(
        ref_w, env.p('backed-up', 'hosts', 'kvm-b', 'volumes', 'v', 's1.qcow2')) == 0


def restore(env, line):
    """Write @line to MOUNT/control; the errno (0: accepted)."""
    try:
        with open(env.p('control'), 'w') as f:
            f.write(line + '\n')
        return 0
    except OSError as e:
        return e.errno


def test_restore_another_hosts_backup(env):
    """`restore <host>/<vol>/<snap> <newvol>` on MOUNT/control: a full copy
    of another host's backup becomes a local volume, queued like a clone;
    this host's own backups restore the same way; refusals are events."""
    ref_a = host_a_backs_up_v(env)
    with host_b(env) as b:
        b.make_volume('mine', '16M', W)
        ref_w = env.make_reference('16M', W)
        b.mount(host='kvm-b')
        take_backed_up(b, 'mine', 's1')
        assert 'control' in os.listdir(b.mnt)
        assert 'restore <host>/<vol>/<snap> <newvol>' in b.read('control')
        n = len(b.read_events())
        assert restore(b, 'restore kvm-a/v/s1 from-a') == 0
        wait_clone(b, 'v', 's1', 'from-a', n)
        check_clone(b, 'from-a', ref_a, 64 * MiB)
        assert os.stat(b.volume_path('from-a')).st_uid == 0
        # this host's own backup, by its own host name
        n = len(b.read_events())
        assert restore(b, 'restore kvm-b/mine/s1 mine-copy') == 0
        wait_clone(b, 'mine', 's1', 'mine-copy', n)
        check_clone(b, 'mine-copy', ref_w, 16 * MiB)
        # refusals: each an errno and a rejected event saying why
        for line, err, says in (
                ('restore kvm-a/v/s9 x', errno.ENOENT, 'no such backup'),
                ('restore kvm-c/v/s1 x', errno.ENOENT, 'no such backup'),
                ('restore kvm-a/v/s1 from-a', errno.EEXIST, 'exists'),
                ('restore kvm-a/v/s1 mine', errno.EEXIST, 'exists'),
                ('restore kvm-a/v s1', errno.EINVAL, 'usage'),
                ('restore kvm-a/v/s1/x y', errno.EINVAL, 'usage'),
                ('restore kvm-a/v/.s1 y', errno.EINVAL, 'names are'),
                ('clone v/s1 y', errno.EINVAL, 'usage')):
            n = len(b.read_events())
            assert restore(b, line) == err, line
            rej = [e for e in b.events_since(n) if e['type'] == 'rejected']
            assert rej and rej[0]['path'] == 'control' and says in rej[0]['message'], \
                (line, b.events_since(n))
        # reading control shows the commands and the last result
        text = b.read('control')
        assert 'clone v/s1 y' in text and 'EINVAL' in text, text
        b.no_jobs_left()
        b.unmount()



def test_restore_shows_in_jobs_and_survives_kill9(env):
    """A restore is a job like a clone: jobs/<id> names the other host's
    backup and the new volume while it runs; kill -9 in it leaves no
    volume, and the next mount runs it again to the end."""
    ref_a = host_a_backs_up_v(env)
    with host_b(env) as b:
        b.mount_hanging('clone.converted', host='kvm-b')
        assert restore(b, 'restore kvm-a/v/s1 from-a') == 0
        b.wait_for(lambda: 'clone.converted' in b.log_text(), 'the restore to hang')
        jobs = b.jobs()
        assert len(jobs) == 1 and jobs[0]['kind'] == 'clone' and \
            jobs[0]['new_volume'] == 'from-a' and \
            jobs[0]['target'] == 'backed-up/hosts/kvm-a/volumes/v/s1.qcow2' and \
            jobs[0]['bytes_total'] == 64 * MiB, jobs
        b.kill9()
        assert 'from-a' not in b.primary_volume_files()
        n = 0
        b.mount(host='kvm-b')
        wait_clone(b, 'v', 's1', 'from-a', n)
        check_clone(b, 'from-a', ref_a, 64 * MiB)
        b.no_jobs_left()
        b.unmount()


def lease_of(env, host):
    with open(os.path.join(env.secondary, '.leases', host)) as f:
        return f.read()


def gc_after_a_delete(env, vol, snap):
    """rmdir @vol/@snap (its backup done) and wait for the GC it asks for;
    the repository.gc event."""
    n = len(env.read_events())
    os.rmdir(env.snap_dir(vol, snap))
    return env.wait_event(lambda e: e['type'] == 'repository.gc', since=n,
                          what='the GC after the delete')


def test_gc_keeps_what_another_hosts_running_backup_wrote(env):
    """Two hosts mounted at once over one SECONDARY.  Host B's backup has
    written its chunks and not published its index yet (held at a test
    point); host A's GC must not collect them, however old, while B's
    lease says its backup runs: the lease (SECONDARY/.leases/<host>) is
    what tells A.  With B's lease saying idle, the same GC collects them:
    the lease is what keeps them.  B, killed and mounted again, publishes
    its backup whole."""
    from test_repository import age_chunks, chunk_files, chunk_path
    import time
    env.make_volume('a', '16M', [(0x11, 0, '1M')])
    env.mount(host='kvm-a')
    take_backed_up(env, 'a', 'a1')
    assert lease_of(env, 'kvm-a') == 'idle\n'
    with snapfs_env('host-b') as b:
        b.secondary = env.secondary
        b.make_volume('v', '64M', A)
        ref_a = env.make_reference('64M', A)
        before = set(chunk_files(env))
        b.mount_hanging('backup.repo.chunks_written', host='kvm-b')
        b.take('v', 's1')
        b.wait_for(lambda: 'backup.repo.chunks_written' in b.log_text(),
                   "B's backup to write its chunks")
        theirs = set(chunk_files(env)) - before
        assert len(theirs) == 2, theirs      # A's 4M at 0 and 2M at 40M: two chunks
        started = int(lease_of(env, 'kvm-b').split()[1])
        assert abs(started - time.time()) < 120
        # as if B's backup had begun two hours ago and written them one
        # hour ago: far older than any GC grace
        with open(os.path.join(env.secondary, '.leases', 'kvm-b'), 'w') as f:
            f.write('oldest %d\n' % (time.time() - 7200))
        age_chunks(env)
        take_backed_up(env, 'a', 'a2')
        ev = gc_after_a_delete(env, 'a', 'a1')
        assert '1 other host lease(s)' in ev['message'], ev
        assert all(os.path.exists(chunk_path(env, c)) for c in theirs), ev
        # the control: B's lease says idle, and the same GC collects them
        with open(os.path.join(env.secondary, '.leases', 'kvm-b'), 'w') as f:
            f.write('idle\n')
        age_chunks(env)
        take_backed_up(env, 'a', 'a3')
        gc_after_a_delete(env, 'a', 'a2')
        assert not any(os.path.exists(chunk_path(env, c)) for c in theirs)
        # B killed in its backup; mounted again, it says idle and backs up
        # again (its chunks are read and written anew)
        b.kill9()
        b.mount(host='kvm-b')
        b.wait_state('v', 's1', 'BackedUp')
        assert lease_of(env, 'kvm-b') == 'idle\n'
        assert qemu_img_compare(ref_a, b.backup_file('v', 's1')) == 0
        b.unmount()


def test_start_clears_only_its_own_temporary_files(env):
    """A mount's recovery removes its host's temporary files on SECONDARY
    (and untagged ones, from before host names) and leaves those of other
    hosts sharing it, which may be writing them now."""
    env.make_volume('v', '16M', [(0x11, 0, '1M')])
    env.mount(host='kvm-a')
    take_backed_up(env, 'v', 's1')
    env.unmount()
    tmp = os.path.join(env.secondary, '.tmp')
    vdir = os.path.join(env.secondary, 'volumes', 'v')
    u = str(uuid.uuid4())
    planted = {
        os.path.join(tmp, 'kvm-a@0123456789abcdef.chunk'): False,
        os.path.join(tmp, '0123456789abcdee.chunk'): False,
        os.path.join(tmp, 'kvm-b@0123456789abcdef.chunk'): True,
        os.path.join(tmp, 'kvm-a@%s.json' % u): False,
        os.path.join(tmp, '%s.qcow2' % u): False,
        os.path.join(tmp, 'kvm-b@%s.json' % u): True,
        os.path.join(tmp, 'kvm-b@%s.qcow2' % u): True,
        os.path.join(vdir, '.kvm-a@%s.index.00000001.tmp' % u): False,
        os.path.join(vdir, '.%s.index.00000002.tmp' % u): False,
        os.path.join(vdir, '.kvm-b@%s.index.00000003.tmp' % u): True,
    }
    for path in planted:
        with open(path, 'wb') as f:
            f.write(b'x' * 100)
    env.mount(host='kvm-a')
    for path, kept in planted.items():
        assert os.path.exists(path) == kept, (path, kept)
    assert env.state('v', 's1') == 'BackedUp'


@pytest.fixture(scope='module')
def rados_hosts():
    """kvm-a and kvm-b in network namespaces around a Ceph cluster on their
    bridge (netns_harness.py), for the drill over RADOS; started only by
    the first test that asks for it, skipped without Ceph, ip or nsenter."""
    import ceph_harness
    import netns_harness
    missing = ceph_harness.missing_prerequisites() + netns_harness.missing_prerequisites()
    if missing:
        pytest.skip('RADOS tests cannot run: ' + ', '.join(missing))
    with netns_harness.ceph_hosts(['kvm-a', 'kvm-b']) as hosts:
        yield hosts


@pytest.fixture(params=['posix', 'rados'])
def drill_hosts(request):
    """None: SECONDARY is a directory; else the rados_hosts (asked for
    here, before vmenv, so that the cluster's start does not count
    against the test's watchdog)."""
    if request.param == 'posix':
        return None
    return request.getfixturevalue('rados_hosts')


def test_disaster_drill_a_fresh_host_restores_and_boots_the_vm(drill_hosts, vmenv):
    """Issue 14's disaster drill: host A's VM wrote data, A backed its disk
    up, then A died (its SOURCE, PRIMARY and domain gone).  A fresh host
    B, sharing only SECONDARY, restores A's newest backup of the disk as a
    local volume, defines a VM on it, boots it, and the guest reads
    exactly what A's guest wrote.  SECONDARY is a directory (posix), or a
    namespace of a RADOS pool (rados) that each host, in a network
    namespace of its own, reaches over the network; A's whole SOURCE then
    goes, B never sees A's files."""
    a, hosts = vmenv, drill_hosts
    if hosts is not None:
        ns = 'drill-' + uuid.uuid4().hex[:8]
        hosts.place(a, 'kvm-a', ns)
    a.make_vm('web', ['web'], size='64M', writes={'web': [(0xa1, 0, '4M')]})
    ref = a.make_reference('64M', [(0xa1, 0, '4M'), (0xb2, '8M', '1M')])
    a.mount(host='kvm-a')
    a.vm_start('web')
    a.guest_write('web', 0, 0xb2, '8M', '1M')
    a.vm_force_stop('web')
    take_backed_up(a, 'web', 'older')
    a.vm_start('web')
    a.guest_write('web', 0, 0xb2, '8M', '1M')   # the same data: s2 is the newest
    a.vm_force_stop('web')
    take_backed_up(a, 'web', 'newest')
    a.unmount()
    # host A dies: its domain, SOURCE and PRIMARY are gone
    a.undefine_vm('web')
    if hosts is None:
        shutil.rmtree(a.primary)
    else:
        objs = hosts.cluster.objects(namespace=ns, prefix='volumes/web/')
        assert sorted(o.rsplit('.', 1)[1] for o in objs) == \
            ['index', 'index', 'json', 'json'], objs
        # all of SOURCE, its local copies of manifests (SOURCE/secondary) too
        shutil.rmtree(a.source)
    b = VmSnapfs('drill-b', driver=a.driver, libvirtd=a.libvirtd)
    try:
        if hosts is None:
            b.secondary = a.secondary
        else:
            hosts.place(b, 'kvm-b', ns)
        b.mount(host='kvm-b')
        assert b.listdir('backed-up', 'hosts', 'kvm-a', 'volumes', 'web') == [
            'newest.json', 'newest.qcow2', 'older.json', 'older.qcow2']
        n = len(b.read_events())
        assert restore(b, 'restore kvm-a/web/newest web') == 0
        wait_clone(b, 'web', 'newest', 'web', n)
        check_clone(b, 'web', ref, 64 * MiB)
        b.unmount()
        b.define_vm('web', ['web'])
        b.mount(host='kvm-b')
        b.vm_start('web')
        assert b.guest_reads('web', 0, 0xa1, 0, '4M')
        assert b.guest_reads('web', 0, 0xb2, '8M', '1M')
        assert b.guest_reads('web', 0, 0x00, '4M', '4M')
        b.vm_force_stop('web')
        assert b.volume_equals('web', ref)
        b.unmount()
    finally:
        b.cleanup()
