"""keep_primary: once backed up, only the newest snapshots stay on primary
storage; the older ones keep working from secondary storage."""

import os

from snapfs_harness import MiB, check_backup, events_of, qemu_img_compare

WRITES = [
    [(0x01, 0, '4M')],
    [(0x02, 0, '2M'), (0x12, '64M', '1M')],
    [(0x03, '8M', '4M')],
    [(0x04, '100M', '2M')],
]


def test_keep_primary_one(env):
    env.make_volume('v', '128M', WRITES[0])
    env.mount(workers=1, keep_primary=1)

    refs = {}
    written = []
    for i, writes in enumerate(WRITES[:3], 1):
        if i > 1:
            env.write_volume('v', writes)
        written += writes
        refs['s%d' % i] = env.make_reference('128M', written)
        env.take('v', 's%d' % i)
        env.wait_state('v', 's%d' % i, 'BackedUp')

    env.wait_for(lambda: not env.info('v', 's1')['on_primary']
                 and not env.info('v', 's2')['on_primary'],
                 's1 and s2 to leave primary storage', timeout=30)
    assert env.info('v', 's3')['on_primary'] is True, env.info('v', 's3')
    for snap in ('s1', 's2', 's3'):
        info = env.info('v', snap)
        assert info['state'] == 'BackedUp' and info['on_secondary'] is True, info
        check_backup(env, 'v', snap, refs[snap], 128 * MiB)

    # the ones only on secondary storage can still be renamed and deleted
    n = len(env.read_events())
    os.rename(env.snap_dir('v', 's1'), env.snap_dir('v', 'old1'))
    assert env.state('v', 'old1') == 'BackedUp'
    check_backup(env, 'v', 'old1', refs['s1'], 128 * MiB)
    os.rmdir(env.snap_dir('v', 's2'))
    assert env.snapshots('v') == ['old1', 's3']
    assert env.backups('v') == ['old1.json', 'old1.qcow2', 's3.json', 's3.qcow2']
    assert len(env.secondary_backup_files()) == 4, env.secondary_backup_files()
    assert events_of(env.events_since(n), 'snapshot.rename', 'old1')
    assert events_of(env.events_since(n), 'snapshot.delete', 's2')

    # the volume itself holds all that was written
    assert qemu_img_compare(refs['s3'], env.volume_path('v'), force_share=True) == 0

    # a fourth snapshot pushes s3 off primary storage; s3 stays readable
    env.write_volume('v', WRITES[3])
    written += WRITES[3]
    ref4 = env.make_reference('128M', written)
    env.take('v', 's4')
    env.wait_state('v', 's4', 'BackedUp')
    env.wait_for(lambda: not env.info('v', 's3')['on_primary'],
                 's3 to leave primary storage', timeout=30)
    assert env.info('v', 's4')['on_primary'] is True
    check_backup(env, 'v', 's3', refs['s3'], 128 * MiB)
    check_backup(env, 'v', 's4', ref4, 128 * MiB)
    assert qemu_img_compare(ref4, env.volume_path('v'), force_share=True) == 0

    # and it holds after a remount
    env.remount()
    assert [env.info('v', s)['on_primary'] for s in ('old1', 's3', 's4')] == \
        [False, False, True]
