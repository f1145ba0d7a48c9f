"""Full storage (issue 6): primary and secondary storage running out of
space in the middle of an operation, on small tmpfs file systems the tests
mount.  Nothing is lost, every failure is clear (ENOSPC on mkdir and
revert, clone.fail / BackupFailed with an alert for the queued copies),
nothing half made is left behind, and everything works again once space
is freed.

What test_errors.py (min_free guard alone), test_clone.py (one clone
running out) and test_backup.py (one backup running out, retries) cover
is not repeated; these add: a take whose overlay cannot be written, a
revert from secondary storage running out, several clones and several
backups running out at once, a layer merge running out, and kill -9
while secondary storage is full (a crash's partial copy must not keep it
full).

After each scenario the same audit runs (invariants()): catalog
integrity_check ok, nothing in a transitional state, no partial files in
either .tmp directory or half-made overlays, every volume, layer and
backup passes `qemu-img check`, and every BackedUp snapshot has its
backup under backed-up/.
"""

import errno
import os
import sqlite3

import snapfs_harness as H
from snapfs_harness import (MiB, check_backup, errno_name, events_of, fill,
                            qemu_img_compare, rejected_events, run)

A = [(0xa1, 0, '8M'), (0xa2, '40M', '4M')]
B = [(0xb1, '8M', '4M')]


# ---- the audit -----------------------------------------------------------------------------

def catalog(env, sql):
    db = sqlite3.connect('file:%s?mode=ro' % os.path.join(env.source, 'catalog.db'),
                         uri=True, timeout=30)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def settle(env, timeout=90):
    """Wait until no job is queued or running (waiting ones, failed copies
    waiting for their automatic retry, may stay)."""
    env.wait_for(lambda: all(j.get('state') == 'waiting' for j in env.jobs()),
                 'every job to end or wait for its retry', timeout=timeout)


def qemu_check(path):
    proc = run(['qemu-img', 'check', '-U', path], check=False, timeout=300)
    return None if proc.returncode == 0 else '%s: qemu-img check: %s%s' % (
        path, proc.stdout[-500:], proc.stderr[-500:])


def invariants(env):
    """The audit after a scenario (the daemon running, jobs settled)."""
    settle(env)
    problems = []
    rows = catalog(env, 'PRAGMA integrity_check')
    if rows != [('ok',)]:
        problems.append('integrity_check: %s' % rows)
    # nothing transitional: snapshots Creating (0) / Destroying (4), layers
    # creating (0) / merging (2), VM snapshots other than Ready (1), jobs
    # running (1) or reverts (kind 3)
    for what, sql in (
            ('snapshot', 'SELECT name, state FROM snapshots WHERE state IN (0, 4)'),
            ('layer', 'SELECT uuid, state FROM layers WHERE state IN (0, 2)'),
            ('VM snapshot', 'SELECT name, state FROM vm_snapshots WHERE state NOT IN (1)'),
            ('job', 'SELECT id, kind, state FROM jobs WHERE state = 1 OR kind = 3')):
        found = catalog(env, sql)
        if found:
            problems.append('%s rows in a transitional state: %s' % (what, found))
    for vol in env.listdir('volumes'):
        for snap in env.snapshots(vol):
            st = env.state(vol, snap)
            if st not in ('BackingUp', 'BackedUp', 'BackupFailed'):
                problems.append('%s/%s is %s' % (vol, snap, st))
            if st == 'BackedUp' and not os.path.isfile(env.backup_file(vol, snap)):
                problems.append('%s/%s is BackedUp without backed-up/ file' % (vol, snap))
    # no partial copies, no half-made overlays
    if env.secondary_tmp_files():
        problems.append('SECONDARY/.tmp holds %s' % env.secondary_tmp_files())
    if env.primary_tmp_files():
        problems.append('PRIMARY/.snapfs/.tmp holds %s' % env.primary_tmp_files())
    layers = os.path.join(env.primary, '.snapfs')
    for dirpath, _, names in os.walk(layers):
        if os.path.relpath(dirpath, layers).startswith('.tmp'):
            continue
        for name in names:
            path = os.path.join(dirpath, name)
            if name.startswith('.'):
                problems.append('half-made file %s' % path)
            elif name.endswith('.qcow2'):
                problems.append(qemu_check(path))
    for name in env.primary_volume_files():
        problems.append(qemu_check(os.path.join(env.primary, name)))
    for rel in env.secondary_files():
        if rel.endswith('.qcow2'):
            problems.append(qemu_check(os.path.join(env.secondary, rel)))
        elif rel.endswith('.index') and env.repository_mode() == 'on':
            vol, name = rel.split('/')[1], os.path.basename(rel)[:-len('.index')]
            problems += H.index_problems(env, vol, name)
    problems = [p for p in problems if p]
    assert not problems, 'audit:\n' + '\n'.join(problems)


def small_fs(env, name, size):
    """A tmpfs of @size with the storage directory @name in it; returns the
    tmpfs path (fill beside the storage directory, on the same fs)."""
    fs = env.tmpfs(name + 'fs', size)
    path = os.path.join(fs, name)
    os.mkdir(path)
    setattr(env, name, path)
    return fs


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def listing(path):
    """{name: (size, mtime)} of a directory, for 'nothing changed' checks."""
    out = {}
    for name in sorted(os.listdir(path)):
        st = os.lstat(os.path.join(path, name))
        out[name] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


# ---- primary storage ---------------------------------------------------------------------------

def test_take_when_primary_is_full(env):
    fs = small_fs(env, 'primary', '64m')
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    ref_ab = env.make_reference('64M', A + B)
    env.mount(workers=1, min_free=0)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    env.write_volume('v', B)
    ldir = os.path.join(env.primary, '.snapfs', 'v')
    layers = listing(ldir)
    vol_ino = os.stat(env.volume_path('v')).st_ino

    # no room for the new overlay: the take fails when qemu-img cannot write
    # it (min_free=0: no guard), ENOSPC with an event, nothing half made
    filler = fill(os.path.join(fs, 'filler'), '16k')
    n = len(env.read_events())
    err = 0
    try:
        env.take('v', 's2')
    except OSError as e:
        err = e.errno
    assert err == errno.ENOSPC, 'mkdir with primary full: %s' % (errno_name(err) if err else
                                                                  'success')
    rej = rejected_events(env.events_since(n), 'mkdir', env.target('v', 's2'), errno.ENOSPC)
    assert rej and rej[0].get('message'), env.events_since(n)
    assert env.snapshots('v') == ['s1'] and env.state('v', 's2') is None
    assert listing(ldir) == layers, 'the failed take left %s' % os.listdir(ldir)
    assert os.stat(env.volume_path('v')).st_ino == vol_ino, 'the volume file was replaced'
    assert qemu_img_compare(ref_ab, env.volume_path('v'), force_share=True) == 0
    assert catalog(env, 'SELECT name FROM snapshots') == [('s1',)]
    assert env.alive()
    invariants(env)

    # the guard: with min_free above what is free, ENOSPC before anything
    # is tried, the event saying so
    env.remount(min_free=8 * MiB)
    n = len(env.read_events())
    assert os.path.exists(filler)
    try:
        env.take('v', 's2')
        err = 0
    except OSError as e:
        err = e.errno
    assert err == errno.ENOSPC, errno_name(err) if err else 'success'
    rej = rejected_events(env.events_since(n), 'mkdir', env.target('v', 's2'), errno.ENOSPC)
    assert rej and 'min_free' in rej[0].get('message', ''), env.events_since(n)
    assert listing(ldir) == layers

    # room again: the same mkdir works, and takes what the volume holds
    os.unlink(filler)
    env.take('v', 's2')
    env.wait_state('v', 's2', 'BackedUp')
    check_backup(env, 'v', 's2', ref_ab, 64 * MiB)
    check_backup(env, 'v', 's1', ref_a, 64 * MiB)
    invariants(env)


def clone_events(env, since, type_, newvol):
    return [ev for ev in env.events_since(since) if ev.get('type') == type_
            and 'volumes/%s' % newvol in (ev.get('message') or '')]


def test_several_clones_when_primary_fills(env):
    fs = small_fs(env, 'primary', '96m')
    data = [(0x51, 0, '16M')]
    env.make_volume('v', '64M', data)
    ref = env.make_reference('64M', data)
    env.mount(workers=2, min_free=0)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    filler = fill(os.path.join(fs, 'filler'), '6M')
    names = ('c1', 'c2', 'c3')

    # three clones at once (two run, one waits), with room for none: each
    # fails on its own, with its clone.fail and alert, and leaves nothing
    n = len(env.read_events())
    for c in names:
        env.control('v', 'clone s1 %s' % c)
    env.wait_for(lambda: all(clone_events(env, n, 'clone.fail', c) for c in names),
                 'the three clones to fail', timeout=60)
    for c in names:
        fail = clone_events(env, n, 'clone.fail', c)
        assert len(fail) == 1 and fail[0].get('errno') == 'ENOSPC', fail
        assert not clone_events(env, n, 'clone.end', c)
    alerts = env.wait_for(lambda: (lambda a: a if len(a) == 3 else None)(
        {a['new_volume']: a for a in env.alerts().values() if a.get('kind') == 'clone'}),
        'an alert per clone', timeout=10)
    assert sorted(alerts) == list(names), alerts
    assert all(a['errno'] == 'ENOSPC' for a in alerts.values()), alerts
    assert env.listdir('volumes') == ['v']
    assert env.primary_volume_files() == ['v.qcow2']
    assert env.primary_tmp_files() == []
    assert [j for j in env.jobs() if j.get('kind') == 'clone'] == []
    # the source is untouched and not held: rmdir of s1 would not be EBUSY
    assert qemu_img_compare(ref, env.volume_path('v'), force_share=True) == 0
    assert catalog(env, 'SELECT COUNT(*) FROM jobs WHERE kind = 2') == [(0,)]
    invariants(env)

    # room again: the same commands work
    os.unlink(filler)
    n = len(env.read_events())
    for c in names:
        env.control('v', 'clone s1 %s' % c)
    env.wait_for(lambda: all(clone_events(env, n, 'clone.end', c) for c in names),
                 'the three clones to complete', timeout=90)
    assert not [c for c in names if clone_events(env, n, 'clone.fail', c)]
    for c in names:
        assert qemu_img_compare(ref, env.volume_path(c), force_share=True) == 0, c
    assert env.listdir('volumes') == ['c1', 'c2', 'c3', 'v']
    for aid in list(env.alerts()):
        os.unlink(env.p('alerts', aid))
    invariants(env)


def test_revert_from_secondary_when_primary_fills(env):
    fs = small_fs(env, 'primary', '64m')
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    ref_abc = env.make_reference('64M', A + B + [(0xc1, '20M', '4M')])
    env.mount(workers=1, min_free=0, keep_primary=1)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    env.write_volume('v', B)
    env.take('v', 's2')
    env.wait_state('v', 's2', 'BackedUp')
    env.wait_for(lambda: env.info('v', 's1')['on_primary'] is False,
                 's1 to leave primary storage', timeout=30)
    env.write_volume('v', [(0xc1, '20M', '4M')])
    vol_ino = os.stat(env.volume_path('v')).st_ino

    # the copy back from secondary storage runs out of room: ENOSPC, the
    # volume unchanged, no partial copy, no revert job left holding s1.
    # The merge that folds s1's released layer writes into primary storage:
    # it must be done before the free space is measured and filled (seen in
    # a clean-clone CI run: the filler's fallocate got ENOSPC itself)
    assert env.no_jobs_left()
    filler = fill(os.path.join(fs, 'filler'), '2M')
    n = len(env.read_events())
    err = env.control_errno('v', 'revert s1')
    assert err == errno.ENOSPC, errno_name(err) if err else 'success'
    evs = events_of(env.events_since(n), 'volume.revert', 'v', 's1')
    assert evs and evs[-1].get('result') == 'error' and evs[-1].get('errno') == 'ENOSPC', \
        env.events_since(n)
    assert 'unchanged' in evs[-1].get('message', ''), evs[-1]
    assert os.stat(env.volume_path('v')).st_ino == vol_ino
    assert qemu_img_compare(ref_abc, env.volume_path('v'), force_share=True) == 0
    assert env.primary_tmp_files() == []
    assert [j for j in env.jobs() if j.get('kind') == 'revert'] == []
    last = [ln for ln in env.read('volumes', 'v', 'control').splitlines()
            if ln.startswith('last:')]
    assert last and 'ENOSPC' in last[0], last
    assert env.snapshots('v') == ['s1', 's2']
    invariants(env)

    # room again: the revert works
    os.unlink(filler)
    env.control('v', 'revert s1')
    assert qemu_img_compare(ref_a, env.volume_path('v'), force_share=True) == 0
    check_backup(env, 'v', 's1', ref_a, 64 * MiB)
    invariants(env)


def test_layer_merge_when_primary_fills(env):
    fs = small_fs(env, 'primary', '64m')
    data_a, data_b = [(0x71, 0, '12M')], [(0x72, '16M', '16M')]
    env.make_volume('v', '64M', data_a)
    ref_a, ref_ab = env.make_reference('64M', data_a), env.make_reference('64M', data_a + data_b)
    env.mount(workers=1, min_free=0, keep_primary=1)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    env.write_volume('v', data_b)

    # s2 pushes s1 off primary storage: folding s1's layer (a commit of
    # s2's 16 MiB into it) runs out of room.  It fails with an event and
    # leaves every layer as it was: the volume and s2 read as before.
    filler = fill(os.path.join(fs, 'filler'), '3M')
    n = len(env.read_events())
    env.take('v', 's2')
    env.wait_state('v', 's2', 'BackedUp')
    fail = env.wait_event(lambda ev: ev.get('type') == 'layer.merge' and
                          ev.get('result') == 'error', since=n,
                          what='the merge to fail', timeout=30)
    assert fail.get('errno') == 'ENOSPC', fail
    assert env.info('v', 's1')['on_primary'] is False
    assert qemu_img_compare(ref_ab, env.volume_path('v'), force_share=True) == 0
    check_backup(env, 'v', 's1', ref_a, 64 * MiB)
    check_backup(env, 'v', 's2', ref_ab, 64 * MiB)
    invariants(env)
    depth = len(os.listdir(os.path.join(env.primary, '.snapfs', 'v')))

    # room again: the next snapshot folds what was left
    os.unlink(filler)
    n = len(env.read_events())
    env.take('v', 's3')
    env.wait_state('v', 's3', 'BackedUp')
    env.wait_for(lambda: [ev for ev in env.events_since(n) if ev.get('type') == 'layer.merge'
                          and ev.get('result') == 'ok'], 'a merge to succeed', timeout=30)
    env.no_jobs_left()
    assert not [ev for ev in env.events_since(n) if ev.get('type') == 'layer.merge'
                and ev.get('result') == 'error']
    assert len(os.listdir(os.path.join(env.primary, '.snapfs', 'v'))) < depth + 1
    assert qemu_img_compare(ref_ab, env.volume_path('v'), force_share=True) == 0
    check_backup(env, 'v', 's3', ref_ab, 64 * MiB)
    invariants(env)


# ---- secondary storage -----------------------------------------------------------------------

def test_several_backups_when_secondary_fills(env):
    fs = small_fs(env, 'secondary', '32m')
    filler = fill(os.path.join(fs, 'filler'), '5M')
    vols = ('v1', 'v2', 'v3', 'v4')
    refs = {}
    for i, vol in enumerate(vols):
        data = [(0x10 + i, 0, '2M')]
        env.make_volume(vol, '16M', data)
        refs[vol] = env.make_reference('16M', data)
    env.mount(workers=1, retries=2, retry_delay=3600)

    # four snapshots queued at once; about two copies fit
    for vol in vols:
        env.take(vol, 's1')
    env.wait_for(lambda: all(env.state(vol, 's1') in ('BackedUp', 'BackupFailed')
                             for vol in vols), 'every copy to end', timeout=90)
    done = [vol for vol in vols if env.state(vol, 's1') == 'BackedUp']
    failed = [vol for vol in vols if env.state(vol, 's1') == 'BackupFailed']
    assert done and failed, 'expected some copies to fit and some not: %s' % (
        {vol: env.state(vol, 's1') for vol in vols})
    for vol in done:
        check_backup(env, vol, 's1', refs[vol], 16 * MiB)
    for vol in failed:
        info = env.info(vol, 's1')
        assert info['on_secondary'] is False and info['on_primary'] is True, info
        assert 'No space' in (info['error'] or '') or 'full' in (info['error'] or ''), info
        assert env.backups(vol) == [], env.backups(vol)
        alerts = env.wait_for(lambda vol=vol: env.alerts_for(vol, 's1'),
                              'the alert of %s/s1' % vol, timeout=10)
        assert [a['errno'] for a in alerts.values()] == ['ENOSPC'], alerts
        # nothing lost: the volume still holds its data
        assert qemu_img_compare(refs[vol], env.volume_path(vol), force_share=True) == 0
    assert len([f for f in env.secondary_files()
                if f.endswith('.' + env.stored_backup_ext())]) == len(done)
    invariants(env)

    # room again: a retry of each failed one; all backed up, alerts resolved
    os.unlink(filler)
    for vol in failed:
        env.control(vol, 'retry s1')
    for vol in failed:
        env.wait_state(vol, 's1', 'BackedUp', fail_fast=False)
        check_backup(env, vol, 's1', refs[vol], 16 * MiB)
    env.wait_for(lambda: env.alerts() == {}, 'the alerts to be resolved', timeout=10)
    invariants(env)


def test_kill9_while_secondary_is_full_then_remount(env):
    fs = small_fs(env, 'secondary', '32m')
    filler = fill(os.path.join(fs, 'filler'), '12M')
    data_v, data_w = [(0x61, 0, '8M')], [(0x62, 0, '8M')]
    env.make_volume('v', '64M', data_v)
    env.make_volume('w', '64M', data_w)
    ref_v, ref_w = env.make_reference('64M', data_v), env.make_reference('64M', data_w)
    # about the full copy's qemu-img convert (test point backup.converted,
    # the copy in SECONDARY/.tmp): pinned to repository=off
    env.mount_hanging('backup.converted', workers=1, retries=3, retry_delay=3600,
                      repository='off')

    # v/s1's copy is made (8 MiB in SECONDARY/.tmp: what is left is too
    # little for w/s1's) and the daemon dies before publishing it
    env.take('v', 's1')
    env.take('w', 's1')
    env.wait_testpoint('backup.converted')
    assert env.secondary_tmp_files(), 'no copy in SECONDARY/.tmp at backup.converted'
    assert free_bytes(env.secondary) < 8 * MiB
    leftovers = env.kill9()
    assert leftovers == [], 'processes of the killed daemon still run: %s' % leftovers

    # the next start removes the partial copy (its space comes back), so
    # v/s1's copy runs again and fits; w/s1's then finds the storage full
    env.mount(workers=1, retries=3, retry_delay=3600)
    assert [ev for ev in env.read_events() if ev.get('type') == 'recovery.tmp'], \
        env.read_events()
    env.wait_state('v', 's1', 'BackedUp')
    env.wait_state('w', 's1', 'BackupFailed')
    check_backup(env, 'v', 's1', ref_v, 64 * MiB)
    alerts = env.wait_for(lambda: env.alerts_for('w', 's1'), 'the alert of w/s1', timeout=10)
    assert [a['errno'] for a in alerts.values()] == ['ENOSPC'], alerts
    invariants(env)

    # kill -9 again while full, w/s1 failed and waiting: after the remount
    # nothing is lost or forgotten
    env.kill9()
    env.mount(workers=1, retries=3, retry_delay=3600)
    assert env.snapshots('v') == ['s1'] and env.snapshots('w') == ['s1']
    assert env.state('v', 's1') == 'BackedUp' and env.state('w', 's1') == 'BackupFailed'
    assert env.alerts_for('w', 's1'), env.alerts()
    assert qemu_img_compare(ref_w, env.volume_path('w'), force_share=True) == 0
    check_backup(env, 'v', 's1', ref_v, 64 * MiB)
    invariants(env)

    # room again: the retry works
    os.unlink(filler)
    env.control('w', 'retry s1')
    env.wait_state('w', 's1', 'BackedUp', fail_fast=False)
    check_backup(env, 'w', 's1', ref_w, 64 * MiB)
    env.wait_for(lambda: not env.alerts_for('w', 's1'), 'the alert to be resolved', timeout=10)
    invariants(env)
