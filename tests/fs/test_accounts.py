"""Accounts, permissions and limits (docs/design.md "Accounts and
permissions"): two real Unix users on one allow_other mount cannot see into
or act on each other's volumes, VMs, snapshots, backups, jobs, alerts,
events and policies, and can do all of it on their own; the kernel refuses
the others from the owners and modes snapfs reports (EACCES, no event);
chown is root's; snapshot limits (max_snapshots, MOUNT/limits: EDQUOT); a
policy at its keep is not refused by the limit, one below it fails with an
alert the account owns.

The users are snapfs-alice and snapfs-bob, created for this module when
missing (and removed at its end).  Each request of theirs is made from a
forked child running with the user's uid, gid and groups (run_as()), so
it reaches the kernel and snapfs as theirs.
"""

import calendar
import errno
import json
import os

import pytest

from snapfs_harness import (ensure_user, errno_as, errno_name, event_mentions, fill,
                            open_to_all_users, policy_events, policy_of, read_policy,
                            rejected_events, remove_user, run_as, user_ids)
from vm_harness import vmenv  # noqa: F401

ALICE, BOB = 'snapfs-alice', 'snapfs-bob'


def utc(y, mo, d, h=0, mi=0):
    return calendar.timegm((y, mo, d, h, mi, 0))


@pytest.fixture(scope='module')
def users():
    """{name: (uid, gid)} of the two test accounts."""
    created = []
    try:
        for name in (ALICE, BOB):
            if ensure_user(name):
                created.append(name)
        yield {name: user_ids(name) for name in (ALICE, BOB)}
    finally:
        for name in created:
            remove_user(name)


# ---- what a user does (each runs in the child, as that user) --------------------------------

def read_text(path):
    with open(path, errors='replace') as f:
        return f.read()


def read_head(path):
    with open(path, 'rb') as f:
        return len(f.read(65536))


def listdir(path):
    return sorted(os.listdir(path))


def write_once(path, text):
    """One write(2), as `echo text > path` (no O_CREAT: these files exist)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def create_and_write(path, text):
    """`echo text > path` for a new file (policies/)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def events_seen(mnt):
    return [json.loads(line) for line in read_text(os.path.join(mnt, 'events')).splitlines()
            if line.strip()]


def mode_of(env, *parts):
    st = os.stat(env.p(*parts))
    return st.st_mode & 0o7777, st.st_uid, st.st_gid


def give(env, path, ids):
    """chown as root, as an administrator would."""
    os.chown(env.p(path), ids[0], ids[1])


def ops_on(env, vol, vm, actor):
    """The operations @actor may try on volume @vol and VM @vm, each
    (label, function, args); snapshots s1 (volume) and v1 (VM) exist."""
    return [
        ('read volume info', read_text, env.p('volumes', vol, 'info')),
        ('list snapshots', listdir, env.p('volumes', vol, 'snapshots')),
        ('read snapshot info', read_text, env.snap_dir(vol, 's1', 'info')),
        ('read snapshot state', read_text, env.snap_dir(vol, 's1', 'state')),
        ('list backed-up', listdir, env.p('backed-up', 'volumes', vol)),
        ('read backed-up image', read_head, env.backup_file(vol, 's1')),
        ('read backed-up manifest', read_text, env.backup_file(vol, 's1', 'json')),
        ('mkdir snapshot', os.mkdir, env.snap_dir(vol, 'by-' + actor)),
        ('rmdir snapshot', os.rmdir, env.snap_dir(vol, 'by-' + actor)),
        ('write volume control', write_once, env.vol_dir(vol, 'control'), 'revert s1\n'),
        ('read VM info', read_text, env.vm_dir(vm, 'info')),
        ('read VM state', read_text, env.vm_dir(vm, 'state')),
        ('list VM snapshots', listdir, env.vm_dir(vm, 'snapshots')),
        ('read VM snapshot info', read_text, env.vm_snap_dir(vm, 'v1', 'info')),
        ('write snapshot-options', write_once, env.vm_dir(vm, 'snapshot-options'),
         'memory=no quiesce=no\n'),
        ('mkdir VM snapshot', os.mkdir, env.vm_snap_dir(vm, 'by-' + actor)),
        ('rmdir VM snapshot', os.rmdir, env.vm_snap_dir(vm, 'by-' + actor)),
        ('write VM control', write_once, env.vm_dir(vm, 'control'), 'revert v1\n'),
    ]


# ---- two accounts on one mount ----------------------------------------------------------------

def test_two_accounts_cannot_reach_each_other(vmenv, users):
    env = vmenv
    env.make_vm('vma', ['da'], size='16M')
    env.make_vm('vmb', ['db'], size='16M')
    env.make_volume('va', '16M', [(0xa1, 0, '1M')])
    env.make_volume('vb', '16M', [(0xb1, 0, '1M')])
    open_to_all_users(env)
    env.mount(workers=2)
    mine = {ALICE: ('va', 'vma', 'da'), BOB: ('vb', 'vmb', 'db')}

    n = len(env.read_events())
    for user, (vol, vm, disk) in mine.items():
        for path in ('volumes/' + vol, 'volumes/' + disk, 'vms/' + vm):
            give(env, path, users[user])
    new = env.events_since(n)
    assert len([ev for ev in new if ev.get('type') == 'volume.chown']) == 4, new
    assert len([ev for ev in new if ev.get('type') == 'vm.chown']) == 2, new
    uid, gid = users[ALICE]
    assert env.volume_info('va').get('owner') == ALICE, env.volume_info('va')
    assert os.stat(env.volume_path('va')).st_uid == uid     # the file follows

    # each takes a volume and a VM snapshot of their own (VMs stopped: disk only)
    for user, (vol, vm, _) in mine.items():
        run_as(user, os.mkdir, env.snap_dir(vol, 's1'))
        run_as(user, os.mkdir, env.vm_snap_dir(vm, 'v1'))
    for user, (vol, vm, _) in mine.items():
        env.wait_state(vol, 's1', 'BackedUp')
        assert env.vm_snap_info(vm, 'v1')['type'] == 'disk'

    # the modes and owners the kernel checks against
    for path, mode in (
            (('volumes', 'va'), 0o770), (('volumes', 'va', 'info'), 0o440),
            (('volumes', 'va', 'control'), 0o660), (('volumes', 'va', 'snapshots'), 0o770),
            (('volumes', 'va', 'snapshots', 's1'), 0o770),
            (('volumes', 'va', 'snapshots', 's1', 'info'), 0o440),
            (('volumes', 'va', 'snapshots', 's1', 'state'), 0o440),
            (('backed-up', 'volumes', 'va'), 0o750),
            (('backed-up', 'volumes', 'va', 's1.qcow2'), 0o440),
            (('backed-up', 'volumes', 'va', 's1.json'), 0o440),
            (('vms', 'vma'), 0o770), (('vms', 'vma', 'info'), 0o440),
            (('vms', 'vma', 'state'), 0o440), (('vms', 'vma', 'control'), 0o660),
            (('vms', 'vma', 'snapshot-options'), 0o660), (('vms', 'vma', 'snapshots'), 0o770),
            (('vms', 'vma', 'snapshots', 'v1'), 0o770),
            (('vms', 'vma', 'snapshots', 'v1', 'info'), 0o440)):
        got = mode_of(env, *path)
        assert got == (mode, uid, gid), '%s: mode %o uid %d gid %d, expected %o %d:%d' % (
            '/'.join(path), got[0], got[1], got[2], mode, uid, gid)
    assert mode_of(env, 'events')[:2] == (0o444, 0)
    assert mode_of(env, 'policies')[:2] == (0o1777, 0)
    assert mode_of(env, 'limits')[:2] == (0o644, 0)
    assert mode_of(env, 'control')[:2] == (0o644, 0)
    # MOUNT/control (restore) is root's: the kernel refuses the accounts
    for user in (ALICE, BOB):
        assert errno_as(user, env.write_file, env.p('control'),
                        'restore x/va/s1 mine\n') == errno.EACCES

    # the names are visible to all (like home directories); what is inside is not
    for user in (ALICE, BOB):
        assert run_as(user, listdir, env.p('volumes')) == ['da', 'db', 'va', 'vb']
        assert run_as(user, listdir, env.p('vms')) == ['vma', 'vmb']
        assert run_as(user, listdir, env.p('backed-up', 'volumes')) == ['va', 'vb']

    # the other account's objects: EACCES for everything, decided by the kernel
    # (no event), and nothing changes
    n = len(env.read_events())
    for user, other in ((ALICE, BOB), (BOB, ALICE)):
        vol, vm, _ = mine[other]
        for op in ops_on(env, vol, vm, user):
            label, fn, args = op[0], op[1], op[2:]
            got = errno_as(user, fn, *args)
            assert got == errno.EACCES, '%s on %s\'s %s/%s: %s, expected EACCES' % (
                label, other, vol, vm, errno_name(got) if got else 'success')
        # chown: root's only
        assert errno_as(user, os.chown, env.p('volumes', vol), users[user][0], -1) == errno.EPERM
        assert errno_as(user, os.chown, env.p('vms', vm), users[user][0], -1) == errno.EPERM
    new = env.events_since(n)
    assert not [ev for ev in new if ev.get('type') == 'rejected'], \
        'the kernel refused these; snapfs saw them: %s' % new
    for user, (vol, vm, _) in mine.items():
        assert env.snapshots(vol) == ['s1'] and env.vm_snapshots(vm) == ['v1']

    # nor may an owner give away their own (uid), or take a group not theirs
    for user, other in ((ALICE, BOB), (BOB, ALICE)):
        vol, vm, _ = mine[user]
        assert errno_as(user, os.chown, env.p('volumes', vol), users[other][0], -1) == \
            errno.EPERM
        assert errno_as(user, os.chown, env.p('vms', vm), -1, users[other][1]) == errno.EPERM
    assert mode_of(env, 'volumes', 'va')[1:] == users[ALICE]
    assert mode_of(env, 'vms', 'vmb')[1:] == users[BOB]

    # their own: every one of these works
    for user, (vol, vm, _) in mine.items():
        for op in ops_on(env, vol, vm, user):
            label, fn, args = op[0], op[1], op[2:]
            try:
                run_as(user, fn, *args)
            except OSError as e:
                raise AssertionError('%s on %s\'s own %s/%s: %s' % (
                    label, user, vol, vm, errno_name(e.errno))) from e
        assert env.vm_state(vm) == 'stopped'
        assert env.snapshots(vol) == ['s1'] and env.vm_snapshots(vm) == ['v1']
    new = env.events_since(n)
    for vol, vm, _ in mine.values():
        assert [ev for ev in new if ev.get('type') == 'snapshot.take'
                and ev.get('volume') == vol and ev.get('snapshot').startswith('by-')], new

    # events: each account reads the lines about its own volumes and VMs only
    everything = env.read_events()
    given = {}          # object -> index of the event that gave it to its account
    for i, ev in enumerate(everything):
        if ev.get('type') in ('volume.chown', 'vm.chown'):
            given.setdefault(ev.get('volume') or ev.get('vm'), i)
    for user, other in ((ALICE, BOB), (BOB, ALICE)):
        seen = run_as(user, events_seen, env.mnt)
        own = set(mine[user])
        assert seen, '%s reads no events at all' % user
        strangers = [ev for ev in seen if ev.get('volume') not in own
                     and ev.get('vm') not in own]
        assert not strangers, '%s reads events not about its objects: %s' % (user, strangers)
        assert not [ev for ev in seen if any(event_mentions(ev, name) for name in mine[other])], \
            seen
        # the lines about its own objects since they were given to it are all there
        theirs = [ev for i, ev in enumerate(everything)
                  if any(ev.get(key) in own and i >= given[ev.get(key)]
                         for key in ('volume', 'vm'))]
        missing = [ev for ev in theirs if ev not in seen]
        assert not missing, '%s does not read its own events: %s' % (user, missing)
        for kind in ('snapshot.take', 'backup.end'):
            assert [ev for ev in seen if ev.get('type') == kind], (kind, seen)
    assert [ev for ev in everything if ev.get('volume') == 'vb'] and \
        [ev for ev in everything if ev.get('volume') == 'va'], 'root reads all'

    # and each removes its own snapshots
    for user, (vol, vm, _) in mine.items():
        run_as(user, os.rmdir, env.snap_dir(vol, 's1'))
        run_as(user, os.rmdir, env.vm_snap_dir(vm, 'v1'))
        assert env.snapshots(vol) == [] and env.vm_snapshots(vm) == []


def test_alerts_and_jobs_belong_to_their_account(env, users):
    # secondary storage too small for alice's backup: it fails and waits for
    # its automatic retry (the clock does not move), so both an alert and
    # the job stay
    fs = env.tmpfs('sectmp', '32m')
    env.secondary = os.path.join(fs, 'secondary')
    os.mkdir(env.secondary)
    fill(os.path.join(fs, 'filler'), '4M')
    env.make_volume('va', '64M', [(0xa1, 0, '16M')])
    env.make_volume('vb', '16M')
    open_to_all_users(env)
    env.mount(workers=1, retries=3, retry_delay=3600)
    give(env, 'volumes/va', users[ALICE])
    give(env, 'volumes/vb', users[BOB])

    run_as(ALICE, os.mkdir, env.snap_dir('va', 's1'))
    env.wait_state('va', 's1', 'BackupFailed')
    alerts = env.wait_for(lambda: env.alerts_for('va', 's1'), 'the backup alert', timeout=10)
    (aid, alert), = alerts.items()
    assert alert['errno'] == 'ENOSPC', alert
    jobs = [j for j in env.jobs() if j.get('target') == env.target('va', 's1')]
    assert jobs, 'no job of alice\'s backup in jobs/: %s' % env.jobs()
    jid = jobs[0]['_file']

    assert mode_of(env, 'alerts')[:2] == (0o1777, 0)
    assert mode_of(env, 'alerts', aid)[:2] == (0o600, users[ALICE][0])
    assert mode_of(env, 'jobs', jid)[:2] == (0o400, users[ALICE][0])
    # both see the names; only alice reads them
    for user in (ALICE, BOB):
        assert aid in run_as(user, listdir, env.p('alerts'))
        assert jid in run_as(user, listdir, env.p('jobs'))
    assert json.loads(run_as(ALICE, read_text, env.p('alerts', aid)))['snapshot'] == 's1'
    assert json.loads(run_as(ALICE, read_text, env.p('jobs', jid)))['target'] == \
        env.target('va', 's1')
    n = len(env.read_events())
    assert errno_as(BOB, read_text, env.p('alerts', aid)) == errno.EACCES
    assert errno_as(BOB, read_text, env.p('jobs', jid)) == errno.EACCES
    # rm of another's alert: the sticky alerts/ refuses it
    assert errno_as(BOB, os.unlink, env.p('alerts', aid)) in (errno.EPERM, errno.EACCES)
    assert aid in env.alerts()
    assert not [ev for ev in env.events_since(n) if ev.get('type') == 'rejected']
    # bob reads no line about alice's failure
    seen = run_as(BOB, events_seen, env.mnt)
    assert not [ev for ev in seen if event_mentions(ev, 'va')], seen
    assert [ev for ev in run_as(ALICE, events_seen, env.mnt)
            if ev.get('type') == 'backup.fail' and ev.get('volume') == 'va']
    # alice acknowledges hers
    run_as(ALICE, os.unlink, env.p('alerts', aid))
    assert aid not in env.alerts()


# ---- policies across accounts -------------------------------------------------------------------

def test_policies_across_accounts(env, users):
    env.make_volume('va', '16M')
    env.make_volume('vb', '16M')
    open_to_all_users(env)
    env.mount(workers=2)
    give(env, 'volumes/va', users[ALICE])
    give(env, 'volumes/vb', users[BOB])
    env.set_clock(utc(2027, 5, 1, 12))

    # a policy of alice's on bob's volume: EACCES, with the reason
    n = len(env.read_events())
    err = errno_as(ALICE, create_and_write, env.p('policies', 'steal'),
                   'target=volume:vb schedule=daily keep=2 tz=UTC\n')
    assert err == errno.EACCES, errno_name(err)
    evs = rejected_events(env.events_since(n), 'write', 'policies/steal', errno.EACCES)
    assert len(evs) == 1 and 'vb' in evs[0].get('message', ''), env.events_since(n)
    # the reason is in alice's own events (the refused file is hers, empty)
    assert [ev for ev in run_as(ALICE, events_seen, env.mnt)
            if ev.get('path') == 'policies/steal' and ev.get('errno') == 'EACCES']
    assert env.listdir('policies') == ['steal'] and env.read('policies', 'steal') == ''
    run_as(ALICE, os.unlink, env.p('policies', 'steal'))
    assert env.listdir('policies') == []

    # on her own: hers, 0600
    run_as(ALICE, create_and_write, env.p('policies', 'pa'),
           'target=volume:va schedule=daily@03:00 keep=2 tz=UTC\n')
    run_as(BOB, create_and_write, env.p('policies', 'pb'),
           'target=volume:vb schedule=daily@03:00 keep=2 tz=UTC\n')
    assert mode_of(env, 'policies', 'pa') == (0o600,) + users[ALICE]
    assert mode_of(env, 'policies', 'pb') == (0o600,) + users[BOB]
    assert run_as(ALICE, read_text, env.p('policies', 'pa')).splitlines()[0] == \
        'target=volume:va schedule=daily@03:00 keep=2 tz=UTC'
    # bob can neither read, rewrite nor remove it (sticky policies/)
    n = len(env.read_events())
    assert errno_as(BOB, read_text, env.p('policies', 'pa')) == errno.EACCES
    assert errno_as(BOB, write_once, env.p('policies', 'pa'),
                    'target=volume:vb schedule=hourly keep=1 tz=UTC\n') == errno.EACCES
    assert errno_as(BOB, os.unlink, env.p('policies', 'pa')) in (errno.EPERM, errno.EACCES)
    assert errno_as(ALICE, os.unlink, env.p('policies', 'pb')) in (errno.EPERM, errno.EACCES)
    assert not [ev for ev in env.events_since(n) if ev.get('type') == 'rejected']
    assert env.listdir('policies') == ['pa', 'pb']
    assert read_policy(env, 'pa')[0] == 'target=volume:va schedule=daily@03:00 keep=2 tz=UTC'

    # root may target anyone's volume (one policy per target and interval still)
    n = len(env.read_events())
    env.write_file(env.p('policies', 'root-a'), 'target=volume:va schedule=hourly keep=1 tz=UTC')
    assert mode_of(env, 'policies', 'root-a') == (0o600, 0, 0)
    try:
        env.write_file(env.p('policies', 'root-b'),
                       'target=volume:va schedule=daily keep=1 tz=UTC')
        err = 0
    except OSError as e:
        err = e.errno
    assert err == errno.EEXIST, errno_name(err)
    assert rejected_events(env.events_since(n), 'write', 'policies/root-b', errno.EEXIST)
    assert env.read('policies', 'root-b') == ''  # the empty file the refused write opened
    os.unlink(env.p('policies', 'root-b'))
    os.unlink(env.p('policies', 'root-a'))

    # alice's policy runs; its snapshots, events and file are hers
    n = len(env.read_events())
    env.set_clock(utc(2027, 5, 2, 3))
    for name in ('pa', 'pb'):
        env.wait_event(lambda ev, name=name: ev.get('type') == 'policy.run'
                       and policy_of(ev) == name, since=n, what='the run of ' + name)
    assert mode_of(env, 'volumes', 'va', 'snapshots', 'daily-20270502T0300Z') == \
        (0o770,) + users[ALICE]
    assert run_as(ALICE, listdir, env.p('volumes', 'va', 'snapshots')) == \
        ['daily-20270502T0300Z']
    assert errno_as(BOB, listdir, env.p('volumes', 'va', 'snapshots')) == errno.EACCES
    alice_sees = run_as(ALICE, events_seen, env.mnt)
    assert policy_events(alice_sees, 'policy.run', 'pa')
    assert not policy_events(alice_sees, 'policy.run', 'pb')
    assert not policy_events(run_as(BOB, events_seen, env.mnt), 'policy.run', 'pa')
    assert run_as(ALICE, read_text, env.p('policies', 'pa')).splitlines()[1] == \
        '# last run: 2027-05-02T03:00:00Z, snapshot daily-20270502T0300Z: ok'

    # each removes its own; root removes anyone's
    run_as(ALICE, os.unlink, env.p('policies', 'pa'))
    os.unlink(env.p('policies', 'pb'))
    assert env.listdir('policies') == []
    assert env.snapshots('va') == ['daily-20270502T0300Z']


# ---- limits -------------------------------------------------------------------------------------

def mkdir_refused(env, user, path, err):
    """mkdir MOUNT/@path as @user fails with @err and leaves a rejected event."""
    n = len(env.read_events())
    got = errno_as(user, os.mkdir, env.p(path))
    assert got == err, 'mkdir %s as %s: %s, expected %s' % (
        path, user, errno_name(got) if got else 'success', errno_name(err))
    evs = rejected_events(env.events_since(n), 'mkdir', path, err)
    assert evs and evs[0].get('message'), 'no rejected event for %s: %s' % (
        path, env.events_since(n))
    return evs[0]


def limits_refused(env, text):
    n = len(env.read_events())
    before = env.read('limits')
    try:
        env.write_file(env.p('limits'), text)
        err = 0
    except OSError as e:
        err = e.errno
    assert err == errno.EINVAL, '%r: %s' % (text, errno_name(err) if err else 'success')
    evs = rejected_events(env.events_since(n), 'write', 'limits', errno.EINVAL)
    assert evs and evs[0].get('message'), env.events_since(n)
    assert env.read('limits') == before
    return evs[0]['message']


def test_snapshot_limits(vmenv, users):
    env = vmenv
    env.make_vm('vma', ['da'], size='16M')
    for vol in ('va', 'vb', 'r'):
        env.make_volume(vol, '16M')
    open_to_all_users(env)
    env.mount(workers=2, max_snapshots=3)
    for path in ('volumes/va', 'volumes/da', 'vms/vma'):
        give(env, path, users[ALICE])
    give(env, 'volumes/vb', users[BOB])

    # global: 3 per account, volume and VM snapshots together
    run_as(ALICE, os.mkdir, env.snap_dir('va', 's1'))
    run_as(ALICE, os.mkdir, env.snap_dir('va', 's2'))
    run_as(ALICE, os.mkdir, env.vm_snap_dir('vma', 'v1'))
    ev = mkdir_refused(env, ALICE, 'volumes/va/snapshots/s3', errno.EDQUOT)
    assert '3' in ev['message'], ev
    mkdir_refused(env, ALICE, 'vms/vma/snapshots/v2', errno.EDQUOT)
    mkdir_refused(env, ALICE, 'volumes/da/snapshots/d1', errno.EDQUOT)
    assert env.snapshots('va') == ['s1', 's2'] and env.vm_snapshots('vma') == ['v1']
    # root is not limited
    for i in range(5):
        env.take('r', 'r%d' % i)
    # a delete makes room
    run_as(ALICE, os.rmdir, env.snap_dir('va', 's1'))
    run_as(ALICE, os.mkdir, env.snap_dir('va', 's3'))
    mkdir_refused(env, ALICE, 'volumes/va/snapshots/s4', errno.EDQUOT)

    # per account, lower, in MOUNT/limits (root's file)
    assert mode_of(env, 'limits')[:2] == (0o644, 0)
    assert errno_as(BOB, write_once, env.p('limits'), '%s 3\n' % BOB) == errno.EACCES
    env.write_file(env.p('limits'), '%s 1\n' % BOB)
    assert [ln for ln in env.read('limits').splitlines() if ln.startswith(BOB + ' ')][0] \
        .split()[:2] == [BOB, '1']
    run_as(BOB, os.mkdir, env.snap_dir('vb', 'b1'))
    mkdir_refused(env, BOB, 'volumes/vb/snapshots/b2', errno.EDQUOT)
    # refused lines: above max_snapshots, no such user, not "<user> <n>"
    limits_refused(env, '%s 4\n' % BOB)
    limits_refused(env, 'snapfs-nosuch-user 1\n')
    limits_refused(env, '%s\n' % BOB)
    limits_refused(env, '%s many\n' % BOB)
    # an account on two lines (by name, or by name and uid), or a global
    # limit other than the mount option's
    limits_refused(env, '%s 1\n%s 2\n' % (BOB, BOB))
    msg = limits_refused(env, '%s 1\n%d 2\n' % (BOB, users[BOB][0]))
    assert 'two lines' in msg, msg
    msg = limits_refused(env, 'global 5\n')
    assert 'max_snapshots' in msg, msg
    mkdir_refused(env, BOB, 'volumes/vb/snapshots/b2', errno.EDQUOT)
    # what a read shows is written back as it is (an editor saving the file),
    # and a changed line in it takes effect
    shown = env.read('limits')
    assert 'global 3' in shown, shown
    env.write_file(env.p('limits'), shown)
    assert env.read('limits') == shown
    edited = shown.replace('\n%s 1 ' % BOB, '\n%s 2 ' % BOB)
    assert edited != shown, shown
    env.write_file(env.p('limits'), edited)
    run_as(BOB, os.mkdir, env.snap_dir('vb', 'b2'))
    mkdir_refused(env, BOB, 'volumes/vb/snapshots/b3', errno.EDQUOT)
    run_as(BOB, os.rmdir, env.snap_dir('vb', 'b2'))
    # default: back to the global 3
    env.write_file(env.p('limits'), '%s default\n' % BOB)
    assert not [ln for ln in env.read('limits').splitlines() if ln.startswith(BOB + ' ')]
    run_as(BOB, os.mkdir, env.snap_dir('vb', 'b2'))
    run_as(BOB, os.mkdir, env.snap_dir('vb', 'b3'))
    mkdir_refused(env, BOB, 'volumes/vb/snapshots/b4', errno.EDQUOT)
    # alice's limit did not move
    mkdir_refused(env, ALICE, 'volumes/va/snapshots/s4', errno.EDQUOT)

    # keep above the global maximum: EINVAL, with the reason
    n = len(env.read_events())
    err = errno_as(ALICE, create_and_write, env.p('policies', 'pa4'),
                   'target=volume:va schedule=daily keep=4 tz=UTC\n')
    assert err == errno.EINVAL, errno_name(err)
    evs = rejected_events(env.events_since(n), 'write', 'policies/pa4', errno.EINVAL)
    assert evs and 'keep' in evs[0]['message'], env.events_since(n)
    assert env.listdir('policies') == ['pa4'] and env.read('policies', 'pa4') == ''
    run_as(ALICE, os.unlink, env.p('policies', 'pa4'))
    assert env.listdir('policies') == []
    run_as(ALICE, create_and_write, env.p('policies', 'pa'),
           'target=volume:va schedule=daily keep=3 tz=UTC\n')
    assert env.listdir('policies') == ['pa']


def test_policy_at_keep_is_not_refused_by_the_limit(env, users):
    env.make_volume('va', '16M')
    env.make_volume('vc', '16M')
    open_to_all_users(env)
    env.mount(workers=2, max_snapshots=3)
    give(env, 'volumes/va', users[ALICE])
    give(env, 'volumes/vc', users[ALICE])
    env.write_file(env.p('limits'), '%s 2\n' % ALICE)
    env.set_clock(utc(2027, 6, 1, 0, 30))
    run_as(ALICE, create_and_write, env.p('policies', 'pa'),
           'target=volume:va schedule=hourly@00 keep=2 tz=UTC\n')

    def hour(h, name, typ='policy.run'):
        n = len(env.read_events())
        env.set_clock(utc(2027, 6, 1, h))
        return env.wait_event(lambda ev: ev.get('type') == typ and policy_of(ev) == name,
                              since=n, what='%s of %s at %02d:00' % (typ, name, h))

    hour(1, 'pa')
    hour(2, 'pa')
    assert env.snapshots('va') == ['hourly-20270601T0100Z', 'hourly-20270601T0200Z']
    # alice is at her limit: her own mkdir is refused ...
    mkdir_refused(env, ALICE, 'volumes/vc/snapshots/m', errno.EDQUOT)
    # ... but the policy at its keep replaces its oldest
    hour(3, 'pa')
    assert env.snapshots('va') == ['hourly-20270601T0200Z', 'hourly-20270601T0300Z']

    # a policy below its keep is refused by the limit: its run fails, with an
    # alert that is alice's
    run_as(ALICE, create_and_write, env.p('policies', 'pc'),
           'target=volume:vc schedule=daily@03:30 keep=1 tz=UTC\n')
    n = len(env.read_events())
    env.set_clock(utc(2027, 6, 1, 3, 30))
    fail = env.wait_event(lambda ev: ev.get('type') == 'policy.fail' and policy_of(ev) == 'pc',
                          since=n, what='the run of pc to fail')
    assert fail.get('errno') == 'EDQUOT' and fail.get('volume') == 'vc', fail
    assert fail.get('snapshot') == 'daily-20270601T0330Z', fail
    alerts = env.wait_for(lambda: {k: a for k, a in env.alerts().items()
                                   if a.get('kind') == 'policy'}, 'the policy alert', timeout=10)
    (aid, alert), = alerts.items()
    assert alert['policy'] == 'pc' and alert['errno'] == 'EDQUOT' and alert['message'], alert
    assert mode_of(env, 'alerts', aid)[:2] == (0o600, users[ALICE][0])
    assert json.loads(run_as(ALICE, read_text, env.p('alerts', aid)))['policy'] == 'pc'
    assert errno_as(BOB, read_text, env.p('alerts', aid)) == errno.EACCES
    assert policy_events(run_as(ALICE, events_seen, env.mnt), 'policy.fail', 'pc')
    last = run_as(ALICE, read_text, env.p('policies', 'pc')).splitlines()[1]
    assert 'failed' in last and 'daily-20270601T0330Z' in last, last
    assert env.snapshots('vc') == []

    # a higher limit: the next run succeeds and resolves the alert
    env.write_file(env.p('limits'), '%s 3\n' % ALICE)
    n = len(env.read_events())
    env.set_clock(utc(2027, 6, 2, 3, 30))
    for name in ('pa', 'pc'):
        env.wait_event(lambda ev, name=name: ev.get('type') == 'policy.run'
                       and policy_of(ev) == name, since=n, what='the run of ' + name)
    assert env.snapshots('vc') == ['daily-20270602T0330Z']
    assert env.alerts() == {}, env.alerts()
    assert [ev for ev in env.events_since(n) if ev.get('type') == 'alert.resolve'
            and policy_of(ev) == 'pc']
