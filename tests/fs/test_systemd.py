"""snapfs under systemd: the unit passes `systemd-analyze verify`; snapfs run
the way the unit runs it says READY=1 (from its main process) only once the
mount answers, logs with journal priorities, and on SIGTERM says STOPPING=1,
unmounts and exits 0 with the catalog consistent; the fstab line of
docs/systemd.md mounts as type fuse.snapfs.

No systemd runs here as PID 1: the tests play its part (the notify socket,
the unit's ExecStart line, the SIGTERM of `systemctl stop`)."""

import os
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from snapfs_harness import MOUNT_TIMEOUT, is_mounted, qemu_img_compare, run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def built_unit(env):
    """The unit as this build configured it (BUILD/systemd/snapfs@.service)."""
    build = os.path.dirname(os.path.dirname(os.path.abspath(env.bin)))
    path = os.path.join(build, 'systemd', 'snapfs@.service')
    assert os.path.exists(path), 'no configured unit at %s (meson setup makes it)' % path
    with open(path) as f:
        return f.read()


def unit_value(text, key):
    m = re.search(r'^%s=(.*)$' % re.escape(key), text, re.M)
    assert m, '%s= missing from the unit' % key
    return m.group(1).strip()


def escape_path(path):
    return run(['systemd-escape', '--path', path]).stdout.strip()


def test_unit_passes_systemd_analyze_verify(env):
    if shutil.which('systemd-analyze') is None:
        pytest.fail('systemd-analyze missing (tools/packages.txt lists systemd)')
    text = built_unit(env)
    assert unit_value(text, 'Type') == 'notify'
    assert unit_value(text, 'KillMode') == 'process'
    argv = shlex.split(unit_value(text, 'ExecStart'))
    assert argv[1] == '-f' and argv[-2:] == ['${SOURCE}', '%f'], argv
    # verify checks that ExecStart's program exists: until `meson install`
    # has put snapfs there, point it at this build's binary
    unitdir = os.path.join(env.scratch, 'units')
    os.makedirs(unitdir)
    with open(os.path.join(unitdir, 'snapfs@.service'), 'w') as f:
        f.write(text.replace('ExecStart=' + argv[0], 'ExecStart=' + env.bin))
    instance = os.path.join(unitdir, 'snapfs@%s.service' % escape_path(env.mnt))
    # Documentation=man:snapfs(8) is checked only where the page is installed
    man = subprocess.run(['man', '-w', '8', 'snapfs'], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL).returncode == 0 \
        if shutil.which('man') else False
    proc = run(['systemd-analyze', 'verify', '--man=%s' % ('yes' if man else 'no'),
                instance], check=False, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip() and not proc.stdout.strip(), \
        'systemd-analyze verify: status %d\n%s%s' % (proc.returncode, proc.stdout,
                                                      proc.stderr)


class NotifySocket:
    """The socket systemd listens on for a Type=notify service: datagrams,
    with the sender's credentials (NotifyAccess=main wants the main PID)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)

    def receive(self, timeout):
        """(pid, {key: value}) of the next message, or None after @timeout s."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack('iII', payload[:12])[0]
        fields = dict(line.split('=', 1) for line in data.decode().splitlines() if '=' in line)
        return pid, fields

    def close(self):
        self.sock.close()


def start_like_the_unit(env, notify_path, options):
    """Run ExecStart of the configured unit, expanded as systemd would with
    SOURCE and OPTIONS from the instance's conf file, and stderr a stream
    that $JOURNAL_STREAM names (as systemd's stream to the journal is)."""
    argv = shlex.split(unit_value(built_unit(env), 'ExecStart'))
    expanded = []
    for word in argv[1:]:
        if word == '$OPTIONS':
            expanded += shlex.split(options)   # unbraced: split into words
        elif word == '${SOURCE}':
            expanded.append(env.source)
        elif word == '%f':
            expanded.append(env.mnt)
        else:
            expanded.append(word)
    env.mount_count += 1
    out_path = os.path.join(env.root, 'daemon-%d.out' % env.mount_count)
    out = open(out_path, 'wb')
    st = os.fstat(out.fileno())
    child_env = dict(os.environ, NOTIFY_SOCKET=notify_path,
                     JOURNAL_STREAM='%d:%d' % (st.st_dev, st.st_ino))
    for m in re.finditer(r'^Environment=(\w+)=(.*)$', built_unit(env), re.M):
        child_env[m.group(1)] = m.group(2)
    try:
        env.proc = subprocess.Popen([env.bin] + expanded, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, env=child_env,
                                    start_new_session=True)
    finally:
        out.close()
    env.pids.append(env.proc.pid)
    return out_path


def test_ready_only_when_the_mount_answers_and_sigterm_unmounts(env):
    data = [(0x5e, 0, '4M')]
    env.make_volume('v', '32M', data)
    ref = env.make_reference('32M', data)
    notify = NotifySocket(os.path.join(env.root, 'notify.sock'))
    try:
        out_path = start_like_the_unit(env, notify.path, '-o testclock,workers=1')
        messages = []
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while True:
            msg = notify.receive(timeout=max(0.0, deadline - time.monotonic()))
            assert msg is not None, 'no READY=1 within %d s (got %s)\n%s' % (
                MOUNT_TIMEOUT, messages, env.diagnostics())
            # checked the moment READY=1 arrives: mounted, and answering
            if msg[1].get('READY') == '1':
                assert is_mounted(env.mnt), 'READY=1 before the mount exists'
                assert 'volumes' in os.listdir(env.mnt)
            messages.append(msg)
            if msg[1].get('READY') == '1':
                break
        pid, fields = messages[-1]
        assert pid == env.proc.pid, 'READY=1 from pid %s, not the main process %d ' \
                                    '(NotifyAccess=main would drop it)' % (pid, env.proc.pid)
        assert fields.get('STATUS') == 'serving ' + env.mnt, fields
        assert len(messages) == 1, 'messages before READY=1: %s' % messages[:-1]

        env.take('v', 's1')
        env.wait_state('v', 's1', 'BackedUp')
        env.take('v', 's2')      # its copy may still run at the SIGTERM

        # systemctl stop: SIGTERM to the main process (KillMode=process)
        proc = env.proc
        proc.send_signal(signal.SIGTERM)
        msg = notify.receive(timeout=30)
        assert msg is not None and msg[1].get('STOPPING') == '1', msg
        rc = proc.wait(timeout=60)
        env.proc = None
        assert rc == 0, 'snapfs exited %d after SIGTERM\n%s' % (rc, env.diagnostics())
        assert not is_mounted(env.mnt), 'SIGTERM left the mount behind'
        assert env.leftover_processes() == [], 'SIGTERM left processes behind'
    finally:
        notify.close()

    # the journal gets each line with its priority
    with open(out_path, errors='replace') as f:
        lines = [line for line in f.read().splitlines() if line]
    assert lines, 'snapfs wrote nothing to stderr in the foreground'
    bad = [line for line in lines if not re.match(r'<[0-7]>(emerg|alert|crit|error|warning|'
                                                  r'notice|info|debug): ', line)]
    assert not bad, 'lines without a journal priority: %s' % bad[:5]
    assert any(line.startswith('<6>info: ') for line in lines), lines[:5]

    # the catalog is consistent, and the stopped copy resumes at the next mount
    check = run(['sqlite3', os.path.join(env.source, 'catalog.db'), 'PRAGMA integrity_check'])
    assert check.stdout.strip() == 'ok', check.stdout
    env.mount(workers=1)
    env.wait_state('v', 's2', 'BackedUp')
    assert qemu_img_compare(ref, env.backup_file('v', 's1')) == 0
    assert qemu_img_compare(ref, env.backup_file('v', 's2')) == 0


def test_stderr_is_plain_outside_the_journal(env):
    # $JOURNAL_STREAM inherited by a stderr that is not that stream
    env.make_volume('v', '16M')
    with open(os.path.join(env.root, 'other'), 'w') as f:
        st = os.fstat(f.fileno())
    old = os.environ.get('JOURNAL_STREAM')
    os.environ['JOURNAL_STREAM'] = '%d:%d' % (st.st_dev, st.st_ino)
    try:
        env.mount()
    finally:
        if old is None:
            del os.environ['JOURNAL_STREAM']
        else:
            os.environ['JOURNAL_STREAM'] = old
    env.unmount()
    with open(os.path.join(env.root, 'daemon-1.out'), errors='replace') as f:
        lines = [line for line in f.read().splitlines() if line]
    assert any(line.startswith('snapfs: info: engine: ') for line in lines), lines[:5]
    assert not [line for line in lines if re.match(r'<\d>', line)], lines[:5]


def docs_fstab_line():
    """The line of the ```fstab block in docs/systemd.md."""
    with open(os.path.join(REPO, 'docs', 'systemd.md')) as f:
        text = f.read()
    m = re.search(r'```fstab\n(.*?)\n```', text, re.S)
    assert m, 'docs/systemd.md has no ```fstab block'
    lines = [line for line in m.group(1).splitlines()
             if line.strip() and not line.startswith('#')]
    assert len(lines) == 1, lines
    return lines[0]


# mount(8) drops PATH before it runs mount.fuse3, whose shell then looks
# for `snapfs` in /usr/local/sbin, /usr/sbin... (where meson install puts
# it): the test puts this build's there, in a mount namespace of its own.
FSTAB_SCRIPT = r"""set -e
mount --bind "$1" /usr/local/sbin
mount -T "$2" "$3"
ls "$3/volumes"
cat "$3/volumes/CACHEDIR.TAG" >/dev/null
umount "$3"
"""


def test_fstab_line_of_the_docs_mounts(env):
    # mount(8) -> mount.fuse3 -> snapfs, type fuse.snapfs, daemonized, with
    # the very line of the docs (its paths moved into this test's tree)
    if shutil.which('unshare') is None:
        pytest.fail('unshare missing (util-linux)')
    line = docs_fstab_line()
    fields = line.split()
    assert len(fields) == 6 and fields[2] == 'fuse.snapfs', fields
    env.primary = os.path.join(env.root, 'srv-primary')
    env.make_volume('v', '16M')
    line = line.replace(fields[0], env.source, 1).replace(fields[1], env.mnt, 1)
    line = line.replace('primary=/srv/primary', 'primary=' + env.primary)
    fstab = os.path.join(env.scratch, 'fstab')
    with open(fstab, 'w') as f:
        f.write(line + '\n')
    bindir = os.path.join(env.scratch, 'sbin')
    os.makedirs(bindir)
    os.symlink(os.path.abspath(env.bin), os.path.join(bindir, 'snapfs'))
    proc = run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', FSTAB_SCRIPT,
                'sh', bindir, fstab, env.mnt], timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.split() == ['v'], \
        'the fstab line did not mount (status %d)\n%s%s\n%s' % (
            proc.returncode, proc.stdout, proc.stderr, env.diagnostics())
    # the daemon ends with its unmount (cleanup kills it otherwise)
    deadline = time.monotonic() + 30
    while env.leftover_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert env.leftover_processes() == [], 'snapfs still runs after umount'
