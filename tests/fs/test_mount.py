"""The command line: mount(8)-style options, -V, a missing SOURCE, umount."""

import os
import subprocess
import time

from snapfs_harness import is_mounted, parent_pid, qemu_img_compare, run


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


def test_mounted_like_an_fstab_line(env):
    # mount(8) -> mount.fuse3 -> snapfs in the background (daemonized), with
    # the options an fstab line carries.  `PROGRAM#SOURCE` stands in for the
    # `fuse.snapfs` type, which would need snapfs installed on PATH.
    data = [(0x3c, 0, '2M')]
    env.make_volume('v', '64M', data)
    ref = env.make_reference('64M', data)
    prim = env.primary
    env.primary = os.path.join(env.root, 'prim-fstab')
    os.rename(prim, env.primary)
    run(['mount', '-t', 'fuse', '-o',
         'defaults,nofail,_netdev,testclock,workers=1,primary=' + env.primary,
         '%s#%s' % (env.bin, env.source), env.mnt], timeout=30)
    assert is_mounted(env.mnt)
    # One daemon: the foreground process exited after daemonizing.  A child
    # the daemon has forked but not yet exec'd (libvirt probing QEMU, a
    # qemu-img) shows the same command line for a moment; its parent is the
    # daemon, so it is not counted.
    found = [p for p, cmd in env.leftover_processes() if cmd.startswith(env.bin)]
    daemons = [p for p in found if parent_pid(p) not in found]
    assert len(daemons) == 1, env.leftover_processes()

    # worker threads run although the process daemonized after starting
    assert env.listdir('volumes') == ['v']
    env.take('v', 's1')
    deadline = time.monotonic() + 60
    while env.state('v', 's1') != 'BackedUp' and time.monotonic() < deadline:
        time.sleep(0.05)
    assert env.state('v', 's1') == 'BackedUp', env.diagnostics()
    assert qemu_img_compare(ref, env.backup_file('v', 's1')) == 0

    run(['umount', env.mnt])
    deadline = time.monotonic() + 20
    while os.path.exists('/proc/%d' % daemons[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists('/proc/%d' % daemons[0]), 'snapfs still runs after umount'
