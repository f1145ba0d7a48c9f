"""Every errno row of docs/tree.md that applies so far: the operation fails with
that errno, and `events` gets a line naming it.  The daemon survives it all."""

import errno
import os

import pytest

from snapfs_harness import MiB, errno_name


def expect_errno(env, code, fn, *args, event=True):
    """fn(*args) must fail with @code and leave an event with that errno name."""
    n = len(env.read_events())
    with pytest.raises(OSError) as ei:
        fn(*args)
    got = ei.value.errno
    assert got == code, '%s%r: expected %s, got %s (%s)' % (
        fn.__name__, args, errno_name(code), errno_name(got), ei.value)
    if event:
        new = env.events_since(n)
        named = [ev for ev in new if ev.get('errno') == errno_name(code)]
        assert named, '%s%r failed with %s but no event names it; new events: %s' % (
            fn.__name__, args, errno_name(code), new)
        assert all(ev.get('message') for ev in named), named


def touch(path):
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))


def truncate_open(path):
    """What `echo > path` does to an existing file."""
    os.close(os.open(path, os.O_WRONLY | os.O_TRUNC))


def write_control(env, vol, command):
    env.control(vol, command)


def test_errno_rows(env):
    env.make_volume('v', '64M', [(0x12, 0, '1M')])
    env.mount(workers=2)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    snaps = env.vol_dir('v', 'snapshots')

    # EEXIST: a name that exists.  For mkdir the kernel's lookup finds the
    # name and answers EEXIST itself: snapfs never sees it, so no event.
    expect_errno(env, errno.EEXIST, os.mkdir, env.snap_dir('v', 's1'), event=False)
    env.take('v', 's2')
    expect_errno(env, errno.EEXIST, os.rename, env.snap_dir('v', 's2'),
                 env.snap_dir('v', 's1'))

    # EINVAL: bad names...
    for bad in ('.x', '-x', 'a b', 'a' * 129, 'a:b', 'caf\u00e9'):
        expect_errno(env, errno.EINVAL, os.mkdir, os.path.join(snaps, bad))
    expect_errno(env, errno.EINVAL, os.rename, env.snap_dir('v', 's2'),
                 os.path.join(snaps, '-renamed'))
    # ... while the longest and the oddest good ones work
    for good in ('a' * 128, 'A.b_c-9'):
        os.mkdir(os.path.join(snaps, good))
    # ... and control commands that are unknown or malformed
    for bad in ('frobnicate s1', 'retry', 'retry s1 s2', 'retry .x'):
        expect_errno(env, errno.EINVAL, write_control, env, 'v', bad)

    # ENOENT: retry of a snapshot that does not exist
    expect_errno(env, errno.ENOENT, write_control, env, 'v', 'retry nosuch')
    # mkdir under an unknown volume: the kernel's lookup of the volume fails
    # before any operation reaches snapfs, and lookups write no events
    expect_errno(env, errno.ENOENT, os.mkdir,
                 env.p('volumes', 'nosuch', 'snapshots', 'x'), event=False)

    # EROFS: anything that would change backed-up/
    bdir = env.p('backed-up', 'volumes', 'v')
    image, manifest = env.backup_file('v', 's1'), env.backup_file('v', 's1', 'json')
    before = {p: (os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in (image, manifest)}
    expect_errno(env, errno.EROFS, touch, os.path.join(bdir, 'new.qcow2'))
    expect_errno(env, errno.EROFS, truncate_open, manifest)
    expect_errno(env, errno.EROFS, os.open, image, os.O_RDWR)
    expect_errno(env, errno.EROFS, os.unlink, image)
    expect_errno(env, errno.EROFS, os.rename, image, os.path.join(bdir, 'x.qcow2'))
    expect_errno(env, errno.EROFS, os.utime, manifest)
    expect_errno(env, errno.EROFS, os.mkdir, os.path.join(bdir, 'dir'))
    expect_errno(env, errno.EROFS, os.mkdir, env.p('backed-up', 'volumes', 'newvol'))
    expect_errno(env, errno.EROFS, os.symlink, 'x', os.path.join(bdir, 'link'))
    after = {p: (os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in (image, manifest)}
    assert after == before
    listed = set(env.backups('v'))
    assert {'s1.json', 's1.qcow2'} <= listed, listed
    assert not {'new.qcow2', 'x.qcow2', 'dir', 'link'} & listed, listed

    # EPERM: files, links and directories where the tree has none
    expect_errno(env, errno.EPERM, touch, env.vol_dir('v', 'x'))
    expect_errno(env, errno.EPERM, touch, env.p('foo'))
    expect_errno(env, errno.EPERM, touch, env.snap_dir('v', 's1', 'x'))
    expect_errno(env, errno.EPERM, touch, os.path.join(snaps, 'file'))
    expect_errno(env, errno.EPERM, os.symlink, 's1', env.vol_dir('v', 'link'))
    expect_errno(env, errno.EPERM, os.symlink, 'volumes', env.p('link'))
    expect_errno(env, errno.EPERM, os.link, env.vol_dir('v', 'info'), env.vol_dir('v', 'info2'))
    expect_errno(env, errno.EPERM, os.mkdir, env.p('volumes', 'newvol'))
    expect_errno(env, errno.EPERM, os.mkdir, env.p('foo'))
    expect_errno(env, errno.EPERM, os.mkdir, env.snap_dir('v', 's1', 'sub'))

    # none of it hurt: the daemon runs and the tree is as it was
    assert env.alive()
    assert env.state('v', 's1') == 'BackedUp'
    assert sorted(env.snapshots('v')) == sorted(['a' * 128, 'A.b_c-9', 's1', 's2'])
    for ev in env.read_events():
        if ev.get('type') == 'rejected':
            assert ev.get('op') and ev.get('path') and ev.get('errno'), ev


def test_primary_full_gives_enospc(env):
    prim = env.tmpfs('primtmp', '16m')
    env.primary = os.path.join(prim, 'primary')
    os.mkdir(env.primary)
    env.make_volume('v', '64M', [(0x21, 0, '10M')])
    st = os.statvfs(env.primary)
    avail = st.f_bavail * st.f_frsize
    env.mount(workers=1, min_free=avail + MiB)

    expect_errno(env, errno.ENOSPC, os.mkdir, env.snap_dir('v', 's1'))
    assert env.snapshots('v') == [] and env.no_jobs_left()

    # the same mkdir works once min_free allows it
    env.remount(min_free=0)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
