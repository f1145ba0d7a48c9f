"""snapctl on a real mount (status, wait with real backups that succeed,
fail and time out, events -f, tree of a real VM, --json of each parsed by
json.loads), the blocking file wait/<vol>/<snap> read from Python (blocks,
answers, follows a rename, ENOENT on delete, at most 8 readers, killed
readers, the daemon stopping), the man pages (scdoc builds them, man/groff renders them) and
the bash completions.

$SNAPCTL_BIN is the snapctl binary (meson sets it, as it sets SNAPFS_BIN).
Every process a test starts is killed in a finally block.  Backups are
held back by stopping (SIGSTOP) the qemu-img of a big one (Stall), never
by sleeping."""

import contextlib
import errno
import json
import os
import pty
import queue
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from snapfs_harness import WAIT_TIMEOUT, fill, processes_mentioning, run, unmount_path
from vm_harness import vmenv  # noqa: F401

SNAPCTL = os.environ.get('SNAPCTL_BIN', '')
SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_NOT_FOUND = 0, 1, 2, 3, 4


def snapctl(*args, timeout=WAIT_TIMEOUT, env=None):
    """Run snapctl with @args; CompletedProcess (text), any exit status."""
    assert SNAPCTL and os.access(SNAPCTL, os.X_OK), \
        'SNAPCTL_BIN=%r is not executable (meson sets it; by hand: ' \
        'SNAPCTL_BIN=build/snapctl/snapctl)' % SNAPCTL
    return subprocess.run([SNAPCTL] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def snapctl_json(*args, want=EXIT_OK, **kw):
    proc = snapctl(*args, **kw)
    assert proc.returncode == want, 'snapctl %s exited %d (wanted %d)\n%s%s' % (
        ' '.join(args), proc.returncode, want, proc.stdout, proc.stderr)
    try:
        return json.loads(proc.stdout)
    except ValueError as e:
        raise AssertionError('snapctl %s --json printed no JSON document (%s): %r'
                             % (' '.join(args), e, proc.stdout))


@contextlib.contextmanager
def started(argv, **kw):
    """Popen(@argv); killed and reaped on the way out, whatever happens."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


class Lines:
    """The lines a process writes to a pipe, collected by a thread."""

    def __init__(self, pipe):
        self.q = queue.Queue()
        self.seen = []
        self.thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self.thread.start()

    def _pump(self, pipe):
        for line in pipe:
            self.q.put(line.rstrip('\n'))
        self.q.put(None)

    def wait_for(self, predicate, what, timeout=WAIT_TIMEOUT):
        """The first new line matching @predicate (the lines before it are kept
        in .seen)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, 'timed out waiting for %s; lines: %s' % (what, self.seen)
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, 'the output ended before %s; lines: %s' % (what, self.seen)
            self.seen.append(line)
            if predicate(line):
                return line


def small_secondary(env):
    """Secondary storage on a 32 MiB tmpfs with 4 MiB left: backups of
    volumes with more data fail with ENOSPC."""
    fs = env.tmpfs('sectmp', '32m')
    env.secondary = os.path.join(fs, 'secondary')
    os.mkdir(env.secondary)
    return fill(os.path.join(fs, 'filler'), '4M')


class Stall:
    """The (single) worker held in the copy of a big snapshot of volume
    `blocker`: its qemu-img convert is SIGSTOPped, so every backup taken
    meanwhile stays queued, BackingUp, until resume() (SIGCONT).  Used as a
    context manager, it always resumes on the way out."""

    def __init__(self, env):
        self.env, self.stopped = env, []

    def __enter__(self):
        return self.start()

    def start(self):
        env = self.env
        for attempt in range(3):
            snap = 'b%d' % attempt
            env.take('blocker', snap)
            env.wait_job_running('blocker', snap)
            env.wait_for(lambda: self._stop_converts() or env.job_for('blocker', snap) is None,
                         'the qemu-img convert of blocker/' + snap, timeout=30)
            if self.stopped:
                return self
        raise AssertionError('no qemu-img convert of blocker to stop in 3 tries')

    def _stop_converts(self):
        for pid, cmd in processes_mentioning(self.env.root):
            if 'qemu-img' in cmd and ' convert ' in cmd and pid not in self.stopped:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGSTOP)
                    self.stopped.append(pid)
        return bool(self.stopped)

    def resume(self):
        for pid in self.stopped:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        self.stopped = []

    def __exit__(self, *exc):
        self.resume()


def stalled_mount(env, **options):
    """A mount with one worker and a big `blocker` volume, and volume `v`."""
    env.make_volume('blocker', '2G', [(0x5a, 0, '1G')])
    env.make_volume('v', '64M', [(0x11, 0, '16M')])
    # the stall SIGSTOPs the full copy's qemu-img convert, which only
    # repository=off runs: pinned
    options.setdefault('repository', 'off')
    env.mount(workers=1, **options)
    return Stall(env)


def _in_fuse_wait(wchan_path):
    try:
        with open(wchan_path) as f:
            wchan = f.read()
    except OSError:
        return False
    return 'fuse' in wchan or 'request_wait_answer' in wchan


def _has_open(fd_dir, path):
    """Whether a descriptor in @fd_dir (/proc/<pid>/fd) is open on @path."""
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(os.path.join(fd_dir, fd)) == path:
                return True
    return False


def blocked_in_fuse(pid, path):
    """True once process @pid has @path (a wait file) open and sleeps in the
    kernel waiting for a FUSE answer: its read, not its open, which a
    rename or rmdir of the snapshot could still turn into ENOENT."""
    return _has_open('/proc/%d/fd' % pid, path) and _in_fuse_wait('/proc/%d/wchan' % pid)


def thread_blocked_in_fuse(tid, path):
    """The same for a thread of this process (threading.Thread.native_id)."""
    return _has_open('/proc/self/fd', path) and \
        _in_fuse_wait('/proc/self/task/%d/wchan' % tid)


# ---- status ----------------------------------------------------------------------

def test_status_of_a_mount(env):
    env.make_volume('web', '64M', [(0xa1, 0, '8M')])
    env.make_volume('db', '64M', [(0xd1, 0, '4M')])
    env.mount(workers=1)
    for vol, snap in (('web', 's1'), ('web', 's2'), ('db', 's1')):
        env.take(vol, snap)
    for vol, snap in (('web', 's1'), ('web', 's2'), ('db', 's1')):
        proc = snapctl('-m', env.mnt, 'wait', '-q', '%s/%s' % (vol, snap))
        assert proc.returncode == EXIT_OK, proc
        assert proc.stdout == 'volumes/%s/snapshots/%s: BackedUp\n' % (vol, snap), proc
    assert env.no_jobs_left()

    proc = snapctl('-m', env.mnt, 'status')
    assert proc.returncode == EXIT_OK, proc
    out = proc.stdout
    assert out.startswith('snapfs at %s\n' % env.mnt), out
    assert 'volumes: 2, snapshots: 3 BackedUp\n' in out, out
    assert re.search(r'^  web +2 snapshots +2 BackedUp$', out, re.M), out
    assert re.search(r'^  db +1 snapshot +1 BackedUp$', out, re.M), out
    assert 'vms: 0\njobs: 0 running, 0 queued\nalerts: 0\n' in out, out

    for args in (('--json', '-m', env.mnt, 'status'), ('-m', env.mnt, 'status', '--json'),
                 ('-m', env.mnt, '-j', 'status')):
        doc = snapctl_json(*args)
        assert doc['mount'] == env.mnt, doc
        assert [v['name'] for v in doc['volumes']] == ['db', 'web'], doc
        web = doc['volumes'][1]
        assert web['snapshots'] == 2 and web['states']['BackedUp'] == 2, doc
        assert web['states']['BackingUp'] == 0 and web['vm'] is None, doc
        assert doc['snapshots'] == {'BackingUp': 0, 'BackedUp': 3, 'BackupFailed': 0,
                                    'Damaged': 0, 'Destroying': 0}, doc
        assert doc['vms'] == [] and doc['jobs'] == [] and doc['alerts'] == [], doc

    # the mount from $SNAPFS_MOUNT; a mount that is not there
    doc = snapctl_json('status', '--json', env=dict(os.environ, SNAPFS_MOUNT=env.mnt))
    assert doc['mount'] == env.mnt
    assert snapctl('-m', os.path.join(env.root, 'nowhere'), 'status').returncode == EXIT_NOT_FOUND
    assert snapctl('-m', env.mnt, 'status', 'extra').returncode == EXIT_USAGE
    assert snapctl('-m', env.mnt, 'frobnicate').returncode == EXIT_USAGE
    assert snapctl().returncode == EXIT_USAGE
    assert snapctl('-h').returncode == EXIT_OK


# ---- wait ------------------------------------------------------------------------

def read_pty(master, chunks):
    """Collect what is written to the terminal @master until its last writer
    closes it (a thread's body)."""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: no writer left
            return
        if not data:
            return
        chunks.append(data)


def test_wait_for_a_real_backup(env):
    with stalled_mount(env) as stall:
        env.take('v', 's1')
        env.take('v', 's2')
        env.take('v', 's3')
        assert env.state('v', 's1') == 'BackingUp'
        # s1: plain lines on a pipe; s2: a progress bar on a terminal, the
        # snapshot named by its directory, the mount found from it (no -m)
        master, slave = pty.openpty()
        chunks = []
        pump = threading.Thread(target=read_pty, args=(master, chunks), daemon=True)
        pump.start()
        try:
            with started([SNAPCTL, '-m', env.mnt, 'wait', 'volumes/v/snapshots/s1'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p1, \
                    started([SNAPCTL, 'wait', env.snap_dir('v', 's2')], stdout=slave,
                            stderr=subprocess.PIPE) as p2:
                os.close(slave)
                slave = -1
                lines = Lines(p1.stdout)
                first = lines.wait_for(lambda ln: True, 'the first line of snapctl wait')
                assert first == 'volumes/v/snapshots/s1: queued', first
                env.wait_for(lambda: b'[' in b''.join(chunks), 'a progress bar', timeout=30)
                assert p1.poll() is None and p2.poll() is None
                stall.resume()
                lines.wait_for(lambda ln: ln == 'volumes/v/snapshots/s1: BackedUp',
                               'the BackedUp line', timeout=WAIT_TIMEOUT * 2)
                assert p1.wait(timeout=30) == EXIT_OK, p1.stderr.read()
                assert p2.wait(timeout=WAIT_TIMEOUT * 2) == EXIT_OK, p2.stderr.read()
            pump.join(30)
        finally:
            if slave >= 0:
                os.close(slave)
            os.close(master)
    assert all(ln.startswith('volumes/v/snapshots/s1: ') for ln in lines.seen), lines.seen
    shown = b''.join(chunks).decode(errors='replace')
    assert '\r' in shown and 'volumes/v/snapshots/s2 [' in shown, repr(shown)
    assert shown.rstrip().endswith('volumes/v/snapshots/s2: BackedUp'), repr(shown)
    assert env.state('v', 's1') == 'BackedUp' and env.state('v', 's2') == 'BackedUp'

    # --json: one document; VOL/SNAP names it
    doc = snapctl_json('-m', env.mnt, 'wait', '--json', 'v/s3')
    assert doc['snapshot'] == 'volumes/v/snapshots/s3' and doc['state'] == 'BackedUp', doc
    assert doc['timed_out'] is False and doc['info']['state'] == 'BackedUp', doc
    assert doc['info']['name'] == 's3' and doc['info']['on_secondary'] is True, doc

    # no such snapshot; a snapshot's directory in no snapfs mount; not a
    # snapshot's name
    assert snapctl('-m', env.mnt, 'wait', 'v/nosuch').returncode == EXIT_NOT_FOUND
    fake = os.path.join(env.scratch, 'volumes', 'v', 'snapshots', 's1')
    os.makedirs(fake)
    assert snapctl('wait', fake).returncode == EXIT_NOT_FOUND
    assert snapctl('-m', env.mnt, 'wait', 'a/b/c').returncode == EXIT_USAGE
    assert snapctl('-m', env.mnt, 'wait').returncode == EXIT_USAGE


def test_wait_for_a_failing_backup(env):
    small_secondary(env)
    env.make_volume('v', '256M', [(0x33, 0, '16M')])
    env.mount(workers=1, retry_delay=60)
    env.take('v', 's1')

    proc = snapctl('-m', env.mnt, 'wait', 'v/s1')
    assert proc.returncode == EXIT_FAILED, proc
    last = proc.stdout.splitlines()[-1]
    assert last.startswith('volumes/v/snapshots/s1: BackupFailed: '), proc.stdout
    assert len(last) > len('volumes/v/snapshots/s1: BackupFailed: '), 'no error shown'

    doc = snapctl_json('-m', env.mnt, 'wait', '--json', 'v/s1', want=EXIT_FAILED)
    assert doc['state'] == 'BackupFailed' and doc['info']['error'], doc

    # status shows the alert and the job waiting for its retry
    doc = snapctl_json('-m', env.mnt, 'status', '--json')
    assert doc['snapshots']['BackupFailed'] == 1, doc
    assert len(doc['alerts']) == 1 and doc['alerts'][0]['errno'] == 'ENOSPC', doc
    assert doc['alerts'][0]['snapshot'] == 's1', doc
    assert [j['state'] for j in doc['jobs']] == ['waiting'], doc
    out = snapctl('-m', env.mnt, 'status').stdout
    assert 'alerts: 1\n' in out and 'ENOSPC' in out, out
    assert 'waiting to retry' in out, out


def test_wait_times_out(env):
    with stalled_mount(env):
        env.take('v', 's1')
        proc = snapctl('-m', env.mnt, 'wait', '-q', '-t', '0.3', 'v/s1')
        assert proc.returncode == EXIT_TIMEOUT, proc
        assert 'still BackingUp' in proc.stderr, proc
        doc = snapctl_json('-m', env.mnt, 'wait', '--json', '--timeout', '0.3', 'v/s1',
                           want=EXIT_TIMEOUT)
        assert doc['timed_out'] is True and doc['state'] == 'BackingUp', doc
        # snapctl left with its reader in read(2): the read was interrupted
        # (had it not, snapctl would still wait here, for the stalled backup)
        assert env.state('v', 's1') == 'BackingUp'
    assert snapctl('-m', env.mnt, 'wait', '-t', 'soon', 'v/s1').returncode == EXIT_USAGE


# ---- the wait file ------------------------------------------------------------------

def test_wait_file_blocks_until_the_backup_ends(env):
    stall = stalled_mount(env)
    env.take('v', 'done')
    env.wait_state('v', 'done', 'BackedUp')
    # a final state answers at once; wait/ lists nothing, walks never block
    assert env.read('wait', 'v', 'done') == 'BackedUp\n'
    assert 'wait' in env.listdir() and env.listdir('wait') == [] \
        and env.listdir('wait', 'v') == []
    assert os.stat(env.p('wait', 'v', 'done')).st_mode & 0o777 == 0o440
    assert not os.path.exists(env.p('wait', 'v', 'nosuch'))
    assert not os.path.exists(env.p('wait', 'nosuch'))

    with stall:
        env.take('v', 's1')
        th, result = env.in_background(lambda: env.read('wait', 'v', 's1'))
        env.wait_for(lambda: thread_blocked_in_fuse(th.native_id, env.p('wait', 'v', 's1')),
                     'the reader to block in the wait file', timeout=30)
        assert env.state('v', 's1') == 'BackingUp' and 'value' not in result
        # the snapshot's own files, and a rename, do not wait for the reader:
        # it waits for the snapshot, whatever its name
        assert env.info('v', 's1')['state'] == 'BackingUp'
        os.rename(env.snap_dir('v', 's1'), env.snap_dir('v', 's1b'))
        assert env.state('v', 's1b') == 'BackingUp' and 'value' not in result
        stall.resume()
        th.join(WAIT_TIMEOUT * 2)
    assert not th.is_alive(), 'the wait file never answered'
    assert result == {'value': 'BackedUp\n', 'errno': 0}, result
    assert env.state('v', 's1b') == 'BackedUp'


def test_wait_file_of_a_deleted_snapshot(env):
    with stalled_mount(env):
        env.take('v', 's1')
        th, result = env.in_background(lambda: env.read('wait', 'v', 's1'))
        env.wait_for(lambda: thread_blocked_in_fuse(th.native_id, env.p('wait', 'v', 's1')),
                     'the reader to block in the wait file', timeout=30)
        os.rmdir(env.snap_dir('v', 's1'))
        th.join(30)
        assert not th.is_alive() and result.get('errno') == errno.ENOENT, result


@contextlib.contextmanager
def killing_readers(stall):
    """A list for the test's reader processes: on the way out @stall is
    resumed and every reader still running killed."""
    cats = []
    try:
        yield cats
    finally:
        stall.resume()
        for c in cats:
            if c.poll() is None:
                c.kill()
            c.wait(timeout=30)


def start_sleeping_readers(env, wait_file, n, cats):
    """Start @n `cat @wait_file` (appended to @cats, which the caller kills)
    and wait until each sleeps in the read."""
    for _ in range(n):
        cats.append(subprocess.Popen(['cat', wait_file], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL))
    for c in cats[-n:]:
        env.wait_for(lambda: blocked_in_fuse(c.pid, wait_file), 'cat %d to block' % c.pid,
                     timeout=30)


def read_errno(path):
    """The errno a read of @path fails with (it must fail)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as e:
            os.read(fd, 64)
    finally:
        os.close(fd)
    return e.value.errno


def test_wait_file_readers_are_bounded_and_interruptible(env):
    stall = stalled_mount(env)
    wait_file = env.p('wait', 'v', 's1')
    with killing_readers(stall) as cats:
        stall.start()
        env.take('v', 's1')
        n0 = len(env.read_events())
        start_sleeping_readers(env, wait_file, 8, cats)
        # the ninth: EBUSY at once, with an event saying why
        assert read_errno(wait_file) == errno.EBUSY
        rejected = [ev for ev in env.events_since(n0) if ev.get('type') == 'rejected'
                    and ev.get('errno') == 'EBUSY']
        assert rejected and rejected[0]['path'] == 'wait/v/s1', \
            env.events_since(n0)
        # snapctl, refused too, reads the state file instead (until its timeout)
        proc = snapctl('-m', env.mnt, 'wait', '-q', '-t', '0.5', 'v/s1')
        assert proc.returncode == EXIT_TIMEOUT, proc
        assert len([ev for ev in env.events_since(n0) if ev.get('errno') == 'EBUSY']) == 2
        # a killed reader leaves at once, even SIGKILLed in the read
        cats[0].send_signal(signal.SIGINT)
        cats[1].kill()
        assert cats[0].wait(timeout=20) != 0 and cats[1].wait(timeout=20) != 0
        # their slots are free again
        th, result = env.in_background(lambda: env.read('wait', 'v', 's1'))
        env.wait_for(lambda: thread_blocked_in_fuse(th.native_id, env.p('wait', 'v', 's1')),
                     'the reader to block in the wait file', timeout=30)
        stall.resume()
        for c in cats[2:]:
            out, _ = c.communicate(timeout=WAIT_TIMEOUT * 2)
            assert c.returncode == 0 and out == b'BackedUp\n', (c.returncode, out)
        th.join(WAIT_TIMEOUT)
        assert result == {'value': 'BackedUp\n', 'errno': 0}, result


def test_wait_slots_are_half_the_request_threads(env):
    # -o max_threads=4: two readers may sleep, and the other two threads
    # go on answering everything else.  (Before, 8 readers could sleep
    # whatever max_threads said: 4 of them stopped the whole mount.)
    stall = stalled_mount(env, max_threads=4)
    wait_file = env.p('wait', 'v', 's1')
    with killing_readers(stall) as cats:
        stall.start()
        env.take('v', 's1')
        n0 = len(env.read_events())
        start_sleeping_readers(env, wait_file, 2, cats)
        assert read_errno(wait_file) == errno.EBUSY
        rejected = [ev for ev in env.events_since(n0) if ev.get('errno') == 'EBUSY']
        assert rejected and '2 readers' in rejected[0]['message'], rejected
        # with two readers asleep, requests are still answered, in parallel too
        for _ in range(2):
            assert env.state('v', 's1') == 'BackingUp'
            assert sorted(env.listdir('volumes')) == ['blocker', 'v']
        stall.resume()
        for c in cats:
            out, _ = c.communicate(timeout=WAIT_TIMEOUT * 2)
            assert c.returncode == 0 and out == b'BackedUp\n', (c.returncode, out)


def test_wait_file_never_sleeps_in_a_single_threaded_mount(env):
    # snapfs -s answers every request from one thread: a read that slept
    # there would stop the mount, so it gets EBUSY at once (and an event).
    env.flags = ['-s']
    with stalled_mount(env):
        env.take('v', 's1')
        n0 = len(env.read_events())
        th, result = env.in_background(lambda: env.read('wait', 'v', 's1'))
        th.join(20)
        assert not th.is_alive(), 'a read of the wait file slept in a -s mount'
        assert result.get('errno') == errno.EBUSY, result
        rejected = [ev for ev in env.events_since(n0) if ev.get('errno') == 'EBUSY']
        assert rejected and '-s' in rejected[0]['message'], rejected
        assert env.state('v', 's1') == 'BackingUp'
    # once the backup has ended, the read returns its state, as always
    env.wait_state('v', 's1', 'BackedUp', timeout=WAIT_TIMEOUT)
    assert env.read('wait', 'v', 's1') == 'BackedUp\n'


def test_wait_file_returns_when_snapfs_stops(env):
    with stalled_mount(env):
        env.take('v', 's1')
        th, result = env.in_background(lambda: env.read('wait', 'v', 's1'))
        env.wait_for(lambda: thread_blocked_in_fuse(th.native_id, env.p('wait', 'v', 's1')),
                     'the reader to block in the wait file', timeout=30)
        # systemctl stop, kill: SIGTERM; the waiter must not hold the daemon
        proc, env.proc = env.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError('snapfs did not exit within 30 s of SIGTERM with a '
                                 'reader in a wait file\n' + env.diagnostics())
    assert rc == 0, 'snapfs exited with %d after SIGTERM\n%s' % (rc, env.diagnostics())
    th.join(30)
    assert not th.is_alive(), 'the reader of the wait file never returned'
    assert result.get('errno') in (errno.ENOTCONN, errno.ECONNABORTED), result
    assert unmount_path(env.mnt)


# ---- events ---------------------------------------------------------------------

def test_events_and_follow(env):
    env.make_volume('v', '64M', [(0x11, 0, '4M')])
    env.mount(workers=1)
    env.take('v', 's0')
    env.wait_state('v', 's0', 'BackedUp')
    events = env.read_events()

    proc = snapctl('-m', env.mnt, 'events')
    assert proc.returncode == EXIT_OK, proc
    lines = proc.stdout.splitlines()
    assert len(lines) == len(events), (lines, events)
    assert any(re.search(r'\bsnapshot\.take +v/s0 ', ln) for ln in lines), lines
    proc = snapctl('-m', env.mnt, 'events', '--json')
    assert [json.loads(ln) for ln in proc.stdout.splitlines()] == events

    for json_lines in (False, True):
        argv = [SNAPCTL, '-m', env.mnt, 'events', '-f'] + (['--json'] if json_lines else [])
        with started(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
            out = Lines(p.stdout)
            snap = 'f%d' % json_lines
            # the old events first, then a new one as it happens
            for _ in events:
                out.wait_for(lambda ln: True, 'the events so far')
            env.take('v', snap)
            if json_lines:
                line = out.wait_for(lambda ln: json.loads(ln).get('type') == 'snapshot.take',
                                    'the snapshot.take event of ' + snap)
                ev = json.loads(line)
                assert (ev['volume'], ev['snapshot']) == ('v', snap), ev
            else:
                out.wait_for(lambda ln: re.search(r'\bsnapshot\.take +v/%s ' % snap, ln),
                             'the snapshot.take line of ' + snap)
            assert p.poll() is None, 'events -f ended by itself'
            p.kill()
        env.wait_state('v', snap, 'BackedUp')
        events = env.read_events()


# ---- tree ---------------------------------------------------------------------

def test_tree_of_a_vm(vmenv):
    env = vmenv
    env.make_vm('vm1', ['a'])
    env.mount(workers=1)
    env.vm_take('vm1', 'r')
    env.vm_take('vm1', 'c1')
    env.vm_revert('vm1', 'r')
    env.vm_take('vm1', 'c2')
    assert env.vm_current('vm1') == 'c2'

    proc = snapctl('-m', env.mnt, 'tree', 'vm1', env={**os.environ, 'LC_ALL': 'C'})
    assert proc.returncode == EXIT_OK, proc
    lines = proc.stdout.splitlines()
    assert lines[0] == 'vm1', lines
    assert re.fullmatch(r'`-- r  disk  Ready  \S+Z', lines[1]), lines
    assert re.fullmatch(r'    \|-- c1  disk  Ready  \S+Z', lines[2]), lines
    assert re.fullmatch(r'    `-- c2  disk  Ready  \S+Z  <- current', lines[3]), lines
    assert len(lines) == 4, lines
    utf8 = snapctl('-m', env.mnt, 'tree', 'vm1', env={**os.environ, 'LC_ALL': 'C.UTF-8'})
    assert '└── c2' in utf8.stdout and '← current' in utf8.stdout, utf8.stdout

    doc = snapctl_json('-m', env.mnt, 'tree', '--json', 'vm1')
    assert doc['vm'] == 'vm1' and doc['current'] == 'c2', doc
    (root,) = doc['snapshots']
    assert root['name'] == 'r' and root['current'] is False, doc
    assert [c['name'] for c in root['children']] == ['c1', 'c2'], doc
    assert root['children'][1]['current'] is True and root['children'][1]['children'] == []
    assert root['type'] == 'disk' and root['state'] == 'Ready', doc

    doc = snapctl_json('-m', env.mnt, 'status', '--json')
    assert doc['vms'] == [{'name': 'vm1', 'state': 'stopped', 'snapshots': 3,
                           'current': 'c2'}], doc
    assert doc['volumes'][0]['name'] == 'a' and doc['volumes'][0]['vm'] == 'vm1', doc
    assert snapctl('-m', env.mnt, 'tree', 'nosuch').returncode == EXIT_NOT_FOUND


# ---- man pages and completions ---------------------------------------------------

def render_man(page_source):
    """The man page made by scdoc from @page_source, rendered as text."""
    if shutil.which('scdoc') is None:
        pytest.fail('scdoc missing (tools/packages.txt lists it)')
    with open(page_source, 'rb') as f:
        roff = subprocess.run(['scdoc'], stdin=f, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=60)
    assert roff.returncode == 0, roff.stderr.decode()
    groff = subprocess.run(['groff', '-man', '-Tutf8', '-ww', '-z'], input=roff.stdout,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert groff.returncode == 0 and not groff.stderr.strip(), groff.stderr.decode()
    text = subprocess.run(['groff', '-man', '-Tutf8'], input=roff.stdout,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert text.returncode == 0, text.stderr.decode()
    return re.sub(r'.\x08', '', text.stdout.decode())


def test_man_pages_build_and_render():
    man = os.path.join(SOURCE_DIR, 'docs', 'man')
    snapfs = render_man(os.path.join(man, 'snapfs.8.scd'))
    snapctl_page = render_man(os.path.join(man, 'snapctl.1.scd'))
    for section in ('NAME', 'SYNOPSIS', 'OPTIONS', 'FILES', 'ERRORS', 'EXIT STATUS',
                    'EXAMPLES', 'SEE ALSO'):
        assert section in snapfs, 'snapfs(8) lacks ' + section
    for section in ('NAME', 'SYNOPSIS', 'COMMANDS', 'EXIT STATUS', 'EXAMPLES'):
        assert section in snapctl_page, 'snapctl(1) lacks ' + section
    # every option `snapfs -h` lists is in the man page
    helptext = run([os.environ['SNAPFS_BIN'], '-h']).stdout
    ours = helptext.split('snapfs options:', 1)[1].split('\n\n', 1)[0]
    options = re.findall(r'^\s+-o ([a-z_]+)', ours, re.M)
    assert len(options) >= 10, helptext
    for opt in options:
        assert opt in snapfs, 'snapfs(8) does not document -o ' + opt
    # every errno of docs/errors.md is in the man page
    with open(os.path.join(SOURCE_DIR, 'docs', 'errors.md')) as f:
        names = set(re.findall(r'\bE[A-Z]{2,}\b', f.read()))
    missing = sorted(n for n in names if n not in snapfs)
    assert not missing, 'snapfs(8) does not mention ' + ', '.join(missing)
    for code in range(6):
        assert re.search(r'^\s+%d\s' % code, snapctl_page, re.M), \
            'snapctl(1) does not document exit status %d' % code
    # man(1) reads the page as it is installed
    if shutil.which('man'):
        with open(os.path.join(man, 'snapctl.1.scd'), 'rb') as f:
            roff = subprocess.run(['scdoc'], stdin=f, stdout=subprocess.PIPE, timeout=60).stdout
        page = os.path.join(os.environ.get('TMPDIR', '/tmp'), 'snapctl-test-%d.1' % os.getpid())
        try:
            with open(page, 'wb') as f:
                f.write(roff)
            out = subprocess.run(['man', '-l', page], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, timeout=60,
                                 env=dict(os.environ, MANPAGER='cat', PAGER='cat',
                                          MANWIDTH='80'))
            assert out.returncode == 0 and b'snapctl' in out.stdout, out
        finally:
            os.unlink(page)


def complete(script, words, cword):
    """COMPREPLY of the completion function of @script for @words."""
    func = {'snapctl': '_snapctl', 'snapfs': '_snapfs'}[os.path.basename(script)]
    prog = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=%d; '
            'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; %s; printf "%%s\\n" "${COMPREPLY[@]}"'
            % (cword, func))
    out = run(['bash', '-c', prog, 'bash', script] + list(words)).stdout
    return sorted(ln for ln in out.splitlines() if ln)


def test_bash_completions():
    comp = os.path.join(SOURCE_DIR, 'completions')
    snapctl_c = os.path.join(comp, 'snapctl')
    snapfs_c = os.path.join(comp, 'snapfs')
    assert complete(snapctl_c, ['snapctl', ''], 1) == ['--help', '--json', '--mount',
                                                      '--version', '-V', '-h', '-j', '-m',
                                                      'events', 'status', 'tree', 'wait']
    assert complete(snapctl_c, ['snapctl', 'st'], 1) == ['status']
    assert complete(snapctl_c, ['snapctl', '-m', '/x', 'ev'], 3) == ['events']
    assert complete(snapctl_c, ['snapctl', 'events', '-'], 2) == ['--follow', '--json',
                                                                  '-f', '-j']
    assert complete(snapctl_c, ['snapctl', 'wait', '--t'], 2) == ['--timeout']
    assert complete(snapfs_c, ['snapfs', '-o', 'pri'], 2) == ['primary=']
    assert 'workers=' in complete(snapfs_c, ['snapfs', '-o', 'primary=/a,'], 2) or \
        'primary=/a,workers=' in complete(snapfs_c, ['snapfs', '-o', 'primary=/a,'], 2)
    assert {'-V', '-d', '-f', '-h', '-o'} <= set(complete(snapfs_c, ['snapfs', '-'], 1))
