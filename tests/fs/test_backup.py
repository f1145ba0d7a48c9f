"""The backup engine: what a backup holds, secondary storage running out of
space (alert, manual and automatic retries on the test clock), and renames."""

import os
import time

from snapfs_harness import (MiB, assert_pattern, check_backup, events_of, fill,
                            qemu_img_compare, run, xxh128)

A = [(0xa1, 0, '8M'), (0xa2, '40M', '4M')]
B = [(0xb1, 0, '8M'), (0xb2, '40M', '4M'), (0xb3, '60M', '2M')]


def test_backup_holds_the_data_of_mkdir_time(env):
    # Deterministic order: the first copy fails (secondary storage full), the
    # volume is rewritten, then the retry copies.  The copy certainly runs
    # after the write, so it must read the snapshot, not the live volume.
    filler = _small_secondary(env)
    env.make_volume('data', '64M', A)
    ref_a = env.make_reference('64M', A)
    env.mount(workers=1)

    env.take('data', 's1')
    env.wait_state('data', 's1', 'BackupFailed')
    env.write_volume('data', B + [(0xb4, '20M', '16M')])
    os.unlink(filler)
    env.control('data', 'retry s1')

    env.wait_state('data', 's1', 'BackedUp', fail_fast=False)
    check_backup(env, 'data', 's1', ref_a, 64 * MiB)
    assert qemu_img_compare(env.volume_path('data'), env.backup_file('data', 's1'),
                            force_share=True) == 1, 'backup follows the live volume'
    assert_pattern(env.volume_path('data'), 0xb3, '60M', '2M')


def test_queued_backup_holds_the_data_of_mkdir_time(env):
    # The usual order: the copy waits behind a busy worker while the guest
    # writes.  (If the machine is slow enough for the blocker to end before
    # the write does, this degrades to the racing case below; still valid.)
    env.make_volume('blocker', '2G', [(0x5a, 0, '1G')])
    env.make_volume('data', '64M', A)
    ref_a = env.make_reference('64M', A)
    env.mount(workers=1)
    env.start_blocker()

    env.take('data', 's1')
    assert env.state('data', 's1') == 'BackingUp'
    env.write_volume('data', B)

    env.wait_state('data', 's1', 'BackedUp', timeout=180)
    check_backup(env, 'data', 's1', ref_a, 64 * MiB)
    assert qemu_img_compare(env.volume_path('data'), env.backup_file('data', 's1'),
                            force_share=True) == 1, 'backup follows the live volume'


def test_backup_while_the_volume_is_written(env):
    # No blocker: the guest's writes race the copy, as with a running VM.
    env.make_volume('data', '64M', A)
    ref_a = env.make_reference('64M', A)
    env.mount(workers=2)
    env.take('data', 's1')
    env.write_volume('data', B)
    env.wait_state('data', 's1', 'BackedUp')
    check_backup(env, 'data', 's1', ref_a, 64 * MiB)
    assert qemu_img_compare(env.volume_path('data'), env.backup_file('data', 's1'),
                            force_share=True) == 1


def _small_secondary(env):
    """Secondary storage on a 32 MiB tmpfs, with a filler beside it (on the
    same file system, outside the secondary directory) leaving 4 MiB."""
    fs = env.tmpfs('sectmp', '32m')
    env.secondary = os.path.join(fs, 'secondary')
    os.mkdir(env.secondary)
    return fill(os.path.join(fs, 'filler'), '4M')


def test_secondary_full_fails_then_retry_succeeds(env):
    filler = _small_secondary(env)
    data = [(0x33, 0, '16M')]
    env.make_volume('v', '256M', data)
    ref = env.make_reference('256M', data)
    env.mount(workers=1, retry_delay=60)
    n = len(env.read_events())

    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackupFailed')

    alerts = env.wait_for(lambda: env.alerts_for('v', 's1'), 'an alert for v/s1', timeout=10)
    assert len(alerts) == 1, alerts
    (aid, alert), = alerts.items()
    for field in ('id', 'time', 'kind', 'volume', 'snapshot', 'errno', 'message', 'attempts'):
        assert field in alert, 'alert lacks %r: %s' % (field, alert)
    assert str(alert['id']) == aid, alert
    assert alert['kind'] == 'backup' and alert['errno'] == 'ENOSPC', alert
    assert alert['attempts'] >= 1 and alert['message'], alert

    fails = events_of(env.events_since(n), 'backup.fail', 'v', 's1')
    assert fails and all(ev.get('errno') == 'ENOSPC' and ev.get('message') for ev in fails), \
        env.events_since(n)

    info = env.info('v', 's1')
    assert info['state'] == 'BackupFailed' and info['error'], info
    assert info['on_primary'] is True and info['on_secondary'] is False, info
    assert env.backups('v') == []
    assert not os.path.exists(env.backup_file('v', 's1'))
    assert env.secondary_backup_files() == [] and env.secondary_tmp_files() == [], \
        (env.secondary_backup_files(), env.secondary_tmp_files())
    # the job waits for its automatic retry, or is gone; it does not run
    for job in env.jobs():
        assert job['state'] == 'waiting', job
    # nothing lost: the volume is intact, the snapshot still there
    assert qemu_img_compare(ref, env.volume_path('v'), force_share=True) == 0
    assert env.snapshots('v') == ['s1']

    # make room, and retry by hand as a person would
    os.unlink(filler)
    run(['sh', '-c', 'echo retry s1 > "$1"', 'sh', env.vol_dir('v', 'control')])
    env.wait_state('v', 's1', 'BackedUp', fail_fast=False)
    check_backup(env, 'v', 's1', ref, 256 * MiB)
    env.wait_for(lambda: not env.alerts_for('v', 's1'), 'the alert to be resolved',
                 timeout=10)
    assert 'retry' in env.read('volumes', 'v', 'control')
    assert env.secondary_tmp_files() == [] and env.no_jobs_left()


def _fails(env, n0):
    return len(events_of(env.events_since(n0), 'backup.fail', 'v', 's1'))


def _starts(env, n0):
    return len(events_of(env.events_since(n0), 'backup.start', 'v', 's1'))


def test_automatic_retry_waits_for_retry_delay_on_the_clock(env):
    filler = _small_secondary(env)
    data = [(0x34, 0, '16M')]
    env.make_volume('v', '256M', data)
    ref = env.make_reference('256M', data)
    env.mount(workers=1, retries=2, retry_delay=60)
    n0 = len(env.read_events())
    t0 = env.clock()

    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackupFailed')
    assert _fails(env, n0) == 1 and _starts(env, n0) == 1

    # before retry_delay has passed on the engine's clock: no retry
    env.set_clock(t0 + 30)
    assert env.clock() == t0 + 30
    time.sleep(1.0)     # a window in which a wrongly due retry would start
    assert _starts(env, n0) == 1 and env.state('v', 's1') == 'BackupFailed'

    # past it: the first automatic retry runs (and fails: still no room)
    env.set_clock(t0 + 61)
    env.wait_for(lambda: _fails(env, n0) == 2, 'the first automatic retry to fail',
                 timeout=30)
    env.wait_state('v', 's1', 'BackupFailed')
    env.wait_for(lambda: [a for a in env.alerts_for('v', 's1').values()
                          if a.get('attempts') == 2], 'the alert to count 2 attempts',
                 timeout=10)

    # the delay doubles: 120 s after the second failure, not 60
    env.set_clock(t0 + 61 + 119)
    time.sleep(1.0)
    assert _starts(env, n0) == 2 and env.state('v', 's1') == 'BackupFailed'

    os.unlink(filler)
    env.set_clock(t0 + 61 + 121)
    env.wait_state('v', 's1', 'BackedUp', fail_fast=False)
    check_backup(env, 'v', 's1', ref, 256 * MiB)
    env.wait_for(lambda: not env.alerts_for('v', 's1'), 'the alert to be resolved',
                 timeout=10)


def test_automatic_retries_are_bounded(env):
    _small_secondary(env)
    env.make_volume('v', '256M', [(0x35, 0, '16M')])
    env.mount(workers=1, retries=1, retry_delay=10)
    n0 = len(env.read_events())
    t0 = env.clock()
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackupFailed')
    env.set_clock(t0 + 11)
    env.wait_for(lambda: _fails(env, n0) == 2, 'the one automatic retry to fail',
                 timeout=30)
    env.set_clock(t0 + 100000)
    time.sleep(1.0)
    assert _starts(env, n0) == 2, 'more automatic retries than retries=1 allows'
    assert env.state('v', 's1') == 'BackupFailed'
    alerts = env.alerts_for('v', 's1')
    assert alerts and max(a['attempts'] for a in alerts.values()) == 2, alerts


def test_rename_before_and_after_backup(env):
    env.make_volume('blocker', '2G', [(0x5a, 0, '1G')])
    data = [(0x44, 0, '4M')]
    env.make_volume('v', '64M', data)
    ref = env.make_reference('64M', data)
    env.mount(workers=1)

    # after the backup: the backed-up names and the manifest follow
    env.take('v', 'done')
    env.wait_state('v', 'done', 'BackedUp')
    sum_before = xxh128(env.backup_file('v', 'done'))
    n = len(env.read_events())
    os.rename(env.snap_dir('v', 'done'), env.snap_dir('v', 'done2'))
    assert env.snapshots('v') == ['done2']
    assert env.state('v', 'done2') == 'BackedUp' and env.state('v', 'done') is None
    assert env.info('v', 'done2')['name'] == 'done2'
    assert env.backups('v') == ['done2.json', 'done2.qcow2']
    assert xxh128(env.backup_file('v', 'done2')) == sum_before
    check_backup(env, 'v', 'done2', ref, 64 * MiB)
    assert events_of(env.events_since(n), 'snapshot.rename', 'done2'), env.events_since(n)

    # before the backup: the queued copy lands under the new name
    env.start_blocker()
    env.take('v', 'early')
    assert env.state('v', 'early') == 'BackingUp'
    os.rename(env.snap_dir('v', 'early'), env.snap_dir('v', 'late'))
    late_job = env.job_for('v', 'late')
    blocker = env.job_for('blocker', 'b')
    assert blocker is not None and blocker['state'] == 'running', \
        'the 1 GiB copy ended too soon to rename a queued snapshot'
    assert env.state('v', 'late') == 'BackingUp' and env.state('v', 'early') is None
    assert env.job_for('v', 'early') is None
    assert late_job is not None and late_job['state'] == 'queued', env.jobs()
    env.wait_state('v', 'late', 'BackedUp', timeout=180)
    assert env.backups('v') == ['done2.json', 'done2.qcow2', 'late.json', 'late.qcow2']
    check_backup(env, 'v', 'late', ref, 64 * MiB)
