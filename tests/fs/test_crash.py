"""kill -9 of the daemon at bad moments, then a remount: every unfinished
copy completes, nothing partial is shown or left, nothing stays transitional."""

import os

import pytest

import snapfs_harness as H
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
    assert len(env.secondary_backup_files()) == 2, env.secondary_backup_files()
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
    assert len(env.secondary_backup_files()) == 2 * len(refs), env.secondary_backup_files()
    secondary_matches_backups(env)
    _no_leftover_processes(env)

    # a clean remount changes nothing
    env.remount(workers=2)
    for vol, snap in refs:
        assert env.state(vol, snap) == 'BackedUp'
    assert sorted(os.listdir(env.p('backed-up', 'volumes'))) == ['v', 'w']


@pytest.mark.parametrize('point', ['layer.merge.renamed', 'layer.merge.retired'])
def test_a_merge_keeps_the_old_layer_name_for_openers_then_kill9(env, point):
    """A merge folds layer L into its child X and renames L's file over
    X's.  Whoever opened the chain just before read X's old header, which
    names L, and opens L next: L's name must still be there (a second name
    of the new X) until a grace has passed.  Hung right after the rename
    (before or after the catalog records it), the old chain still opens
    and reads right; then kill -9: the next mount finishes the merge,
    unlinks L's name, and every snapshot and the volume keep their data."""
    A, B, C = [(0x41, 0, '4M')], [(0x42, '4M', '4M')], [(0x43, '8M', '4M')]
    env.make_volume('v', '32M', A)
    ref_s2 = env.make_reference('32M', A + B)
    ref_v = env.make_reference('32M', A + B + C)
    env.mount_hanging(point, workers=1, keep_primary=2)
    env.take('v', 's1')
    env.write_volume('v', B)
    env.take('v', 's2')
    env.write_volume('v', C)
    env.wait_state('v', 's1', 'BackedUp')
    env.wait_state('v', 's2', 'BackedUp')
    env.wait_for(lambda: env.jobs() == [], 'the backups to end', timeout=60)
    s1 = [s for s in H.catalog_snapshots(env) if s['name'] == 's1'][0]
    s2 = [s for s in H.catalog_snapshots(env) if s['name'] == 's2'][0]
    lpath = os.path.join(env.primary, '.snapfs', 'v', s1['layer'] + '.qcow2')
    xpath = os.path.join(env.primary, '.snapfs', 'v', s2['layer'] + '.qcow2')
    assert H.qemu_img_info(xpath, force_share=True).get('backing-filename', '').endswith(
        s1['layer'] + '.qcow2'), 'the chain is not v <- s2 <- s1'

    os.rmdir(env.snap_dir('v', 's1'))          # L = s1's layer folds into X = s2's
    env.wait_testpoint(point)
    assert os.path.exists(lpath), "the folded layer's name went at once: an opener " \
        'that read the old header of its child fails with ENOENT'
    assert os.path.samefile(lpath, xpath), 'the old name is not the merged file'
    assert 'backing-filename' not in H.qemu_img_info(xpath, force_share=True)
    # what an opener that read the old X finds: L's name, holding s1 and s2
    assert H.qemu_img_compare(ref_s2, lpath, force_share=True) == 0

    env.kill9()
    env.mount(workers=1, keep_primary=2)
    env.wait_for(lambda: env.jobs() == [], 'the merge to end', timeout=60)
    assert not os.path.exists(lpath), 'the old name of the folded layer was left'
    assert (('v', s1['layer'])) not in H.catalog_layers(env)
    assert H.transitional_problems(env, 1) == []
    assert H.orphan_problems(env) == []
    assert H.qemu_img_compare(ref_s2, xpath, force_share=True) == 0
    assert H.qemu_img_compare(ref_v, env.volume_path('v'), force_share=True) == 0
    check_backup(env, 'v', 's2', ref_s2, 32 * MiB)
    assert env.alerts() == {}


def test_a_fold_into_the_volume_file_keeps_the_layer_name_then_kill9(env):
    """The last snapshot's layer L, the volume file's backing, is folded
    into the volume file V when the snapshot goes (commit into L, L renamed
    over V).  A reader that opened V just before (qemu-img of an admin, a
    backup tool) reads V's old header, which names L, then opens L: L's
    name must still be there during the grace, as a second link to the new
    V.  Hung there, then kill -9: the remount drops L's name, and V holds
    all its data with one link (a take works)."""
    A, B = [(0x51, 0, '4M')], [(0x52, '8M', '2M')]
    env.make_volume('v', '32M', A)
    ref = env.make_reference('32M', A + B)
    env.mount_hanging('layer.fold.retired', workers=1)
    env.take('v', 's1')
    env.write_volume('v', B)
    env.wait_state('v', 's1', 'BackedUp')
    env.wait_for(lambda: env.jobs() == [], 'the backup to end', timeout=60)
    s1 = [s for s in H.catalog_snapshots(env) if s['name'] == 's1'][0]
    lpath = os.path.join(env.primary, '.snapfs', 'v', s1['layer'] + '.qcow2')
    vpath = env.volume_path('v')

    os.rmdir(env.snap_dir('v', 's1'))
    env.wait_testpoint('layer.fold.retired')
    assert os.path.exists(lpath), "the folded layer's name went with the fold"
    assert os.path.samefile(lpath, vpath), 'the old name is not the new volume file'
    assert 'backing-filename' not in H.qemu_img_info(vpath, force_share=True)
    assert H.qemu_img_compare(ref, lpath, force_share=True) == 0

    env.kill9()
    env.mount(workers=1)
    env.wait_for(lambda: env.jobs() == [], 'the jobs to end', timeout=60)
    assert not os.path.exists(lpath), 'the old name of the folded layer was left'
    assert os.stat(vpath).st_nlink == 1
    assert H.transitional_problems(env, 1) == []
    assert H.orphan_problems(env) == []
    assert H.qemu_img_compare(ref, vpath, force_share=True) == 0
    env.take('v', 's2')
    env.wait_state('v', 's2', 'BackedUp')
    check_backup(env, 'v', 's2', ref, 32 * MiB)
    assert env.alerts() == {}
