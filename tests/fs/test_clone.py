"""`clone <snap> <newvol>` in volumes/<vol>/control: the write returns once
the clone is queued; the new volume appears only when it is complete, as a
standalone copy of the snapshot (also of one only on secondary storage) that
is an ordinary volume from then on.  Many clones of one snapshot at once, a
queued clone holding its snapshot (rmdir EBUSY), primary storage full (alert,
nothing half made), kill -9 in the middle, and bad input."""

import errno
import os
import re
import threading

import pytest

from snapfs_harness import (MiB, check_backup, errno_name, events_of,
                            fill, qemu_img_compare, qemu_img_info, rejected_events, run)

A = [(0xa1, 0, '8M'), (0xa2, '40M', '4M')]
B = [(0xb1, 0, '2M'), (0xb3, '60M', '2M')]
C = [(0xc1, '16M', '4M')]


# ---- helpers ------------------------------------------------------------------------

def names_volume(ev, newvol):
    """The event's message names volumes/@newvol (not volumes/@newvol-2)."""
    return re.search(r'volumes/%s(?![A-Za-z0-9._-])' % re.escape(newvol),
                     ev.get('message') or '') is not None


def clone_events(events, type_, vol, snap, newvol):
    return [ev for ev in events if ev.get('type') == type_ and ev.get('volume') == vol
            and ev.get('snapshot') == snap and names_volume(ev, newvol)]


def clone_jobs(env, newvol=None):
    return [j for j in env.jobs() if j.get('kind') == 'clone'
            and (newvol is None or j.get('new_volume') == newvol)]


def wait_clone(env, vol, snap, newvol, since, timeout=90):
    """Wait for the clone.end of @vol/@snap -> @newvol; a clone.fail fails."""
    def check():
        new = env.events_since(since)
        fails = clone_events(new, 'clone.fail', vol, snap, newvol)
        assert not fails, 'the clone of %s/%s to %s failed: %s\nalerts: %s' % (
            vol, snap, newvol, fails, env.alerts())
        ends = clone_events(new, 'clone.end', vol, snap, newvol)
        return ends[0] if ends else None
    ev = env.wait_for(check, 'the clone of %s/%s to %s to end' % (vol, snap, newvol),
                      timeout)
    assert ev.get('result') == 'ok' and 'errno' not in ev, ev
    return ev


def check_clone(env, newvol, reference, virtual_size):
    """volumes/@newvol is listed and PRIMARY/@newvol.qcow2 is a standalone,
    clean qcow2 of @virtual_size holding exactly the data of @reference."""
    path = env.volume_path(newvol)
    assert newvol in env.listdir('volumes'), env.listdir('volumes')
    assert os.path.isfile(path) and not os.path.islink(path), path
    info = qemu_img_info(path, force_share=True)
    assert info.get('format') == 'qcow2', info
    assert 'backing-filename' not in info and 'full-backing-filename' not in info, \
        'the clone %s has a backing file (clones are full copies): %s' % (newvol, info)
    assert info.get('virtual-size') == virtual_size, info
    check = run(['qemu-img', 'check', '-U', path], check=False, timeout=300)
    assert check.returncode == 0, 'qemu-img check %s: %s%s' % (path, check.stdout,
                                                               check.stderr)
    assert qemu_img_compare(reference, path, force_share=True) == 0, \
        'the clone %s does not hold the data of its snapshot' % newvol
    vinfo = env.volume_info(newvol)
    assert vinfo.get('name') == newvol and vinfo.get('virtual_size') == virtual_size, vinfo


def check_queue_event(env, vol, snap, newvol, since):
    queued = clone_events(env.events_since(since), 'clone.queue', vol, snap, newvol)
    assert len(queued) == 1, 'expected one clone.queue event for %s/%s -> %s: %s' % (
        vol, snap, newvol, env.events_since(since))
    assert queued[0].get('result') == 'ok', queued[0]


def last_result(env, vol):
    lines = [ln for ln in env.read('volumes', vol, 'control').splitlines()
             if ln.startswith('last:')]
    assert len(lines) == 1, env.read('volumes', vol, 'control')
    return lines[0]


# ---- the tests ------------------------------------------------------------------------

def test_clone_is_a_standalone_copy_of_the_snapshot(env):
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    ref_ab = env.make_reference('64M', A + B)
    env.mount(workers=2)
    env.take('v', 's1')
    env.write_volume('v', B)                # the live volume moves on

    # clone right away (the backup of s1 may still run: they share the pool)
    n = len(env.read_events())
    env.control('v', 'clone s1 c1')
    assert last_result(env, 'v') == 'last: clone s1 c1: ok'
    check_queue_event(env, 'v', 's1', 'c1', n)
    end = wait_clone(env, 'v', 's1', 'c1', n)
    assert end.get('volume') == 'v' and end.get('snapshot') == 's1', end
    check_clone(env, 'c1', ref_a, 64 * MiB)
    env.wait_for(lambda: clone_jobs(env) == [], 'the clone job to leave jobs/', timeout=10)
    assert env.primary_tmp_files() == [], env.primary_tmp_files()
    assert not events_of(env.read_events(), 'clone.fail'), env.read_events()
    assert env.alerts() == {}, env.alerts()
    # the source is as it was
    assert qemu_img_compare(ref_ab, env.volume_path('v'), force_share=True) == 0
    env.wait_state('v', 's1', 'BackedUp')
    check_backup(env, 'v', 's1', ref_a, 64 * MiB)

    # an ordinary volume: written, snapshotted, backed up, cloned again
    env.write_volume('c1', C)
    ref_ac = env.make_reference('64M', A + C)
    env.take('c1', 't1')
    env.wait_state('c1', 't1', 'BackedUp')
    check_backup(env, 'c1', 't1', ref_ac, 64 * MiB)
    n = len(env.read_events())
    env.control('c1', 'clone t1 c2')
    wait_clone(env, 'c1', 't1', 'c2', n)
    check_clone(env, 'c2', ref_ac, 64 * MiB)
    # writing the clone did not touch its source, nor the source's snapshot
    assert qemu_img_compare(ref_ab, env.volume_path('v'), force_share=True) == 0
    n = len(env.read_events())
    env.control('v', 'clone s1 c3')
    wait_clone(env, 'v', 's1', 'c3', n)
    check_clone(env, 'c3', ref_a, 64 * MiB)

    # full copies: removing a source (its snapshot, then its file) leaves
    # the clones whole, and removing a clone leaves its source whole
    # (after each rmdir, its layer is folded into the volume by a merge job)
    os.rmdir(env.snap_dir('c1', 't1'))
    assert env.no_jobs_left()
    os.unlink(env.volume_path('c1'))
    check_clone(env, 'c2', ref_ac, 64 * MiB)
    os.rmdir(env.snap_dir('v', 's1'))
    assert env.no_jobs_left()
    os.unlink(env.volume_path('v'))
    check_clone(env, 'c3', ref_a, 64 * MiB)
    os.unlink(env.volume_path('c3'))
    check_clone(env, 'c2', ref_ac, 64 * MiB)
    assert env.no_jobs_left()


def test_a_removed_volume_name_can_be_cloned_to_again(env):
    # A clone whose file was removed (no snapshots left) is no volume any
    # more: not listed, volumes/<name> gives ENOENT.  Its name is free.
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    env.mount(workers=1)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    n = len(env.read_events())
    env.control('v', 'clone s1 c1')
    wait_clone(env, 'v', 's1', 'c1', n)
    check_clone(env, 'c1', ref_a, 64 * MiB)
    os.unlink(env.volume_path('c1'))
    # the kernel forgets volumes/c1 once inotify has told snapfs (watch.c,
    # inval.c): soon, not at the unlink's return (TSan once saw it there)
    env.wait_for(lambda: 'c1' not in env.listdir('volumes') and
                 not os.path.exists(env.vol_dir('c1')),
                 'volumes/c1 to go after its file was removed', timeout=5)

    n = len(env.read_events())
    got = env.control_errno('v', 'clone s1 c1')
    assert got == 0, 'clone into the name of a removed volume: %s (%s)' % (
        errno_name(got), [ev.get('message') for ev in env.events_since(n)
                          if ev.get('type') == 'rejected'])
    wait_clone(env, 'v', 's1', 'c1', n)
    check_clone(env, 'c1', ref_a, 64 * MiB)


def test_clone_waits_in_the_queue_and_holds_its_snapshot(env):
    env.make_volume('blocker', '2G', [(0x5a, 0, '1G')])
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    env.mount(workers=1)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    env.start_blocker()

    # the write returns while the clone waits for the only worker
    n = len(env.read_events())
    env.control('v', 'clone s1 c1')
    assert last_result(env, 'v') == 'last: clone s1 c1: ok'
    check_queue_event(env, 'v', 's1', 'c1', n)
    jobs = clone_jobs(env, 'c1')
    assert len(jobs) == 1, env.jobs()
    job = jobs[0]
    assert job.get('kind') == 'clone' and job.get('state') == 'queued', job
    assert job.get('target') == 'volumes/v/snapshots/s1', job
    assert job.get('new_volume') == 'c1', job
    assert str(job.get('id')) == job['_file'], job
    for field in ('bytes_done', 'bytes_total'):
        assert isinstance(job.get(field), int), job
    # nothing of the new volume is visible before it is complete
    assert 'c1' not in env.listdir('volumes') and not os.path.exists(env.volume_path('c1'))
    with pytest.raises(FileNotFoundError):
        env.volume_info('c1')

    # another clone of the same snapshot queues as well ...
    env.control('v', 'clone s1 c2')
    assert len(clone_jobs(env, 'c2')) == 1, env.jobs()
    # ... but not one to a name a queued clone will make
    n = len(env.read_events())
    assert env.control_errno('v', 'clone s1 c1') == errno.EEXIST
    assert rejected_events(env.events_since(n), 'write', 'volumes/v/control', errno.EEXIST), \
        env.events_since(n)
    assert len(clone_jobs(env, 'c1')) == 1, env.jobs()

    # the snapshot cannot be deleted while clones wait to read it
    n = len(env.read_events())
    with pytest.raises(OSError) as ei:
        os.rmdir(env.snap_dir('v', 's1'))
    assert ei.value.errno == errno.EBUSY, 'rmdir: %s' % errno_name(ei.value.errno)
    assert rejected_events(env.events_since(n), 'rmdir', env.target('v', 's1'),
                           errno.EBUSY), env.events_since(n)
    assert env.snapshots('v') == ['s1'] and env.state('v', 's1') == 'BackedUp'
    blocker = env.job_for('blocker', 'b')
    assert blocker is not None and blocker['state'] == 'running', \
        'the 1 GiB copy ended too soon: the clones did not stay queued'
    assert [j['state'] for j in clone_jobs(env)] == ['queued', 'queued'], env.jobs()

    # a clean unmount keeps them: after the remount they are still due
    env.remount()
    due = {j.get('new_volume') for j in clone_jobs(env)}
    ended = {c for c in ('c1', 'c2')
             if clone_events(env.read_events(), 'clone.end', 'v', 's1', c)}
    assert due | ended == {'c1', 'c2'}, 'clones lost by a remount: jobs %s, ended %s' % (
        env.jobs(), ended)

    # once the blocker's copy ends they run, and then s1 can go
    for newvol in ('c1', 'c2'):
        wait_clone(env, 'v', 's1', newvol, 0, timeout=180)
        check_clone(env, newvol, ref_a, 64 * MiB)
    env.wait_for(lambda: clone_jobs(env) == [], 'the clone jobs to leave jobs/', timeout=10)
    os.rmdir(env.snap_dir('v', 's1'))
    assert env.snapshots('v') == []
    for newvol in ('c1', 'c2'):
        check_clone(env, newvol, ref_a, 64 * MiB)
    assert env.primary_tmp_files() == [] and env.no_jobs_left()


def test_eight_clones_of_one_snapshot_at_once(env):
    data = [(0xd1, 0, '24M'), (0xd2, '200M', '8M')]
    env.make_volume('v', '256M', data)
    ref = env.make_reference('256M', data)
    env.mount(workers=2)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    env.write_volume('v', [(0xd3, 0, '4M')])

    names = ['c%d' % i for i in range(1, 9)]
    barrier = threading.Barrier(len(names))
    results = {}

    def request(newvol):
        barrier.wait(timeout=30)
        try:
            env.control('v', 'clone s1 %s' % newvol)
            results[newvol] = 0
        except OSError as e:
            results[newvol] = e.errno

    n = len(env.read_events())
    threads = [threading.Thread(target=request, args=(c,), daemon=True) for c in names]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads), 'a clone request did not return'
    assert results == {c: 0 for c in names}, \
        'refused: %s' % {c: errno_name(e) for c, e in results.items() if e}

    for newvol in names:
        check_queue_event(env, 'v', 's1', newvol, n)
    for newvol in names:
        wait_clone(env, 'v', 's1', newvol, n, timeout=120)
    for newvol in names:
        check_clone(env, newvol, ref, 256 * MiB)
    new = env.events_since(n)
    assert not [ev for ev in new if ev.get('type') == 'clone.fail'], new
    assert env.alerts() == {}, env.alerts()
    env.wait_for(lambda: clone_jobs(env) == [], 'the clone jobs to leave jobs/', timeout=10)
    assert env.primary_tmp_files() == [], env.primary_tmp_files()
    assert set(names) <= set(env.listdir('volumes')), env.listdir('volumes')
    os.rmdir(env.snap_dir('v', 's1'))


def test_clone_of_a_snapshot_only_on_secondary_storage(env):
    env.make_volume('v', '128M', A)
    ref_a = env.make_reference('128M', A)
    ref_ab = env.make_reference('128M', A + B)
    env.mount(workers=1, keep_primary=1)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    env.write_volume('v', B)
    env.take('v', 's2')
    env.wait_state('v', 's2', 'BackedUp')
    env.wait_for(lambda: not env.info('v', 's1')['on_primary'],
                 's1 to leave primary storage', timeout=30)
    assert env.info('v', 's1')['on_secondary'] is True
    env.write_volume('v', C)

    n = len(env.read_events())
    env.control('v', 'clone s1 c1')
    env.control('v', 'clone s2 c2')
    wait_clone(env, 'v', 's1', 'c1', n)
    wait_clone(env, 'v', 's2', 'c2', n)
    check_clone(env, 'c1', ref_a, 128 * MiB)
    check_clone(env, 'c2', ref_ab, 128 * MiB)
    assert env.primary_tmp_files() == [] and env.no_jobs_left()
    # the snapshots are as they were
    info = env.info('v', 's1')
    assert info['state'] == 'BackedUp' and info['on_primary'] is False, info
    check_backup(env, 'v', 's1', ref_a, 128 * MiB)
    check_backup(env, 'v', 's2', ref_ab, 128 * MiB)
    os.rmdir(env.snap_dir('v', 's1'))
    check_clone(env, 'c1', ref_a, 128 * MiB)


def test_clone_fails_when_primary_is_full_then_succeeds(env):
    fs = env.tmpfs('primtmp', '64m')
    env.primary = os.path.join(fs, 'primary')
    os.mkdir(env.primary)
    data = [(0x51, 0, '16M')]
    env.make_volume('v', '64M', data)
    ref = env.make_reference('64M', data)
    env.mount(workers=1, min_free=0)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    filler = fill(os.path.join(fs, 'filler'), '4M')    # beside primary, same fs

    n = len(env.read_events())
    env.control('v', 'clone s1 c1')                     # queued: the write succeeds
    fail = env.wait_event(lambda ev: clone_events([ev], 'clone.fail', 'v', 's1', 'c1'),
                          since=n, what='the clone.fail of v/s1 -> c1')
    assert fail.get('result') == 'error' and fail.get('errno') == 'ENOSPC', fail
    assert not clone_events(env.events_since(n), 'clone.end', 'v', 's1', 'c1')
    alerts = env.wait_for(lambda: {k: a for k, a in env.alerts().items()
                                   if a.get('kind') == 'clone'},
                          'an alert for the clone', timeout=10)
    assert len(alerts) == 1, alerts
    (aid, alert), = alerts.items()
    for field in ('kind', 'volume', 'snapshot', 'new_volume', 'errno', 'message'):
        assert field in alert, 'alert lacks %r: %s' % (field, alert)
    assert (alert['volume'], alert['snapshot'], alert['new_volume']) == ('v', 's1', 'c1'), \
        alert
    assert alert['errno'] == 'ENOSPC' and alert['message'], alert

    # nothing half made
    env.wait_for(lambda: clone_jobs(env) == [], 'the failed clone to leave jobs/',
                 timeout=10)
    assert not os.path.exists(env.volume_path('c1'))
    assert 'c1' not in env.listdir('volumes') and not os.path.exists(env.vol_dir('c1'))
    assert env.primary_tmp_files() == [], env.primary_tmp_files()
    assert env.primary_volume_files() == ['v.qcow2'], env.primary_volume_files()
    # the source is untouched
    assert qemu_img_compare(ref, env.volume_path('v'), force_share=True) == 0
    assert env.state('v', 's1') == 'BackedUp' and env.snapshots('v') == ['s1']

    # with room again the same command works
    os.unlink(filler)
    n = len(env.read_events())
    env.control('v', 'clone s1 c1')
    assert last_result(env, 'v') == 'last: clone s1 c1: ok'
    wait_clone(env, 'v', 's1', 'c1', n)
    check_clone(env, 'c1', ref, 64 * MiB)
    assert env.primary_tmp_files() == [] and env.no_jobs_left()
    # rm acknowledges the alert of the failed attempt (if it is still there)
    if aid in env.alerts():
        os.unlink(env.p('alerts', aid))
    assert aid not in env.alerts(), env.alerts()


def test_kill9_during_clones_then_remount(env):
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    env.mount_hanging('clone.converted', workers=1)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    env.write_volume('v', B)
    names = ('c1', 'c2', 'c3')

    n = len(env.read_events())
    for newvol in names:
        env.control('v', 'clone s1 %s' % newvol)
    env.wait_testpoint('clone.converted')
    # one clone ran its copy and stops before publishing it; two wait
    jobs = clone_jobs(env)
    assert sorted(j.get('state') for j in jobs) == ['queued', 'queued', 'running'], jobs
    assert sorted(j.get('new_volume') for j in jobs) == list(names), jobs
    for job in jobs:
        assert job.get('target') == 'volumes/v/snapshots/s1', job
        assert isinstance(job.get('bytes_done'), int) and \
            isinstance(job.get('bytes_total'), int), job
    assert env.primary_tmp_files(), \
        'no copy in PRIMARY/.snapfs/.tmp at clone.converted (where is it made?)'
    assert not set(names) & set(env.listdir('volumes')), env.listdir('volumes')
    assert not [c for c in names if os.path.exists(env.volume_path(c))]
    # a running clone holds its snapshot as a queued one does
    m = len(env.read_events())
    with pytest.raises(OSError) as ei:
        os.rmdir(env.snap_dir('v', 's1'))
    assert ei.value.errno == errno.EBUSY, 'rmdir: %s' % errno_name(ei.value.errno)
    assert rejected_events(env.events_since(m), 'rmdir', env.target('v', 's1'),
                           errno.EBUSY), env.events_since(m)

    leftovers = env.kill9()
    assert leftovers == [], 'processes of the killed daemon still run: %s' % leftovers
    env.mount(workers=1)

    # each clone completes; a volume is listed only once it is complete
    complete = set()

    def all_done():
        for newvol in set(names) & set(env.listdir('volumes')) - complete:
            assert qemu_img_compare(ref_a, env.volume_path(newvol), force_share=True) == 0, \
                'volumes/%s was listed before it was complete' % newvol
            complete.add(newvol)
        new = env.events_since(n)
        return all(clone_events(new, 'clone.end', 'v', 's1', c) for c in names)
    env.wait_for(all_done, 'the three clones to complete after the remount', timeout=120)
    for newvol in names:
        check_clone(env, newvol, ref_a, 64 * MiB)
    assert [a for a in env.alerts().values() if a.get('kind') == 'clone'] == [], env.alerts()
    env.wait_for(lambda: clone_jobs(env) == [], 'the clone jobs to leave jobs/', timeout=10)
    assert env.primary_tmp_files() == [], env.primary_tmp_files()
    assert sorted(env.primary_volume_files()) == ['c1.qcow2', 'c2.qcow2', 'c3.qcow2',
                                                  'v.qcow2'], env.primary_volume_files()
    os.rmdir(env.snap_dir('v', 's1'))
    assert env.snapshots('v') == [] and env.no_jobs_left()
    for newvol in names:
        check_clone(env, newvol, ref_a, 64 * MiB)


def test_clone_bad_input(env):
    env.make_volume('v', '64M', A)
    env.make_volume('w', '64M')
    ref_a = env.make_reference('64M', A)
    env.mount(workers=1)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    volumes = env.listdir('volumes')
    files = env.primary_volume_files()

    cases = [
        ('v', 'clone nosuch c1', errno.ENOENT),     # unknown snapshot
        ('w', 'clone s1 c1', errno.ENOENT),         # s1 is v's, not w's
        ('v', 'clone s1 w', errno.EEXIST),          # a volume of that name exists
        ('v', 'clone s1 v', errno.EEXIST),          # onto itself
        ('v', 'clone s1 .hidden', errno.EINVAL),
        ('v', 'clone s1 -x', errno.EINVAL),
        ('v', 'clone s1 ' + 'a' * 129, errno.EINVAL),
        ('v', 'clone s1 bad$name', errno.EINVAL),
        ('v', 'clone s1 caf\u00e9', errno.EINVAL),
        ('v', 'clone .x c1', errno.EINVAL),          # a bad snapshot name
        ('v', 'clone s1', errno.EINVAL),             # missing argument
        ('v', 'clone', errno.EINVAL),
        ('v', 'clone s1 c1 c2', errno.EINVAL),       # one argument too many
    ]
    for vol, command, code in cases:
        n = len(env.read_events())
        got = env.control_errno(vol, command)
        assert got == code, '%r on %s: expected %s, got %s' % (
            command, vol, errno_name(code), errno_name(got) if got else 'success')
        new = env.events_since(n)
        rej = rejected_events(new, 'write', 'volumes/%s/control' % vol, code)
        assert rej and all(ev.get('message') for ev in rej), \
            '%r: no rejected event (op write, path volumes/%s/control, %s); new events: %s' \
            % (command, vol, errno_name(code), new)
        assert not [ev for ev in new if ev.get('type', '').startswith('clone.')], new
        assert clone_jobs(env) == [], (command, env.jobs())
        assert env.listdir('volumes') == volumes, (command, env.listdir('volumes'))
        assert env.primary_volume_files() == files, (command, env.primary_volume_files())

    # a volume that does not exist: the kernel's lookup of volumes/nosuch
    # fails before snapfs sees a write (lookups write no events)
    assert env.control_errno('nosuch', 'clone s1 c1') == errno.ENOENT
    assert 'nosuch' not in env.listdir('volumes')

    # nothing changed, and the names that are good work
    assert env.alive() and env.primary_tmp_files() == []
    assert qemu_img_compare(ref_a, env.volume_path('v'), force_share=True) == 0
    n = len(env.read_events())
    for good in ('a' * 128, 'A.b_c-9'):
        env.control('v', 'clone s1 %s' % good)
    for good in ('a' * 128, 'A.b_c-9'):
        wait_clone(env, 'v', 's1', good, n)
        check_clone(env, good, ref_a, 64 * MiB)
