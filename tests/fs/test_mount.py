"""The command line: mount(8)-style options, -V, a missing SOURCE, umount;
a mount that fails says why on stderr and in snapfs.log, and leaves nothing."""

import os
import signal
import socket
import subprocess
import time

import pytest

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


def test_sigterm_with_files_and_directories_open(env):
    # the kernel sends no release for what is still open when the daemon
    # stops on SIGTERM: it exits 0 all the same and (under ASan, where this
    # test also runs) frees every handle itself
    env.make_volume('v', '16M', [(0x11, 0, '1M')])
    env.mount()
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    held = [open(env.p(*parts), 'rb') for parts in (
        ('volumes', 'v', 'info'), ('volumes', 'v', 'snapshots', 's1', 'state'),
        ('events',), ('backed-up', 'volumes', 'v', 's1.qcow2'),
        ('backed-up', 'volumes', 'v', 's1.json'))]
    dirs = [os.open(env.p(*parts), os.O_RDONLY | os.O_DIRECTORY)
            for parts in (('volumes',), ('volumes', 'v', 'snapshots'))]
    try:
        for f in held:
            f.read(1)
        for fd in dirs:
            os.listdir(fd)
        env.proc.send_signal(signal.SIGTERM)
        rc = env.proc.wait(timeout=30)
        env.proc = None
        assert rc == 0, 'snapfs exited %d on SIGTERM\n%s' % (rc, env.diagnostics())
    finally:
        for f in held:
            f.close()
        for fd in dirs:
            os.close(fd)
    assert not is_mounted(env.mnt)


def test_host_name_is_recorded_and_kept(env):
    # every manifest names this host and the volume's uuid (issue 14); the
    # first mount records the host name, later ones keep it
    env.make_volume('v', '16M', [(0x11, 0, '1M')])
    env.mount()
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    short = socket.gethostname().split('.')[0]
    m = env.manifest('v', 's1')
    assert m['host'] == short, m
    assert m['volume_uuid'] == env.volume_info('v')['uuid'], m
    assert "host '%s'" % short in env.log_text()
    env.unmount()
    # another name for the same catalog: refused, the backups untouched
    manifest = open(os.path.join(env.secondary, 'volumes', 'v', m['uuid'] + '.json')).read()
    for bad, says in (('other-host', "this catalog is host '%s'" % short),
                      ('.hidden', 'a host name is')):
        with pytest.raises(AssertionError) as e:
            env.mount(host=bad)
        assert says in str(e.value) and not is_mounted(env.mnt), str(e.value)
        env.options.pop('host')
    assert open(os.path.join(env.secondary, 'volumes', 'v', m['uuid'] + '.json')).read() == manifest
    env.mount(host=short)           # the recorded one is fine
    assert env.manifest('v', 's1')['host'] == short
    env.unmount()


def test_host_option_names_a_new_catalog(env):
    env.make_volume('v', '16M', [(0x11, 0, '1M')])
    env.mount(host='kvm-a')
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    assert env.manifest('v', 's1')['host'] == 'kvm-a'
    env.unmount()
    env.options.pop('host')
    env.mount()                     # without host=: the recorded one
    env.take('v', 's2')
    env.wait_state('v', 's2', 'BackedUp')
    assert env.manifest('v', 's2')['host'] == 'kvm-a'
    assert env.manifest('v', 's1')['host'] == 'kvm-a'


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


def test_default_primary_and_any_secondary_are_created(env):
    os.rmdir(env.primary)                       # SOURCE/primary, the default
    env.secondary = os.path.join(env.root, 'elsewhere', 'secondary')
    os.makedirs(os.path.join(env.root, 'elsewhere'))
    env.mount()
    assert os.path.isdir(env.primary) and os.path.isdir(env.secondary)


# ---- a mount that fails -------------------------------------------------------

def start_failing(env, options, foreground=False):
    """Run snapfs the way mount(8)'s helper does (in the background unless
    @foreground) with -o @options and nothing else; it must fail.  Returns
    its stderr lines."""
    argv = [env.bin] + (['-f'] if foreground else []) + ['-o', options,
                                                         env.source, env.mnt]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    lines = proc.stderr.splitlines()
    assert proc.returncode != 0, 'snapfs -o %s exited 0\nstderr: %s\n%s' % (
        options, proc.stderr, env.diagnostics())
    # the command has returned: nothing may be left behind
    assert not is_mounted(env.mnt), 'a failed mount left %s mounted' % env.mnt
    assert env.leftover_processes() == [], env.leftover_processes()
    return lines


def assert_says_why(env, lines, *cause):
    """Exactly one line on stderr, naming every part of @cause, and the same
    message, whole, in SOURCE/snapfs.log."""
    assert len(lines) == 1, 'want one line on stderr, got %r\n%s' % (
        lines, env.diagnostics())
    line = lines[0]
    for part in cause:
        assert part in line, '%r does not say %r' % (line, part)
    prefix = 'snapfs: error: '
    assert line.startswith(prefix), line
    assert ' error: %s\n' % line[len(prefix):] in env.log_text(), \
        'not in snapfs.log whole: %r\n%s' % (line, env.diagnostics())


def test_unknown_option_is_named(env):
    lines = start_failing(env, 'testclock,libvirt=none,bogus=1')
    assert_says_why(env, lines, "unknown option 'bogus=1'", 'snapfs -h')


def test_unreachable_libvirt_fails_the_mount(env):
    # a libvirt named on the command line that does not answer is an error,
    # not a mount without VMs; found after the fork, said before the exit
    uri = 'qemu+unix:///system?socket=%s' % os.path.join(env.root, 'no-libvirt-sock')
    lines = start_failing(env, 'testclock,libvirt=' + uri)
    assert_says_why(env, lines, 'connect', "'%s'" % uri)


def test_unreachable_libvirt_fails_in_the_foreground_too(env):
    # -f, as the systemd unit runs it: stderr is the whole log there
    uri = 'qemu+unix:///system?socket=%s' % os.path.join(env.root, 'no-libvirt-sock')
    lines = start_failing(env, 'testclock,libvirt=' + uri, foreground=True)
    errors = [line for line in lines if line.startswith('snapfs: error: ')]
    assert len(errors) == 1 and uri in errors[0], lines


def test_missing_primary_is_refused_not_created(env):
    # a typo, or storage not mounted yet: never an empty directory to serve
    missing = os.path.join(env.root, 'no-such-primary')
    lines = start_failing(env, 'testclock,libvirt=none,primary=' + missing)
    assert_says_why(env, lines, "primary storage '%s'" % missing,
                    'No such file or directory')
    assert not os.path.exists(missing), 'snapfs created the missing primary'


@pytest.mark.parametrize('kind', ['directory', 'garbage'])
def test_catalog_that_cannot_be_opened(env, kind):
    catalog = os.path.join(env.source, 'catalog.db')
    if kind == 'directory':
        os.mkdir(catalog)
        reason = 'Is a directory'
    else:
        with open(catalog, 'wb') as f:
            f.write(b'not a catalog\n' * 300)
        reason = 'file is not a database'
    lines = start_failing(env, 'testclock,libvirt=none')
    assert_says_why(env, lines, "cannot open '%s'" % catalog, reason)


def test_daemon_killed_as_it_starts_leaves_nothing_mounted(env):
    # the daemon dies before it is ready (kill -9 as the engine starts):
    # the command fails, says so, and takes down the mount it cannot serve
    proc = subprocess.Popen([env.bin, '-o', 'testclock,libvirt=none', env.source, env.mnt],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, SNAPFS_HANG_AT='engine.start'))
    try:
        deadline = time.monotonic() + 30
        while 'testpoint: hanging at engine.start' not in env.log_text():
            assert proc.poll() is None and time.monotonic() < deadline, env.diagnostics()
            time.sleep(0.05)
        daemons = [p for p, _ in env.leftover_processes() if parent_pid(p) == proc.pid]
        assert len(daemons) == 1 and is_mounted(env.mnt), env.leftover_processes()
        os.kill(daemons[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    lines = err.splitlines()
    assert len(lines) == 1 and 'killed by signal 9' in lines[0], lines
    assert not is_mounted(env.mnt), 'the dead daemon left %s mounted' % env.mnt
    assert env.leftover_processes() == [], env.leftover_processes()


def test_read_only_source_says_why(env):
    # the catalog cannot be created, nor the log opened: both said on stderr
    env.primary = os.path.join(env.root, 'primary')
    env.secondary = os.path.join(env.root, 'secondary')
    os.mkdir(env.primary)
    run(['mount', '--bind', env.source, env.source])
    env.extra_mounts.append(env.source)          # cleanup unmounts it
    run(['mount', '-o', 'remount,bind,ro', env.source])
    lines = start_failing(env, 'testclock,libvirt=none,primary=%s,secondary=%s' % (
        env.primary, env.secondary))
    catalog = os.path.join(env.source, 'catalog.db')
    assert [line for line in lines if line.startswith('snapfs: error: ')] == [
        "snapfs: error: catalog: cannot open '%s': Read-only file system" % catalog], lines
    assert any('snapfs.log' in line for line in lines), lines


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
