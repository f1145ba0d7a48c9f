"""`revert <snap>` in volumes/<vol>/control: synchronous, from primary
storage or from the backup on secondary storage; the snapshots taken after
it stay usable; EBUSY while the volume's VM runs; rmdir of the snapshot
during a revert (EBUSY), kill -9 there; bad input."""

import errno
import os

import pytest

from snapfs_harness import (MiB, check_backup, errno_name, event_mentions, events_of,
                            qemu_img_compare, rejected_events)
from vm_harness import DiskData, vmenv  # noqa: F401

A = [(0xa1, 0, '8M'), (0xa2, '40M', '4M')]
B = [(0xb1, 0, '2M'), (0xb3, '60M', '2M')]
C = [(0xc1, '16M', '4M'), (0xc2, '4M', '1M')]
D = [(0xd1, '24M', '2M'), (0xd2, '41M', '1M')]
E = [(0xe1, '32M', '2M')]


# ---- helpers ------------------------------------------------------------------------

def revert_jobs(env):
    return [j for j in env.jobs() if j.get('kind') == 'revert']


def revert_rejected(env, since, vol, snap, code):
    """The `rejected` events of a refused revert: the write to the control
    file (op write, path volumes/<vol>/control), or op revert on the
    snapshot's path as for VM reverts; either names the errno."""
    new = env.events_since(since)
    paths = ('volumes/%s/control' % vol, env.target(vol, snap))
    found = rejected_events(new, 'write', paths, code) + \
        rejected_events(new, 'revert', paths, code)
    assert found and all(ev.get('message') for ev in found), \
        'no rejected event with %s for the revert of %s/%s; new events: %s' % (
            errno_name(code), vol, snap, new)
    return found


def revert(env, vol, snap, where):
    """revert @snap; the write returns when it is done: one volume.revert
    event (ok) saying it came from @where ('primary' or 'secondary')."""
    n = len(env.read_events())
    env.control(vol, 'revert ' + snap)
    lines = [ln for ln in env.read('volumes', vol, 'control').splitlines()
             if ln.startswith('last:')]
    assert lines == ['last: revert %s: ok' % snap], lines
    evs = events_of(env.events_since(n), 'volume.revert', vol, snap)
    assert len(evs) == 1, 'volume.revert events: %s (all new: %s)' % (
        evs, env.events_since(n))
    ev = evs[0]
    assert ev.get('volume') == vol and ev.get('snapshot') == snap, ev
    assert ev.get('result') == 'ok', ev
    assert 'from %s storage' % where in ev.get('message', ''), \
        'expected "from %s storage" in %r' % (where, ev.get('message'))
    return ev


def holds(env, vol, reference):
    return qemu_img_compare(reference, env.volume_path(vol), force_share=True) == 0


def take_backed_up(env, vol, snap):
    env.take(vol, snap)
    env.wait_state(vol, snap, 'BackedUp')


# ---- the tests ------------------------------------------------------------------------

def test_revert_from_primary_storage(env):
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    ref_ab = env.make_reference('64M', A + B)
    env.mount(workers=2, keep_primary=4)
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 's2')
    env.write_volume('v', C)
    assert env.info('v', 's1')['on_primary'] is True, env.info('v', 's1')

    revert(env, 'v', 's1', 'primary')
    assert holds(env, 'v', ref_a), 'the volume does not hold s1 when the write returns'
    assert revert_jobs(env) == [] and env.primary_tmp_files() == []
    assert env.alerts() == {}
    # the snapshots themselves did not change
    check_backup(env, 'v', 's1', ref_a, 64 * MiB)
    check_backup(env, 'v', 's2', ref_ab, 64 * MiB)
    assert env.info('v', 's1')['on_primary'] is True
    # and a clean remount keeps the reverted volume
    env.remount()
    assert holds(env, 'v', ref_a)
    assert env.snapshots('v') == ['s1', 's2']


def test_revert_from_secondary_storage(env):
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    ref_ab = env.make_reference('64M', A + B)
    ref_ad = env.make_reference('64M', A + D)
    env.mount(workers=1, keep_primary=1)
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 's2')
    env.wait_for(lambda: env.info('v', 's1')['on_primary'] is False,
                 's1 to leave primary storage', timeout=30)
    env.write_volume('v', C)

    revert(env, 'v', 's1', 'secondary')
    assert holds(env, 'v', ref_a), 'the volume does not hold s1 when the write returns'
    assert revert_jobs(env) == [], env.jobs()
    assert env.primary_tmp_files() == [], env.primary_tmp_files()
    assert env.alerts() == {}
    assert env.snapshots('v') == ['s1', 's2']
    check_backup(env, 'v', 's1', ref_a, 64 * MiB)
    check_backup(env, 'v', 's2', ref_ab, 64 * MiB)

    # the reverted volume works as before: writes, and a snapshot of them
    env.write_volume('v', D)
    take_backed_up(env, 'v', 's3')
    check_backup(env, 'v', 's3', ref_ad, 64 * MiB)
    assert holds(env, 'v', ref_ad)
    # s2, taken after s1, still reverts; s3 has pushed it off primary storage
    env.wait_for(lambda: env.info('v', 's2')['on_primary'] is False,
                 's2 to leave primary storage', timeout=30)
    revert(env, 'v', 's2', 'secondary')
    assert holds(env, 'v', ref_ab)
    assert env.primary_tmp_files() == [] and env.no_jobs_left()


def test_snapshots_after_the_reverted_one_stay_usable(env):
    env.make_volume('v', '64M', A)
    refs = {'s1': env.make_reference('64M', A),
            's2': env.make_reference('64M', A + B),
            's3': env.make_reference('64M', A + B + C)}
    ref_ae = env.make_reference('64M', A + E)
    env.mount(workers=2, keep_primary=4)
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 's2')
    env.write_volume('v', C)
    take_backed_up(env, 'v', 's3')
    env.write_volume('v', D)

    revert(env, 'v', 's1', 'primary')
    assert holds(env, 'v', refs['s1'])
    # the later snapshots are all still there, as they were
    assert env.snapshots('v') == ['s1', 's2', 's3']
    for snap, ref in refs.items():
        info = env.info('v', snap)
        assert info['state'] == 'BackedUp' and info['on_secondary'] is True, info
        check_backup(env, 'v', snap, ref, 64 * MiB)
    # and each gives its data back
    for snap in ('s3', 's2', 's1'):
        revert(env, 'v', snap, 'primary')
        assert holds(env, 'v', refs[snap]), 'after the revert to %s' % snap

    # a snapshot taken after a revert: the reverted-to data and what came after
    env.write_volume('v', E)
    take_backed_up(env, 'v', 's4')
    check_backup(env, 'v', 's4', ref_ae, 64 * MiB)
    assert holds(env, 'v', ref_ae)
    # deleting one in the middle leaves the others revertible
    os.rmdir(env.snap_dir('v', 's2'))
    assert env.no_jobs_left()
    revert(env, 'v', 's3', 'primary')
    assert holds(env, 'v', refs['s3'])
    revert(env, 'v', 's4', 'primary')
    assert holds(env, 'v', ref_ae)
    # and deleting s1, where s3's line and s4's line part, leaves both whole
    os.rmdir(env.snap_dir('v', 's1'))
    assert env.no_jobs_left()
    assert env.snapshots('v') == ['s3', 's4']
    revert(env, 'v', 's3', 'primary')
    assert holds(env, 'v', refs['s3'])
    env.write_volume('v', D)
    revert(env, 'v', 's4', 'primary')
    assert holds(env, 'v', ref_ae)
    check_backup(env, 'v', 's3', refs['s3'], 64 * MiB)
    check_backup(env, 'v', 's4', ref_ae, 64 * MiB)
    assert env.primary_tmp_files() == [] and env.no_jobs_left()


def test_keep_primary_after_a_revert(env):
    # s1 <- s2, then a revert to s1 and s3 on top of it: s1's layer is the
    # base of two lines.  keep_primary=2 moves s1 off primary storage once
    # s3 is backed up; every snapshot must still give its own data.
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    ref_ab = env.make_reference('64M', A + B)
    ref_ae = env.make_reference('64M', A + E)
    ref_aed = env.make_reference('64M', A + E + D)
    env.mount(workers=1, keep_primary=2)
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 's2')
    env.write_volume('v', C)
    revert(env, 'v', 's1', 'primary')
    env.write_volume('v', E)
    take_backed_up(env, 'v', 's3')
    env.wait_for(lambda: env.info('v', 's1')['on_primary'] is False,
                 's1 to leave primary storage (keep_primary=2)', timeout=30)
    assert [env.info('v', s)['on_primary'] for s in ('s2', 's3')] == [True, True]
    assert env.no_jobs_left()
    env.write_volume('v', D)
    assert holds(env, 'v', ref_aed), 'pruning s1 changed the live volume'

    revert(env, 'v', 's2', 'primary')
    assert holds(env, 'v', ref_ab)
    revert(env, 'v', 's3', 'primary')
    assert holds(env, 'v', ref_ae)
    revert(env, 'v', 's1', 'secondary')
    assert holds(env, 'v', ref_a)
    for snap, ref in (('s1', ref_a), ('s2', ref_ab), ('s3', ref_ae)):
        check_backup(env, 'v', snap, ref, 64 * MiB)
    # after a remount, too
    env.remount()
    assert holds(env, 'v', ref_a)
    revert(env, 'v', 's3', 'primary')
    assert holds(env, 'v', ref_ae)
    assert env.primary_tmp_files() == [] and env.no_jobs_left()


def test_rmdir_during_a_revert_then_kill9(env):
    env.make_volume('v', '64M', A)
    ref_abc = env.make_reference('64M', A + B + C)
    env.mount_hanging('volume.revert.copied', workers=1, keep_primary=1)
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 's2')
    env.wait_for(lambda: env.info('v', 's1')['on_primary'] is False,
                 's1 to leave primary storage', timeout=30)
    env.write_volume('v', C)
    assert env.no_jobs_left()

    # the revert from secondary stops after its copy, before the volume changes
    th, result = env.in_background(lambda: env.control('v', 'revert s1'))
    env.wait_testpoint('volume.revert.copied')
    jobs = revert_jobs(env)
    assert len(jobs) == 1 and event_mentions(jobs[0], 'v', 's1'), \
        'no revert job naming v/s1 in jobs/: %s' % env.jobs()
    n = len(env.read_events())
    with pytest.raises(OSError) as ei:
        os.rmdir(env.snap_dir('v', 's1'))
    assert ei.value.errno == errno.EBUSY, 'rmdir: %s' % errno_name(ei.value.errno)
    assert rejected_events(env.events_since(n), 'rmdir', env.target('v', 's1'),
                           errno.EBUSY), env.events_since(n)
    assert env.snapshots('v') == ['s1', 's2']
    assert th.is_alive(), 'the revert returned at its test point: %s' % result

    leftovers = env.kill9()
    th.join(30)
    assert not th.is_alive(), 'the revert request did not end with the daemon'
    assert result.get('errno') not in (None, 0), 'the revert succeeded: %s' % result
    assert leftovers == [], 'processes of the killed daemon still run: %s' % leftovers

    env.mount(workers=1, keep_primary=1)
    assert holds(env, 'v', ref_abc), 'an interrupted revert changed the volume'
    assert env.primary_tmp_files() == [], env.primary_tmp_files()
    assert revert_jobs(env) == [], env.jobs()
    assert env.no_jobs_left()
    assert [env.state('v', s) for s in ('s1', 's2')] == ['BackedUp', 'BackedUp']
    os.rmdir(env.snap_dir('v', 's1'))
    assert env.snapshots('v') == ['s2']
    assert holds(env, 'v', ref_abc)


def test_revert_bad_input(env):
    env.make_volume('v', '64M', A)
    env.mount(workers=1)
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    ref_ab = env.make_reference('64M', A + B)

    cases = [
        ('revert nosuch', 'nosuch', errno.ENOENT),
        ('revert .hidden', '.hidden', errno.EINVAL),
        ('revert -x', '-x', errno.EINVAL),
        ('revert ' + 'a' * 129, 'a' * 129, errno.EINVAL),
        ('revert bad$name', 'bad$name', errno.EINVAL),
        ('revert', '', errno.EINVAL),
        ('revert s1 s1', 's1', errno.EINVAL),
    ]
    for command, snap, code in cases:
        n = len(env.read_events())
        got = env.control_errno('v', command)
        assert got == code, '%r: expected %s, got %s' % (
            command, errno_name(code), errno_name(got) if got else 'success')
        revert_rejected(env, n, 'v', snap, code)
        assert not events_of(env.events_since(n), 'volume.revert'), env.events_since(n)
        assert holds(env, 'v', ref_ab), '%r changed the volume' % command
        assert env.jobs() == [], (command, env.jobs())
    assert env.alive() and env.snapshots('v') == ['s1']
    assert env.state('v', 's1') == 'BackedUp'


def test_revert_refused_while_the_vm_runs(vmenv):
    env = vmenv
    env.make_vm('vm1', ['a'])
    env.mount(workers=1)
    d = DiskData(env, 'vm1')
    env.vm_start('vm1')
    d.write()
    env.take('a', 's1')                     # a volume snapshot of the running VM
    d.mark('s1')
    env.wait_state('a', 's1', 'BackedUp')
    d.write()

    n = len(env.read_events())
    assert env.control_errno('a', 'revert s1') == errno.EBUSY
    revert_rejected(env, n, 'a', 's1', errno.EBUSY)
    assert not events_of(env.events_since(n), 'volume.revert'), env.events_since(n)
    assert env.vm_state('vm1') == 'running'
    d.check(what='through QEMU after the refused revert')

    env.vm_force_stop('vm1')
    d.check(what='the volume file after the refused revert')
    revert(env, 'a', 's1', 'primary')
    d.restore('s1')
    d.check('s1', 'after the revert with the VM stopped')
    assert env.vm_state('vm1') == 'stopped'
