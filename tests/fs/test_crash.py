"""kill -9 of the daemon at bad moments, then a remount: every unfinished
copy completes, nothing partial is shown or left, nothing stays transitional."""

import os

from snapfs_harness import GiB, MiB, check_backup, secondary_matches_backups


def _no_leftover_processes(env):
    left = env.leftover_processes()
    assert not left, ('processes the killed daemon started still run (they '
                      'should die with it, e.g. PR_SET_PDEATHSIG): %s' % left)


def test_kill9_during_a_copy_then_remount(env):
    env.make_volume('big', '2G', [(0x61, 0, '1G'), (0x62, '1536M', '8M')])
    env.mount(workers=1)
    env.take('big', 's1')
    env.wait_job_running('big', 's1')

    env.kill9()
    env.mount(workers=1)

    # until it is BackedUp, backed-up/ must not show it (never a partial file)
    def finished():
        listed = 's1.qcow2' in env.backups('big')
        state = env.state('big', 's1')
        assert state in ('BackingUp', 'BackedUp'), 'state after restart: %s' % state
        assert not listed or state == 'BackedUp', 'backed-up/ showed s1 while %s' % state
        return state == 'BackedUp'
    env.wait_for(finished, 'the interrupted copy to complete', timeout=180)

    # nothing wrote the volume, so the backup must equal it
    check_backup(env, 'big', 's1', env.volume_path('big'), 2 * GiB, force_share=True)
    assert env.secondary_tmp_files() == [], env.secondary_tmp_files()
    assert len(env.secondary_files()) == 2, env.secondary_files()
    secondary_matches_backups(env)
    assert env.no_jobs_left() and env.alerts() == {}
    _no_leftover_processes(env)


def test_kill9_right_after_mkdir_then_remount(env):
    env.make_volume('v', '64M', [(0x71, 0, '4M')])
    env.make_volume('w', '64M', [(0x81, 0, '4M')])
    refs = {('w', 't1'): env.make_reference('64M', [(0x81, 0, '4M')])}
    env.mount(workers=1)

    # three snapshots of v, each with different data, and one of w
    written = [(0x71, 0, '4M')]
    for i, pattern in enumerate((0x72, 0x73, 0x74)):
        refs[('v', 's%d' % i)] = env.make_reference('64M', written)
        env.take('v', 's%d' % i)
        write = (pattern, '%dM' % (8 * (i + 1)), '2M')
        env.write_volume('v', [write])
        written.append(write)
    env.take('w', 't1')
    env.kill9()

    env.mount(workers=2)
    for (vol, snap) in refs:
        env.wait_state(vol, snap, 'BackedUp', timeout=120)
    for (vol, snap), ref in refs.items():
        check_backup(env, vol, snap, ref, 64 * MiB)
        assert env.state(vol, snap) == 'BackedUp'
    assert env.no_jobs_left() and env.alerts() == {}
    assert env.secondary_tmp_files() == []
    assert len(env.secondary_files()) == 2 * len(refs), env.secondary_files()
    secondary_matches_backups(env)
    _no_leftover_processes(env)

    # a clean remount changes nothing
    env.remount(workers=2)
    for vol, snap in refs:
        assert env.state(vol, snap) == 'BackedUp'
    assert sorted(os.listdir(env.p('backed-up', 'volumes'))) == ['v', 'w']
