"""The command line: mount(8)-style options, -V, a missing SOURCE, umount."""

import os
import subprocess

from snapfs_harness import is_mounted, run


def test_fstab_options_are_accepted(env):
    # what an fstab line hands over besides snapfs's own options
    env.mount(workers=2, nofail=True, noauto=True, _netdev=True,
              **{'x-systemd.automount': True, 'x-mount.mkdir': True})
    assert 'volumes' in os.listdir(env.mnt)
    env.unmount()                     # and it exits 0 on fusermount3 -u


def test_plain_umount_works(env):
    env.mount()
    assert is_mounted(env.mnt)
    run(['umount', env.mnt])
    rc = env.proc.wait(timeout=20)
    env.proc = None
    assert rc == 0, 'snapfs exited %d after umount\n%s' % (rc, env.diagnostics())
    assert not is_mounted(env.mnt)


def test_version_names_the_parts(env):
    proc = run([env.bin, '-V'], check=False, timeout=30)
    out = (proc.stdout + proc.stderr).lower()
    assert proc.returncode == 0, out
    for part in ('snapfs', 'fuse', 'sqlite', 'qemu'):
        assert part in out, '-V does not name %s: %r' % (part, out)


def test_missing_source_is_refused(env):
    missing = os.path.join(env.root, 'no-such-source')
    proc = subprocess.run([env.bin, '-f', '-o', 'testclock', missing, env.mnt],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=30)
    assert proc.returncode != 0
    assert not is_mounted(env.mnt)
    assert not os.path.exists(missing), 'snapfs created the missing SOURCE'


def test_primary_and_secondary_are_created(env):
    env.primary = os.path.join(env.root, 'elsewhere', 'primary')
    env.secondary = os.path.join(env.root, 'elsewhere', 'secondary')
    os.makedirs(os.path.join(env.root, 'elsewhere'))
    env.mount()
    assert os.path.isdir(env.primary) and os.path.isdir(env.secondary)
