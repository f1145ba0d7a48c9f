"""Upgrade of today's trees (docs/repository.md, "Upgrade of today's trees"):
a SECONDARY written without -o repository=on (full qcow2 copies and their
manifests) keeps working when the mount turns the repository on.  The old
backups are served as they are (their qcow2 file is the view), restore and
delete as before, and GC never touches them; new backups go into the
repository, in full the first time (no index to start from; the event says
why).  Back on a mount without the option, repository backups are kept but
not served, and come back when the option does."""

import errno
import os

from snapfs_harness import MiB, check_backup, events_of, qemu_img_compare, xxh128

from test_repository import (A, B, C, age_chunks, backup_end, check_published,
                             chunk_files, clone_and_compare, named_chunks, revert,
                             take_backed_up, uuid_of, view_check)

VSIZE = 64 * MiB


def old_files(env, vol, snap):
    """(stat key, xxh128) of the full-copy backup of @vol/@snap on SECONDARY."""
    path = os.path.join(env.secondary, 'volumes', vol, uuid_of(env, vol, snap) + '.qcow2')
    st = os.stat(path)
    return path, (st.st_ino, st.st_size, st.st_mtime_ns), xxh128(path)


def make_old_tree(env):
    """Today's code: two volumes, full-copy backups, no repository."""
    env.make_volume('v', '64M', A)
    env.make_volume('w', '64M', B)
    refs = {'a': env.make_reference('64M', A), 'ab': env.make_reference('64M', A + B),
            'w': env.make_reference('64M', B)}
    env.mount(repository='off', keep_primary=1)  # today's full copies: pinned
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 's2')
    take_backed_up(env, 'w', 't1')
    env.no_jobs_left()
    env.wait_for(lambda: env.info('v', 's1')['on_primary'] is False, 's1 off primary')
    for vol, snap, ref in (('v', 's1', 'a'), ('v', 's2', 'ab'), ('w', 't1', 'w')):
        check_backup(env, vol, snap, refs[ref], VSIZE)
        assert 'index' not in env.manifest(vol, snap)
    env.unmount()
    assert not os.path.exists(os.path.join(env.secondary, 'repository.json'))
    assert not os.path.exists(os.path.join(env.secondary, '.chunks'))
    return refs


def test_old_backups_work_with_the_repository_on(env):
    refs = make_old_tree(env)
    env.mount(repository='on', keep_primary=1)
    old = {(vol, snap): old_files(env, vol, snap)
           for vol, snap in (('v', 's1'), ('v', 's2'), ('w', 't1'))}
    # served as they are: listed, the same file, the same manifest checksum
    assert os.path.exists(os.path.join(env.secondary, 'repository.json'))
    assert env.listdir('backed-up', 'volumes', 'v') == ['s1.json', 's1.qcow2',
                                                         's2.json', 's2.qcow2']
    check_backup(env, 'v', 's1', refs['a'], VSIZE)
    check_backup(env, 'v', 's2', refs['ab'], VSIZE)
    check_backup(env, 'w', 't1', refs['w'], VSIZE)
    for (vol, snap), (path, key, _) in old.items():
        st = os.stat(env.backup_file(vol, snap))
        assert (st.st_size, st.st_mtime_ns) == (key[1], key[2]), (vol, snap)
    assert not [e for e in env.read_events() if e['type'] == 'recovery.missing']

    # a new backup goes into the repository, in full, and says why
    env.write_volume('v', C)
    ref_abc = env.make_reference('64M', A + B + C)
    take_backed_up(env, 'v', 's3')
    ev = backup_end(env, 'v', 's3')
    assert not ev['incremental'], ev
    assert 'full' in ev['message'] and 'qcow2' in ev['message'], ev
    check_published(env, 'v', 's3', VSIZE)
    view_check(env, 'v', 's3', ref_abc)
    # the next one is incremental over it
    env.write_volume('v', [(0x5a, '1M', '1M')])
    take_backed_up(env, 'v', 's4')
    assert backup_end(env, 'v', 's4')['incremental']

    # restores from the old copies
    env.wait_for(lambda: env.info('v', 's2')['on_primary'] is False, 's2 off primary')
    clone_and_compare(env, 'v', 's2', 'c2', refs['ab'])
    revert(env, 'v', 's1', 'secondary')
    assert qemu_img_compare(refs['a'], env.volume_path('v'), force_share=True) == 0

    # GC (after a delete of an old backup) never touches the old qcow2 files
    env.no_jobs_left()
    age_chunks(env)
    n = len(env.read_events())
    os.rmdir(env.snap_dir('w', 't1'))
    gc = env.wait_event(lambda e: e['type'] == 'repository.gc', since=n,
                        what='a GC run after the delete')
    assert gc.get('result') == 'ok', gc
    t1_path = old[('w', 't1')][0]
    assert not os.path.exists(t1_path)
    assert not os.path.exists(t1_path[:-len('.qcow2')] + '.json')
    for key in (('v', 's1'), ('v', 's2')):
        path, st_key, digest = old[key]
        st = os.stat(path)
        assert (st.st_ino, st.st_size, st.st_mtime_ns) == st_key, key
        assert xxh128(path) == digest, key
    assert set(chunk_files(env)) == named_chunks(env)
    # deleting an old backup removes its files, and nothing else
    os.rmdir(env.snap_dir('v', 's1'))
    env.wait_for(lambda: not os.path.exists(old[('v', 's1')][0]), 's1 files removed')
    assert os.path.exists(old[('v', 's2')][0])
    check_backup(env, 'v', 's2', refs['ab'], VSIZE)
    view_check(env, 'v', 's3', ref_abc)
    env.no_jobs_left()
    env.unmount()

    # without the option again: repository backups are kept, not served
    env.mount(repository='off')
    assert env.state('v', 's3') == 'BackedUp'
    assert not [e for e in env.read_events() if e['type'] == 'recovery.missing']
    assert os.path.exists(os.path.join(env.secondary, 'volumes', 'v',
                                       uuid_of(env, 'v', 's3') + '.index'))
    # the manifests stay listed (they say "format": "index"); no qcow2 view
    assert env.listdir('backed-up', 'volumes', 'v') == ['s2.json', 's2.qcow2',
                                                         's3.json', 's4.json']
    assert env.manifest('v', 's3')['format'] == 'index'
    try:
        os.stat(env.backup_file('v', 's3'))
        raise AssertionError('a repository backup served without the repository')
    except OSError as e:
        assert e.errno == errno.ENOENT, e
    # restores from it are refused with a reason, nothing is changed
    env.wait_for(lambda: env.info('v', 's3')['on_primary'] is False, 's3 off primary')
    n = len(env.read_events())
    try:
        env.control('v', 'revert s3')
        raise AssertionError('a revert from the repository with repository=off')
    except OSError as e:
        assert e.errno == errno.EOPNOTSUPP, e
    evs = events_of(env.events_since(n), 'volume.revert', 'v', 's3')
    assert evs and 'repository=off' in evs[-1]['message'], env.events_since(n)
    assert qemu_img_compare(refs['a'], env.volume_path('v'), force_share=True) == 0
    n = len(env.read_events())
    env.control('v', 'clone s3 c3')
    fail = env.wait_event(lambda e: e['type'] == 'clone.fail' and e.get('snapshot') == 's3',
                          since=n, what='the clone of s3 to fail')
    assert 'repository=off' in fail['message'], fail
    assert 'c3' not in env.primary_volume_files()
    check_backup(env, 'v', 's2', refs['ab'], VSIZE)
    # a backup made now is a full copy again
    take_backed_up(env, 'v', 's5')
    assert 'index' not in env.manifest('v', 's5')
    env.no_jobs_left()
    env.unmount()

    # and with the option back, the repository backups are served again
    env.mount(repository='on')
    view_check(env, 'v', 's3', ref_abc)
    assert env.listdir('backed-up', 'volumes', 'v') == [
        's2.json', 's2.qcow2', 's3.json', 's3.qcow2', 's4.json', 's4.qcow2',
        's5.json', 's5.qcow2']
