"""rmdir deletes a snapshot everywhere, and cancels its copy when one is
queued or running: no file of it is left on secondary storage."""

import os
import time

from snapfs_harness import (MiB, assert_pattern, check_backup, events_of,
                            qemu_img_compare)


def test_rmdir_cancels_a_running_and_a_queued_copy(env):
    env.make_volume('big', '2G', [(0x91, 0, '1G')])
    data = [(0x92, 0, '4M')]
    env.make_volume('small', '64M', data)
    ref = env.make_reference('64M', data)
    env.mount(workers=1)

    env.take('big', 's1')
    env.wait_job_running('big', 's1')
    env.take('small', 'q1')
    assert env.job_for('small', 'q1')['state'] == 'queued'

    # a queued copy
    os.rmdir(env.snap_dir('small', 'q1'))
    assert env.state('small', 'q1') is None and env.snapshots('small') == []
    assert env.job_for('small', 'q1') is None

    # the running copy
    n = len(env.read_events())
    t0 = time.monotonic()
    os.rmdir(env.snap_dir('big', 's1'))
    took = time.monotonic() - t0
    assert env.state('big', 's1') is None and env.snapshots('big') == []
    assert env.job_for('big', 's1') is None, env.jobs()
    assert env.backups('big') == []
    # rmdir returns once the snapshot is gone from secondary storage too
    assert env.secondary_files() == [], env.secondary_files()
    assert env.secondary_tmp_files() == [], env.secondary_tmp_files()
    env.wait_event(lambda ev: events_of([ev], 'backup.cancel', 'big', 's1'),
                   since=n, what='a backup.cancel event for big/s1', timeout=10)
    assert not events_of(env.read_events(), 'backup.end', 'big', 's1'), \
        'the copy completed instead of being cancelled (rmdir took %.1f s)' % took
    # no backup job is left; the deleted snapshots' layers are folded by
    # short merge jobs, which must finish by themselves
    assert [j for j in env.jobs() if j['kind'] == 'backup'] == [], env.jobs()
    env.wait_for(lambda: env.jobs() == [], 'the merge jobs to finish', timeout=30)

    # the volumes are untouched, and the names can be used again
    assert_pattern(env.volume_path('big'), 0x91, 0, '4M')
    assert_pattern(env.volume_path('big'), 0x91, '1020M', '4M')
    assert qemu_img_compare(ref, env.volume_path('small'), force_share=True) == 0
    env.take('small', 'q1')
    env.wait_state('small', 'q1', 'BackedUp')
    check_backup(env, 'small', 'q1', ref, 64 * MiB)


def test_rmdir_of_a_backed_up_snapshot(env):
    data = [(0x93, 0, '4M')]
    env.make_volume('v', '64M', data)
    ref = env.make_reference('64M', data)
    env.mount(workers=2)
    env.take('v', 'keep')
    env.take('v', 'gone')
    env.wait_state('v', 'keep', 'BackedUp')
    env.wait_state('v', 'gone', 'BackedUp')
    assert len(env.secondary_files()) == 4

    n = len(env.read_events())
    os.rmdir(env.snap_dir('v', 'gone'))
    assert env.snapshots('v') == ['keep']
    assert env.backups('v') == ['keep.json', 'keep.qcow2']
    assert len(env.secondary_files()) == 2, env.secondary_files()
    assert events_of(env.events_since(n), 'snapshot.delete', 'v', 'gone'), env.events_since(n)
    check_backup(env, 'v', 'keep', ref, 64 * MiB)
    assert qemu_img_compare(ref, env.volume_path('v'), force_share=True) == 0
