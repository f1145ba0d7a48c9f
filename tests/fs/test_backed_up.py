"""backed-up/ as backup tools see it: stable inode numbers, sizes and mtimes
across remounts, so a second rsync transfers nothing; contents equal to the
files on secondary storage; new backups visible without a remount."""

import os
import re

from snapfs_harness import run, secondary_matches_backups


def tree_stats(env):
    """{path under backed-up/: (st_ino, st_size, st_mtime_ns)} of every file."""
    top = env.p('backed-up')
    stats = {}
    for dirpath, _, names in os.walk(top):
        for name in names:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            stats[os.path.relpath(path, top)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return stats


def rsync(env, dest):
    """rsync -a --stats backed-up/ to @dest; the number of files it copied."""
    out = run(['rsync', '-a', '--stats', env.p('backed-up') + '/', dest + '/'],
              timeout=300).stdout
    m = re.search(r'Number of regular files transferred:\s*([\d,]+)', out)
    assert m, 'no transfer count in rsync --stats output:\n' + out
    return int(m.group(1).replace(',', ''))


def test_backed_up_is_stable_for_backup_tools(env):
    env.make_volume('web', '256M', [(0xa1, 0, '8M')])
    env.make_volume('db', '256M', [(0xd1, 0, '12M')])
    env.mount(workers=2)
    env.take('web', 's1')
    env.take('db', 's1')
    env.write_volume('db', [(0xd2, '100M', '4M')])
    env.take('db', 's2')
    for vol, snap in (('web', 's1'), ('db', 's1'), ('db', 's2')):
        env.wait_state(vol, snap, 'BackedUp')

    before = tree_stats(env)
    assert sorted(before) == sorted('volumes/%s/%s.%s' % (v, s, ext)
                                    for v, s in (('web', 's1'), ('db', 's1'), ('db', 's2'))
                                    for ext in ('qcow2', 'json'))
    assert len({ino for ino, _, _ in before.values()}) == len(before), \
        'two backed-up files share an inode number: %s' % before
    secondary_matches_backups(env)

    dest = os.path.join(env.scratch, 'rsync')
    assert rsync(env, dest) == 6
    assert rsync(env, dest) == 0, 'a second rsync copied files again'

    env.remount(workers=2)
    # Look the files up in another order first: inode numbers handed out in
    # lookup order (libfuse's default without use_ino) would then differ.
    os.stat(env.snap_dir('db', 's2', 'info'))
    for path in sorted(before, reverse=True):
        os.stat(os.path.join(env.p('backed-up'), path))
    after = tree_stats(env)
    changed = {p: (before[p], after.get(p)) for p in before if before[p] != after.get(p)}
    assert not changed, 'inode, size or mtime changed across a remount ' \
                        '((ino, size, mtime_ns) before, after): %s' % changed
    assert rsync(env, dest) == 0, 'rsync after a remount copied files again'

    # a new backup shows up without a remount, and only it is copied
    env.take('web', 's2')
    env.wait_state('web', 's2', 'BackedUp')
    assert {'s2.qcow2', 's2.json'} <= set(os.listdir(env.p('backed-up', 'volumes', 'web')))
    assert rsync(env, dest) == 2
    secondary_matches_backups(env)
    assert tree_stats(env)['volumes/db/s1.qcow2'] == before['volumes/db/s1.qcow2']


def test_backed_up_reads_back_exactly(env):
    # a larger image read with big requests, as a backup tool reads it
    env.make_volume('v', '1G', [(0xe1, 0, '96M'), (0xe2, '700M', '8M')])
    env.mount(workers=1)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    secondary_matches_backups(env)
    with open(env.backup_file('v', 's1'), 'rb', buffering=0) as f:
        first = f.read(1 << 20)
    assert first[:4] == b'QFI\xfb', 'not a qcow2 image: %r' % first[:4]
