"""snapfs_harness - mount a real snapfs on real qcow2 volumes, for the mount tests.

Each test gets a fresh state directory under /var/tmp (SOURCE, with
SOURCE/primary and SOURCE/secondary by default), a mount point, and a scratch
directory for reference images.  Volumes are real qcow2 files written with
qemu-io; the daemon is the real binary ($SNAPFS_BIN), started in the
foreground with `-o testclock` so that nothing depends on real time passing.

Cleanup always runs (Snapfs.cleanup(), called by the `env` fixture and by
snapfs_env()): unmount with fusermount3 (then umount -l), stop the daemon
(SIGKILL after a grace period), end the qemu-img processes a killed daemon
left behind, unmount the tmpfs the test mounted, and only then remove the
temporary tree, never through a live mount.

A watchdog per test kills the daemon when a test runs too long: a FUSE
request that never gets an answer can only be ended that way, and the test
then fails (ECONNABORTED or ENOTCONN) instead of hanging.

Only the Python 3.11 standard library is used here.
"""

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time

MOUNT_TIMEOUT = 20          # seconds for the mount point to appear
WAIT_TIMEOUT = 90           # default bound for waiting on a state change
WATCHDOG_SECONDS = int(os.environ.get('SNAPFS_TEST_WATCHDOG', '150'))
POLL = 0.02

STATES = ('BackingUp', 'BackedUp', 'BackupFailed', 'Destroying')
FINAL_STATES = ('BackedUp', 'BackupFailed')

MiB = 1 << 20
GiB = 1 << 30


# ---- prerequisites ----------------------------------------------------------

def missing_prerequisites():
    """Reasons the mount tests cannot run here (empty list: they can)."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append('not root')
    if not os.path.exists('/dev/fuse'):
        reasons.append('/dev/fuse missing')
    for prog in ('qemu-img', 'qemu-io', 'fusermount3'):
        if shutil.which(prog) is None:
            reasons.append(prog + ' missing')
    return reasons


# ---- small helpers ------------------------------------------------------------

def parse_size(size):
    """'64M' / '1G' / '512k' / 4096 -> bytes (the suffixes qemu-img takes)."""
    if isinstance(size, int):
        return size
    m = re.fullmatch(r'(\d+)([kKMGT]?)', str(size).strip())
    if not m:
        raise ValueError('bad size %r' % size)
    mult = {'': 1, 'k': 1 << 10, 'K': 1 << 10, 'M': MiB, 'G': GiB,
            'T': 1 << 40}[m.group(2)]
    return int(m.group(1)) * mult


def run(argv, timeout=120, check=True, **kw):
    """Run a program (argv list, no shell); return CompletedProcess (text)."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          **kw)
    if check and proc.returncode != 0:
        raise AssertionError('%s exited %d\nstdout: %s\nstderr: %s' % (
            ' '.join(argv), proc.returncode, proc.stdout[-2000:],
            proc.stderr[-2000:]))
    return proc


def qemu_io_args(writes):
    """[(pattern, offset, length), ...] -> qemu-io -c arguments."""
    args = []
    for pattern, offset, length in writes:
        offset, length = parse_size(offset), parse_size(length)
        # qemu-io allocates one buffer per request: keep requests modest
        while length > 0:
            chunk = min(length, 256 * MiB)
            args += ['-c', 'write -q -P 0x%02x %d %d' % (pattern, offset, chunk)]
            offset += chunk
            length -= chunk
    return args


def qemu_img_create(path, size):
    run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, str(size)])


def qemu_io_write(path, writes, force_share=False):
    if not writes:
        return
    argv = ['qemu-io', '-f', 'qcow2']
    if force_share:
        argv.append('-U')
    run(argv + qemu_io_args(writes) + [path], timeout=300)


def qemu_img_compare(a, b, force_share=False):
    """0: same guest-visible data; 1: they differ.  Other outcomes raise."""
    argv = ['qemu-img', 'compare', '-f', 'qcow2', '-F', 'qcow2']
    if force_share:
        argv.append('-U')
    proc = run(argv + [a, b], timeout=300, check=False)
    if proc.returncode not in (0, 1):
        raise AssertionError('qemu-img compare %s %s failed (%d): %s%s' % (
            a, b, proc.returncode, proc.stdout, proc.stderr))
    return proc.returncode


def qemu_img_info(path, force_share=False):
    argv = ['qemu-img', 'info', '--output=json']
    if force_share:
        argv.append('-U')
    return json.loads(run(argv + [path]).stdout)


def xxh128(path):
    out = run(['xxh128sum', path], timeout=300).stdout
    return out.split()[0]


# ---- the mount table, read without touching the mounts themselves ---------------

def _unescape(field):
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), field)


def mount_table():
    """[(mount point, fstype)] from /proc/self/mountinfo (no stat of a mount:
    a dead FUSE mount answers those with ENOTCONN, a hung one never)."""
    table = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            left, _, right = line.partition(' - ')
            fields = left.split()
            table.append((_unescape(fields[4]), right.split()[0] if right else ''))
    return table


def is_mounted(path):
    return any(mp == path for mp, _ in mount_table())


def mounts_under(path):
    """Mount points at or below @path, deepest first."""
    prefix = path.rstrip('/') + '/'
    found = {mp for mp, _ in mount_table() if mp == path or mp.startswith(prefix)}
    return sorted(found, key=len, reverse=True)


def unmount_path(path, fuse=True):
    """Unmount @path: fusermount3 -u (or umount), retried while busy, then lazily."""
    for _ in range(10):
        if not is_mounted(path):
            return True
        argv = ['fusermount3', '-u', path] if fuse else ['umount', path]
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30)
        if not is_mounted(path):
            return True
        time.sleep(0.2)
    subprocess.run(['umount', '-l', path], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30)
    return not is_mounted(path)


def parent_pid(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return int(f.read().rsplit(')', 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def read_pid(path):
    """The pid in pid file @path; 0 when it is missing or not a number."""
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def pid_alive(pid):
    """Whether process @pid exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return os.path.exists('/proc/%d' % pid) and parent_pid(pid) != 0


def _interrupted(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)


def interrupt_on_termination():
    """Turn SIGTERM and SIGHUP into a KeyboardInterrupt (where nobody
    handles them yet; from the main thread only), so that a stopped run
    still runs pytest's teardown and atexit: what it started is stopped."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _interrupted)


class SessionDaemon:
    """One daemon of a kind per pytest process (the private libvirtd, the
    Ceph cluster): get() makes it with @make at the first call and starts
    it (again when found dead: its alive() and start()); a start that
    failed fails every later get() at once, naming @what.  stop() closes
    it (close()); conftest.py calls it at the end of the session, safe to
    call twice."""

    def __init__(self, what, make):
        self.what, self.make = what, make
        self.daemon, self.error = None, None
        self.lock = threading.Lock()

    def get(self):
        with self.lock:
            if self.error is not None:
                raise AssertionError('%s could not start earlier: %s' % (self.what, self.error))
            if self.daemon is None:
                self.daemon = self.make()
            if not self.daemon.alive():
                try:
                    self.daemon.start()
                except AssertionError as e:
                    self.error = str(e)
                    raise
            return self.daemon

    def stop(self):
        with self.lock:
            daemon, self.daemon = self.daemon, None
        if daemon is not None:
            daemon.close()


def processes_mentioning(text, exclude=()):
    """[(pid, cmdline)] of processes whose command line contains @text,
    leaving out this process and the processes in @exclude with all their
    descendants."""
    found = []
    for name in os.listdir('/proc'):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % name, 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if text not in cmd:
            continue
        pid, ancestors = int(name), set()
        while pid > 1 and pid not in ancestors:
            ancestors.add(pid)
            pid = parent_pid(pid)
        if ancestors & set(exclude):
            continue
        found.append((int(name), cmd.strip()))
    return found


def report_line(request, text):
    """Print @text in pytest's output even when it captures stdout, so a
    test's figures (runs, faults, violations) reach the CI log and meson's
    testlog.txt for a passing test too.  @request: pytest's fixture."""
    capture = request.config.pluginmanager.get_plugin('capturemanager')
    if capture is None:
        print(text, flush=True)
        return
    with capture.global_and_fixture_disabled():
        print(text, flush=True)


# ---- the mounted snapfs ----------------------------------------------------------

class Snapfs:
    """One state directory, its volumes, and the snapfs mounted on it.

    Paths: root (the temporary tree), source, primary, secondary, mnt,
    scratch (reference images; never seen by snapfs).
    """

    def __init__(self, name='t', bin=None):
        self.bin = bin or os.environ.get('SNAPFS_BIN')
        base = '/var/tmp' if os.path.isdir('/var/tmp') else None
        self.root = tempfile.mkdtemp(prefix='snapfs-%s-' % re.sub(r'\W', '_', name)[:40],
                                     dir=base)
        self.source = os.path.join(self.root, 'source')
        self.primary = os.path.join(self.source, 'primary')
        self.secondary = os.path.join(self.source, 'secondary')
        self.mnt = os.path.join(self.root, 'mnt')
        self.scratch = os.path.join(self.root, 'scratch')
        for d in (self.source, self.primary, self.mnt, self.scratch):
            os.makedirs(d, exist_ok=True)
        self.options = {}
        self.flags = []         # command-line flags before -o (e.g. -s)
        # argv words the daemon's command line starts with, e.g. nsenter
        # --net=... -- (netns_harness.py: a host in a network namespace);
        # they must exec the daemon, so that proc.pid is its own (kill9())
        self.prefix = []
        self.proc = None
        self.pids = []              # every daemon pid this object started
        self.mount_count = 0
        self.extra_mounts = []      # tmpfs mounted by the test
        self.problems = []          # found during cleanup: fail the test
        self.watchdog = None
        self.watchdog_fired = False
        self.refs = 0
        self.rados = None           # a repo_backend.RadosRepo: SECONDARY on RADOS

    # -- the repository's storage ------------------------------------------------------

    def use_rados(self, repo):
        """Mount with the repository in @repo (a repo_backend.RadosRepo):
        -o secondary=rados:<pool>/<namespace>,ceph_conf=<conf>.  SECONDARY
        (self.secondary) stays a local directory the daemon does not use."""
        self.rados = repo

    @property
    def repo(self):
        """The repository's storage, for a test's direct looks and pokes
        (repo_backend.py): the RADOS namespace of use_rados(), else the
        files under SECONDARY."""
        if self.rados is not None:
            return self.rados
        from repo_backend import PosixRepo
        return PosixRepo(self.secondary)

    # -- storage set-up ------------------------------------------------------------

    def tmpfs(self, name, size):
        """Mount a tmpfs of @size (e.g. '32m') at ROOT/@name; unmounted by cleanup."""
        path = os.path.join(self.root, name)
        os.makedirs(path, exist_ok=True)
        run(['mount', '-t', 'tmpfs', '-o', 'size=%s' % size, 'tmpfs', path])
        self.extra_mounts.append(path)
        return path

    def volume_path(self, name):
        return os.path.join(self.primary, name + '.qcow2')

    def make_volume(self, name, size, writes=()):
        """Create PRIMARY/@name.qcow2 of virtual @size and write
        [(pattern, offset, length), ...] into it with qemu-io."""
        path = self.volume_path(name)
        os.makedirs(self.primary, exist_ok=True)
        qemu_img_create(path, size)
        qemu_io_write(path, writes)
        return path

    def write_volume(self, name, writes):
        """Write into a live volume, as a guest would (qemu-io)."""
        qemu_io_write(self.volume_path(name), writes)

    def make_reference(self, size, writes=()):
        """A qcow2 in scratch/ with the given data: what a backup should hold."""
        self.refs += 1
        path = os.path.join(self.scratch, 'ref%d.qcow2' % self.refs)
        qemu_img_create(path, size)
        qemu_io_write(path, writes)
        return path

    # -- the daemon ------------------------------------------------------------------

    def mount(self, **options):
        """Start `$SNAPFS_BIN -f -o testclock,... SOURCE MNT` and wait for the mount.

        @options become -o key=value (True: a bare flag); they are remembered
        for remount().  primary= and secondary= are passed when the test moved
        them away from their defaults (secondary=rados:... and ceph_conf=
        after use_rados()).
        """
        assert self.bin, 'SNAPFS_BIN is not set (meson sets it; by hand: ' \
                         'SNAPFS_BIN=build/fs/snapfs python3 -m pytest tests/fs)'
        assert os.access(self.bin, os.X_OK), 'SNAPFS_BIN=%s is not executable' % self.bin
        assert self.proc is None, 'already mounted'
        self.options.update(options)
        opts = self.mount_options()
        self.mount_count += 1
        out_path = os.path.join(self.root, 'daemon-%d.out' % self.mount_count)
        with open(out_path, 'wb') as out:
            self.proc = subprocess.Popen(
                self.prefix + [self.bin, '-f'] + self.flags + ['-o', ','.join(opts), self.source, self.mnt],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.pids.append(self.proc.pid)
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not is_mounted(self.mnt):
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise AssertionError('snapfs exited with status %d before mounting\n%s'
                                     % (rc, self.diagnostics()))
            if time.monotonic() > deadline:
                raise AssertionError('snapfs did not mount within %d s\n%s'
                                     % (MOUNT_TIMEOUT, self.diagnostics()))
            time.sleep(0.05)
        # The first request waits for FUSE_INIT (and the engine's recovery).
        os.listdir(self.mnt)

    def mount_refused(self, timeout=60, **options):
        """`snapfs -o ... SOURCE MNT` as a user runs it (in the background,
        no -f) with self.options and @options (not remembered): the command
        must fail, exit non-zero within @timeout seconds, and leave nothing
        mounted and no daemon.  A check at the daemon's start (RADOS is
        connected after the fork) fails it too, where a -f mount would show
        the mount point first.  Returns (its stderr less the engine's start
        line, which names the options; the seconds it took)."""
        assert self.proc is None, 'already mounted'
        saved = dict(self.options)
        self.options.update(options)
        try:
            argv = self.prefix + [self.bin] + self.flags + ['-o', ','.join(self.mount_options()),
                                             self.source, self.mnt]
        finally:
            self.options = saved
        t0 = time.monotonic()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)
        took = time.monotonic() - t0
        assert proc.returncode != 0, 'mounted: %s\n%s' % (argv, proc.stderr)
        deadline = time.monotonic() + 10
        while is_mounted(self.mnt) or self.leftover_processes():
            assert time.monotonic() < deadline, 'a refused mount left %s mounted (%s)' % (
                self.mnt, self.leftover_processes())
            time.sleep(0.05)
        text = '\n'.join(line for line in proc.stderr.splitlines()
                         if 'engine: starting' not in line)
        return text, took

    def mount_options(self):
        """The -o list mount() passes for self.options (without -f)."""
        opts = ['testclock']
        if self.primary != os.path.join(self.source, 'primary'):
            opts.append('primary=' + self.primary)
        if self.rados is not None:
            opts += ['secondary=' + self.rados.secondary_option(),
                     'ceph_conf=' + self.rados.conf]
        elif self.secondary != os.path.join(self.source, 'secondary'):
            opts.append('secondary=' + self.secondary)
        for key, value in self.options.items():
            opts.append(key if value is True else '%s=%s' % (key, value))
        # a test that does not choose runs in the mode SNAPFS_TEST_REPOSITORY
        # names (on|off), else in the daemon's default; on RADOS always on
        if 'repository' not in self.options and os.environ.get('SNAPFS_TEST_REPOSITORY') \
                and self.rados is None:
            opts.append('repository=' + os.environ['SNAPFS_TEST_REPOSITORY'])
        return opts

    def repository_mode(self):
        """'on' or 'off': the mode this mount runs in (or will, at its next
        mount()): the test's own repository= option, else
        SNAPFS_TEST_REPOSITORY, else the daemon's default (on); always on
        with a RADOS secondary."""
        if self.rados is not None:
            return 'on'
        value = self.options.get('repository')
        if value is None:
            value = os.environ.get('SNAPFS_TEST_REPOSITORY') or 'on'
        return 'on' if value in (True, 'on') else 'off'

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def unmount(self, check=True):
        """fusermount3 -u; the daemon must then exit with status 0."""
        if self.proc is None:
            if is_mounted(self.mnt):
                unmount_path(self.mnt)
            return
        proc, self.proc = self.proc, None
        unmount_path(self.mnt)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            msg = 'snapfs did not exit within 20 s of its unmount (killed)'
            if check:
                raise AssertionError(msg + '\n' + self.diagnostics())
            self.problems.append(msg)
            return
        if rc != 0 and not (rc == -signal.SIGKILL and self.watchdog_fired):
            msg = 'snapfs exited with status %d after its unmount%s' % (
                rc, ' (signal %s)' % signal.Signals(-rc).name if rc < 0 else '')
            if check:
                raise AssertionError(msg + '\n' + self.diagnostics())
            self.problems.append(msg)

    def remount(self, **options):
        self.unmount()
        self.mount(**options)

    def kill9(self):
        """kill -9 the daemon (only it, as a crash would), then unmount the
        dead mount.  Returns the daemon's leftover children still running."""
        assert self.proc is not None, 'not mounted'
        proc, self.proc = self.proc, None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert unmount_path(self.mnt), 'cannot unmount the dead mount ' + self.mnt
        return self.leftover_processes()

    def kill9_and_remount(self, **options):
        leftovers = self.kill9()
        self.mount(**options)
        return leftovers

    def leftover_processes(self):
        """Processes other than a live daemon that mention our tree (qemu-img
        children of a killed daemon, typically)."""
        live = {self.proc.pid} if self.proc else set()
        return processes_mentioning(self.root, exclude=live)

    def mount_with_environ(self, variables, **options):
        """mount(**@options) with @variables (name -> value) set in the
        daemon's environment, as they were before afterwards."""
        saved = {k: os.environ.get(k) for k in variables}
        os.environ.update(variables)
        try:
            self.mount(**options)
        finally:
            for k, v in saved.items():
                if v is None:
                    del os.environ[k]
                else:
                    os.environ[k] = v

    def mount_hanging(self, point, **options):
        """Mount with SNAPFS_HANG_AT=@point in the daemon's environment: the
        thread that reaches that test point logs it and blocks for ever
        (kill9() ends it; mount() again to go on without the test point).
        The same as VmSnapfs.mount_hanging, for plain volumes."""
        self.mount_with_environ({'SNAPFS_HANG_AT': point}, **options)

    def mount_pausing(self, point, **options):
        """Mount with SNAPFS_HANG_AT=@point and SNAPFS_HANG_FIFO=<a FIFO
        in the test's tree>: each thread that reaches that test point
        waits there until release(@point) lets it go on."""
        self.pause_fifo = os.path.join(self.root, 'testpoint.fifo')
        if not os.path.exists(self.pause_fifo):
            os.mkfifo(self.pause_fifo, 0o600)
        self.mount_with_environ({'SNAPFS_HANG_AT': point,
                                 'SNAPFS_HANG_FIFO': self.pause_fifo}, **options)

    def wait_paused(self, point, arrivals=1):
        """Wait until @arrivals threads in all have reached @point of a
        mount_pausing() mount (counted in snapfs.log)."""
        line = 'testpoint: waiting at %s' % point
        self.wait_for(lambda: self.log_text().count(line) >= arrivals,
                      'arrival %d at test point %s' % (arrivals, point))

    def release(self, point, arrivals=1):
        """Once arrival @arrivals waits at @point, let it go on (open the
        FIFO for writing and close it), and wait until it says so.  The
        daemon logs its arrival just before it opens the FIFO: until it
        has, a non-blocking open for writing fails with ENXIO, and is
        tried again."""
        self.wait_paused(point, arrivals)

        def opened():
            try:
                os.close(os.open(self.pause_fifo, os.O_WRONLY | os.O_NONBLOCK))
                return True
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                return False
        self.wait_for(opened, 'the reader of %s at test point %s' % (self.pause_fifo, point))
        line = 'testpoint: released at %s' % point
        self.wait_for(lambda: self.log_text().count(line) >= arrivals,
                      'release %d at test point %s' % (arrivals, point))

    def in_background(self, fn):
        """Run @fn in a daemon thread (a request that may get its answer
        only when the daemon is killed); returns (thread, result dict with
        'value' and 'errno': 0 when @fn returned, the OSError's errno)."""
        result = {}

        def body():
            try:
                result['value'] = fn()
                result['errno'] = 0
            except OSError as e:
                result['errno'] = e.errno
        th = threading.Thread(target=body, daemon=True)
        th.start()
        return th, result

    # -- the watchdog ------------------------------------------------------------------

    def start_watchdog(self, seconds=WATCHDOG_SECONDS):
        def fire():
            self.watchdog_fired = True
            self.problems.append('watchdog: the test ran for more than %d s; snapfs '
                                 'was killed to end a request that got no answer'
                                 % seconds)
            proc = self.proc
            if proc is not None:
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGKILL)
            for pid, _ in self.leftover_processes():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self.watchdog = threading.Timer(seconds, fire)
        self.watchdog.daemon = True
        self.watchdog.start()

    # -- cleanup ----------------------------------------------------------------------

    def cleanup(self):
        """Always safe to call, also twice, also after a failure."""
        if self.watchdog is not None:
            self.watchdog.cancel()
        try:
            self.unmount(check=False)
        except Exception as e:  # keep cleaning up
            self.problems.append('unmount failed: %r' % e)
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        if is_mounted(self.mnt):
            unmount_path(self.mnt)
        for pid, cmd in self.leftover_processes():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for path in reversed(self.extra_mounts):
            unmount_path(path, fuse=False)
        self.extra_mounts = []
        for path in mounts_under(self.root):
            unmount_path(path, fuse=path == self.mnt)
        still = mounts_under(self.root)
        if still:
            self.problems.append('left mounted (tree kept): %s' % ', '.join(still))
        elif os.environ.get('SNAPFS_TEST_KEEP'):
            print('SNAPFS_TEST_KEEP: kept %s' % self.root)
        elif os.path.isdir(self.root):
            shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self):
        try:
            with open(os.path.join(self.source, 'snapfs.log'), errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def diagnostics(self, lines=150):
        """The tail of snapfs.log and of the daemons' own output."""
        parts = []
        log = self.log_text().splitlines()
        parts.append('---- %s/snapfs.log (last %d of %d lines) ----' % (
            self.source, min(lines, len(log)), len(log)))
        parts += log[-lines:]
        for n in range(1, self.mount_count + 1):
            path = os.path.join(self.root, 'daemon-%d.out' % n)
            try:
                with open(path, errors='replace') as f:
                    out = f.read().splitlines()
            except OSError:
                continue
            if out:
                parts.append('---- daemon run %d stdout/stderr (last 40 lines) ----' % n)
                parts += out[-40:]
        return '\n'.join(parts)

    # -- paths in the tree ------------------------------------------------------------

    def p(self, *parts):
        return os.path.join(self.mnt, *parts)

    def vol_dir(self, vol, *rest):
        return self.p('volumes', vol, *rest)

    def snap_dir(self, vol, snap, *rest):
        return self.p('volumes', vol, 'snapshots', snap, *rest)

    def backup_file(self, vol, snap, ext='qcow2'):
        return self.p('backed-up', 'volumes', vol, '%s.%s' % (snap, ext))

    def target(self, vol, snap):
        return 'volumes/%s/snapshots/%s' % (vol, snap)

    # -- reading the tree ----------------------------------------------------------------

    def read(self, *parts):
        with open(self.p(*parts), errors='replace') as f:
            return f.read()

    def read_json(self, *parts):
        text = self.read(*parts)
        try:
            return json.loads(text)
        except ValueError as e:
            raise AssertionError('%s is not JSON (%s): %r' % ('/'.join(parts), e, text))

    def listdir(self, *parts):
        try:
            return sorted(os.listdir(self.p(*parts)))
        except FileNotFoundError:
            return []

    def state(self, vol, snap):
        """The one word of the snapshot's state file, or None when it is gone."""
        try:
            with open(self.snap_dir(vol, snap, 'state')) as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def info(self, vol, snap):
        return self.read_json('volumes', vol, 'snapshots', snap, 'info')

    def volume_info(self, vol):
        return self.read_json('volumes', vol, 'info')

    def snapshots(self, vol):
        return self.listdir('volumes', vol, 'snapshots')

    def backups(self, vol):
        return self.listdir('backed-up', 'volumes', vol)

    def manifest(self, vol, snap):
        return self.read_json('backed-up', 'volumes', vol, snap + '.json')

    def read_events(self):
        """All events as a list of dicts; a line that is not a JSON object fails."""
        events = []
        for n, line in enumerate(self.read('events').splitlines(), 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except ValueError as e:
                raise AssertionError('events line %d is not JSON (%s): %r' % (n, e, line))
            assert isinstance(ev, dict), 'events line %d is not an object: %r' % (n, line)
            events.append(ev)
        return events

    def events_since(self, count):
        return self.read_events()[count:]

    def jobs(self):
        """The JSON of every jobs/<id> that still exists."""
        found = []
        for name in self.listdir('jobs'):
            try:
                if not self.read('jobs', name).strip():
                    continue  # ended while we read it
                job = self.read_json('jobs', name)
            except FileNotFoundError:
                continue  # ended while we listed
            job.setdefault('_file', name)
            found.append(job)
        return found

    def job_for(self, vol, snap):
        for job in self.jobs():
            if job.get('target') == self.target(vol, snap):
                return job
        return None

    def alerts(self):
        """{id: alert JSON} of every alerts/<id>."""
        found = {}
        for name in self.listdir('alerts'):
            try:
                if not self.read('alerts', name).strip():
                    continue
                found[name] = self.read_json('alerts', name)
            except FileNotFoundError:
                continue
        return found

    def alerts_for(self, vol, snap):
        return {k: a for k, a in self.alerts().items()
                if a.get('volume') == vol and a.get('snapshot') == snap}

    # -- acting on the tree ----------------------------------------------------------------

    def take(self, vol, snap):
        """mkdir volumes/@vol/snapshots/@snap; returns the seconds it took."""
        t0 = time.monotonic()
        os.mkdir(self.snap_dir(vol, snap))
        return time.monotonic() - t0

    def write_file(self, path, data):
        """One write(2) on a file opened the way `echo data > path` opens it."""
        if isinstance(data, str):
            data = data.encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            n = os.write(fd, data)
        finally:
            os.close(fd)
        assert n == len(data), 'short write to %s: %d of %d' % (path, n, len(data))

    def control(self, vol, command):
        """Write one command to volumes/@vol/control (raises OSError)."""
        self.write_file(self.vol_dir(vol, 'control'), command + '\n')

    def control_errno(self, vol, command):
        """The errno the control write of @command fails with, or 0."""
        try:
            self.control(vol, command)
        except OSError as e:
            return e.errno
        return 0

    def clock(self):
        return int(self.read('.clock').strip())

    def set_clock(self, t):
        self.write_file(self.p('.clock'), '%d\n' % t)

    # -- waiting (for events, never for time to pass) ----------------------------------

    def no_jobs_left(self, timeout=60):
        """Wait until jobs/ is empty (merge jobs fold layers after backups
        and deletes, briefly); True when it is, for use in asserts."""
        self.wait_for(lambda: self.jobs() == [], 'jobs/ to empty', timeout=timeout)
        return True

    def wait_for(self, predicate, what, timeout=WAIT_TIMEOUT):
        """Poll @predicate until it returns a true value; return that value."""
        deadline = time.monotonic() + timeout
        delay = POLL
        while True:
            value = predicate()
            if value:
                return value
            if not self.alive():
                raise AssertionError('snapfs died while waiting for %s\n%s'
                                     % (what, self.diagnostics()))
            if time.monotonic() > deadline:
                raise AssertionError('timed out after %d s waiting for %s\n%s'
                                     % (timeout, what, self.diagnostics()))
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def wait_state(self, vol, snap, wanted, timeout=WAIT_TIMEOUT, fail_fast=True):
        """Wait until snapshots/@snap/state reads @wanted.  Reaching another
        final state (BackedUp / BackupFailed) fails at once, with the info,
        unless @fail_fast is false (right after a retry was asked for, the
        state may still read BackupFailed for a moment)."""
        seen = []

        def check():
            st = self.state(vol, snap)
            if not seen or seen[-1] != st:
                seen.append(st)
            if st == wanted:
                return True
            if fail_fast and st in FINAL_STATES and wanted in FINAL_STATES:
                try:
                    info = self.info(vol, snap)
                except OSError:
                    info = None
                raise AssertionError('%s/%s reached %s while waiting for %s; info: %s\n'
                                     'alerts: %s\n%s' % (vol, snap, st, wanted, info,
                                                         self.alerts(), self.diagnostics()))
            return False
        self.wait_for(check, '%s/%s to be %s (states seen: %s)' % (vol, snap, wanted, seen),
                      timeout)

    def wait_job_running(self, vol, snap, timeout=WAIT_TIMEOUT):
        """Wait until jobs/ shows the backup of @vol/@snap running; return its JSON."""
        def check():
            job = self.job_for(vol, snap)
            if job and job.get('state') == 'running':
                return job
            if self.state(vol, snap) in FINAL_STATES:
                raise AssertionError('%s/%s reached %s before its job was seen running'
                                     % (vol, snap, self.state(vol, snap)))
            return None
        return self.wait_for(check, 'the backup job of %s/%s to run' % (vol, snap), timeout)

    def wait_event(self, predicate, since=0, what='an event', timeout=WAIT_TIMEOUT):
        def check():
            for ev in self.read_events()[since:]:
                if predicate(ev):
                    return ev
            return None
        return self.wait_for(check, what, timeout)

    def start_blocker(self, vol='blocker', snap='b'):
        """Keep the (single) worker busy: snapshot @vol, which the test made
        large, and wait until its copy runs.  Returns the job JSON."""
        self.take(vol, snap)
        return self.wait_job_running(vol, snap)

    def wait_testpoint(self, point, timeout=60):
        """Wait until the daemon logs that it hangs at test point @point."""
        self.wait_for(lambda: 'testpoint: hanging at %s' % point in self.log_text(),
                      'snapfs to reach test point %s' % point, timeout)

    # -- secondary storage ---------------------------------------------------------------

    def secondary_files(self):
        """Relative paths of regular files on secondary storage outside
        .tmp/ (the objects' names on RADOS)."""
        return [f for f in self.repo.names() if not f.startswith('.tmp/')]

    def stored_backup_ext(self):
        """The extension of the file a backup is stored as under
        SECONDARY/volumes/<vol>/<uuid>.*: 'qcow2' (a full copy) with
        repository=off, 'index' with repository=on."""
        return 'index' if self.repository_mode() == 'on' else 'qcow2'

    def secondary_backup_files(self):
        """secondary_files() less the repository's own files with
        repository=on (repository.json, .locks/, .chunks/: chunks are shared
        and freed by GC after its grace, not by the delete of one backup;
        .leases/: each host's running backups, for every host's GC); with
        repository=off exactly secondary_files()."""
        files = self.secondary_files()
        if self.repository_mode() == 'off':
            return files
        return [f for f in files if f != 'repository.json'
                and not f.startswith(('.locks/', '.chunks/', '.leases/'))]

    def secondary_tmp_files(self):
        if self.rados is not None:      # RADOS has no temporary objects
            return [n[len('.tmp/'):] for n in self.rados.names('.tmp/')]
        tmp = os.path.join(self.secondary, '.tmp')
        files = []
        for dirpath, _, filenames in os.walk(tmp):
            files += [os.path.relpath(os.path.join(dirpath, n), tmp) for n in filenames]
        return sorted(files)

    # -- primary storage -----------------------------------------------------------------

    def primary_tmp_files(self):
        """Files under PRIMARY/.snapfs/.tmp/ (clones and reverts in progress)."""
        tmp = os.path.join(self.primary, '.snapfs', '.tmp')
        files = []
        for dirpath, _, filenames in os.walk(tmp):
            files += [os.path.relpath(os.path.join(dirpath, n), tmp) for n in filenames]
        return sorted(files)

    def primary_volume_files(self):
        """Names of the *.qcow2 files directly in PRIMARY/ (the volumes)."""
        return sorted(n for n in os.listdir(self.primary) if n.endswith('.qcow2'))


# ---- checks shared by the tests -------------------------------------------------------

def check_backup(env, vol, snap, reference, virtual_size, force_share=False):
    """The backup of @vol/@snap under backed-up/ is complete and right:
    same guest data as @reference, standalone qcow2 (no backing file) of
    @virtual_size, `qemu-img check` clean, and a manifest whose fields agree
    with it: with repository=off its checksum is the xxh128sum of the image;
    with repository=on it names an index that is sound, whose checksum the
    catalog records and whose every chunk exists (index_problems()), or it
    is a full copy made before the repository (checked as with off).
    @force_share: the reference is a live volume (qemu-img -U)."""
    img = env.backup_file(vol, snap)
    assert env.state(vol, snap) == 'BackedUp'
    assert qemu_img_compare(reference, img, force_share=force_share) == 0, \
        'backed-up/%s/%s.qcow2 does not hold the data it should' % (vol, snap)
    info = qemu_img_info(img)
    assert info.get('format') == 'qcow2', info
    assert 'backing-filename' not in info and 'full-backing-filename' not in info, \
        'backup has a backing file: %s' % info
    assert info.get('virtual-size') == virtual_size, info
    check = run(['qemu-img', 'check', img], check=False, timeout=300)
    assert check.returncode == 0, 'qemu-img check %s: %s%s' % (img, check.stdout, check.stderr)
    m = env.manifest(vol, snap)
    for field in ('volume', 'snapshot', 'created_at', 'backed_up_at', 'virtual_size'):
        assert field in m, 'manifest lacks %r: %s' % (field, m)
    assert m['volume'] == vol and m['snapshot'] == snap, m
    assert m['virtual_size'] == virtual_size, m
    sinfo = env.info(vol, snap)
    # repository=off: always a full copy; repository=on: a repository
    # backup, unless its manifest says it is a full copy made before (the
    # upgrade: served as it is), which is then checked as one
    if env.repository_mode() == 'off' or ('index' not in m and m.get('format') == 'qcow2'):
        assert 'checksum' in m, 'manifest lacks %r: %s' % ('checksum', m)
        assert m['checksum'] == 'xxh128:' + xxh128(img), \
            'manifest checksum %s does not match xxh128sum of the image' % m['checksum']
    else:
        problems = index_problems(env, vol, m.get('uuid'), virtual_size,
                                  sinfo.get('checksum'))
        assert problems == [], problems
    assert sinfo.get('state') == 'BackedUp' and sinfo.get('on_secondary') is True, sinfo
    assert sinfo.get('error') is None, sinfo
    return m


# ---- the repository (repository=on) ------------------------------------------------

REPO_INDEX = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.index')
CHUNK_NAME = re.compile(r'[0-9a-f]{64}')


def read_index(path):
    """(chunk_size, virtual_size, [hex digest or None for a hole]) of a
    repository index (docs/repository.md); AssertionError when it is not
    a sound one."""
    with open(path, 'rb') as f:
        data = f.read()
    assert data[:8] == b'SNAPIDX1', '%s: not an index' % path
    assert len(data) >= 64, '%s: %d bytes' % (path, len(data))
    version, chunk_size, vsize, count = struct.unpack('<IIQQ', data[8:32])
    assert version == 1 and len(data) == 64 + 32 * count, '%s: bad header' % path
    assert hashlib.sha256(data[:-32]).digest() == data[-32:], '%s: bad checksum' % path
    entries = []
    for i in range(count):
        d = data[32 + 32 * i:64 + 32 * i]
        entries.append(None if d == bytes(32) else d.hex())
    return chunk_size, vsize, entries


def chunk_file(env, name):
    return os.path.join(env.secondary, '.chunks', name[:2], name)


def index_problems(env, vol, uuid, virtual_size=None, catalog_checksum=None, name=None):
    """A repository backup SECONDARY/volumes/@vol/@uuid.index + .json: the
    index is sound (magic, size, checksum) and of @virtual_size, the
    manifest is format "index", names it and its checksum and has no
    "checksum", the catalog's checksum (when given) is "sha256:" + the
    index's, no <uuid>.qcow2 beside it, and every chunk the index names is
    a file under .chunks/ (header checked).  Returns problems."""
    what = 'repository backup of %s (%s)' % (vol, uuid)
    d = os.path.join(env.secondary, 'volumes', vol)
    ipath = os.path.join(d, '%s.index' % uuid)
    problems = []
    try:
        chunk_size, vsize, entries = read_index(ipath)
        with open(ipath, 'rb') as f:
            tail = f.read()[-32:].hex()
    except (OSError, AssertionError) as e:
        return ['%s: index unreadable: %s' % (what, e)]
    if virtual_size is not None and vsize != virtual_size:
        problems.append('%s: index virtual size %d, expected %d' % (what, vsize, virtual_size))
    if os.path.exists(os.path.join(d, '%s.qcow2' % uuid)):
        problems.append('%s: a full-copy image lies beside the index' % what)
    try:
        with open(os.path.join(d, '%s.json' % uuid)) as f:
            m = json.load(f)
        if m.get('format') != 'index' or m.get('index') != '%s.index' % uuid \
                or m.get('index_sha256') != tail or m.get('chunk_size') != chunk_size \
                or 'checksum' in m:
            problems.append('%s: the manifest does not describe its index: %s' % (what, m))
        if m.get('uuid') != uuid or m.get('volume') != vol or \
                (name is not None and m.get('snapshot') != name):
            problems.append('%s: the manifest names %s/%s (%s)' % (
                what, m.get('volume'), m.get('snapshot'), m.get('uuid')))
    except (OSError, ValueError) as e:
        problems.append('%s: manifest unreadable: %s' % (what, e))
        m = {}
    if catalog_checksum is not None and catalog_checksum != 'sha256:' + tail:
        problems.append('%s: catalog checksum %s is not the index\'s sha256:%s' % (
            what, catalog_checksum, tail))
    size = 0
    for i, digest in enumerate(entries):
        if not digest:
            continue
        path = chunk_file(env, digest)
        try:
            with open(path, 'rb') as f:
                head = f.read(16)
            raw = struct.unpack('<I', head[12:16])[0] if len(head) == 16 else -1
            if head[:8] != b'SNAPCHK1':
                problems.append('%s: chunk %d (%s) has no chunk header' % (what, i, digest))
            size += raw
        except OSError as e:
            problems.append('%s: chunk %d (%s) the index names: %s' % (what, i, digest, e))
    if not problems and 'size' in m and m['size'] != size:
        problems.append('%s: manifest size %s, the chunks hold %d' % (what, m['size'], size))
    return problems


def index_to_raw(env, vol, uuid, out):
    """Write the volume's bytes a repository backup holds into the raw file
    @out, read from its chunks (uncompressed ones; a zstd one through
    `zstd -dc`), without snapfs: what a restore script would do."""
    chunk_size, vsize, entries = read_index(
        os.path.join(env.secondary, 'volumes', vol, uuid + '.index'))
    with open(out, 'wb') as f:
        f.truncate(vsize)
        for i, digest in enumerate(entries):
            if not digest:
                continue
            with open(chunk_file(env, digest), 'rb') as c:
                data = c.read()
            flags = struct.unpack('<I', data[8:12])[0]
            payload = data[16:]
            if flags & 1:
                payload = subprocess.run(['zstd', '-dc'], input=payload, check=True,
                                         stdout=subprocess.PIPE).stdout
            assert hashlib.sha256(payload).hexdigest() == digest, 'chunk %s' % digest
            f.seek(i * chunk_size)
            f.write(payload)


def repository_chunk_names(env):
    """The names of the chunk files under SECONDARY/.chunks/."""
    names = set()
    root = os.path.join(env.secondary, '.chunks')
    for fan in (sorted(os.listdir(root)) if os.path.isdir(root) else []):
        names |= set(os.listdir(os.path.join(root, fan)))
    return names


def assert_pattern(path, pattern, offset, length):
    """The live image at @path reads @pattern over [offset, offset+length)."""
    proc = run(['qemu-io', '-r', '-U', '-f', 'qcow2', '-c',
                'read -P 0x%02x %d %d' % (pattern, parse_size(offset), parse_size(length)),
                path], check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and 'verification failed' not in out, \
        '%s: pattern 0x%02x not found at %s+%s: %s' % (path, pattern, offset, length, out)


def fill(path, leave):
    """Fill the file system of @path with one file so that about @leave bytes
    stay free; returns the file's path."""
    st = os.statvfs(os.path.dirname(path))
    size = st.f_bavail * st.f_frsize - parse_size(leave)
    assert size > 0, 'nothing to fill at %s' % path
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
    return path


def same_bytes(a, b, chunk=1 << 20):
    """Byte-for-byte equality, read in large requests as backup tools read
    (filecmp's 8 KiB reads would measure FUSE request overhead instead)."""
    if os.stat(a).st_size != os.stat(b).st_size:
        return False
    with open(a, 'rb', buffering=0) as fa, open(b, 'rb', buffering=0) as fb:
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                return False
            if not x:
                return True


def secondary_matches_backups(env):
    """Every file on secondary storage (outside .tmp/) is byte for byte one of
    the files under backed-up/, and every backed-up file is one of them.
    With repository=on: every manifest under backed-up/ is byte for byte
    one under SECONDARY/volumes/, each beside its sound index with every
    chunk it names (index_problems()), each image shown has its manifest,
    and SECONDARY/volumes/ holds nothing else."""
    if env.repository_mode() == 'on':
        return repository_matches_backups(env)
    shown = []
    for dirpath, _, names in os.walk(env.p('backed-up')):
        shown += [os.path.join(dirpath, n) for n in names]
    stored = [os.path.join(env.secondary, f) for f in env.secondary_files()]
    assert len(stored) == len(shown), \
        'secondary holds %s but backed-up/ shows %s' % (
            env.secondary_files(), [os.path.relpath(s, env.mnt) for s in shown])
    unmatched = list(stored)
    for path in shown:
        size = os.stat(path).st_size
        twin = next((s for s in unmatched if os.stat(s).st_size == size
                     and same_bytes(path, s)), None)
        assert twin is not None, '%s matches no file on secondary storage' % path
        unmatched.remove(twin)


def repository_matches_backups(env):
    shown = []
    for dirpath, _, names in os.walk(env.p('backed-up')):
        shown += [os.path.join(dirpath, n) for n in names]
    manifests = [p for p in shown if p.endswith('.json')]
    images = [p for p in shown if p.endswith('.qcow2')]
    assert len(manifests) + len(images) == len(shown), \
        'backed-up/ shows other files: %s' % shown
    assert sorted(p[:-5] for p in manifests) == sorted(p[:-6] for p in images), \
        'backed-up/ images and manifests do not pair: %s' % shown
    stored = [f for f in env.secondary_files() if f.startswith('volumes/')]
    want = set()
    for path in manifests:
        with open(path, 'rb') as f:
            text = f.read()
        m = json.loads(text)
        vol = os.path.basename(os.path.dirname(path))
        uuid = m.get('uuid')
        base = 'volumes/%s/%s' % (vol, uuid)
        want |= {base + '.json', base + '.index'}
        with open(os.path.join(env.secondary, base + '.json'), 'rb') as f:
            assert f.read() == text, '%s is not SECONDARY/%s.json' % (path, base)
        problems = index_problems(env, vol, uuid, m.get('virtual_size'))
        assert problems == [], problems
    assert set(stored) == want, \
        'SECONDARY/volumes holds %s but backed-up/ shows %s' % (
            stored, [os.path.relpath(s, env.mnt) for s in shown])


# ---- event matching ----------------------------------------------------------------

def event_mentions(ev, *names):
    """True when every one of @names appears in the event's values (a volume,
    a snapshot, a target or path such as volumes/v/snapshots/s)."""
    text = json.dumps(ev)
    return all(re.search(r'(?<![A-Za-z0-9._-])%s(?![A-Za-z0-9._-])' % re.escape(n), text)
               for n in names)


def events_of(events, type_, *names):
    return [ev for ev in events if ev.get('type') == type_ and event_mentions(ev, *names)]


@contextlib.contextmanager
def snapfs_env(name='t'):
    """Outside pytest: `with snapfs_env() as env: env.make_volume(...); env.mount()`."""
    env = Snapfs(name)
    try:
        yield env
    finally:
        env.cleanup()


def errno_name(code):
    return errno.errorcode.get(code, str(code))


def rejected_events(events, op, paths, err):
    """The `rejected` events for @op on one of @paths (relative tree paths;
    a string for one) with errno @err (a number)."""
    if isinstance(paths, str):
        paths = (paths,)
    return [ev for ev in events if ev.get('type') == 'rejected' and ev.get('op') == op
            and ev.get('path', '').lstrip('/') in paths
            and getattr(errno, str(ev.get('errno')), None) == err]


# ---- accounts: real Unix users on the one allow_other mount ---------------------

def user_ids(name):
    """(uid, gid) of the Unix user @name."""
    import pwd
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def ensure_user(name):
    """Create the system user @name (with a group of the same name, no home,
    no login shell) unless it exists.  Returns True when it was created here:
    the caller removes it with remove_user() when done."""
    import pwd
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        pass
    proc = run(['useradd', '--system', '--user-group', '--no-create-home',
                '--shell', '/usr/sbin/nologin', name], check=False)
    if proc.returncode == 9:        # created meanwhile by someone else: reuse it
        return False
    assert proc.returncode == 0, 'useradd %s: %s' % (name, proc.stderr)
    return True


def remove_user(name):
    run(['userdel', name], check=False)


def open_to_all_users(env):
    """The state directory is made 0700 (mkdtemp): let every user walk to the
    mount point, as on a host where the mount is in a public place."""
    for path in (env.root, env.mnt):
        os.chmod(path, 0o755)


def run_as(user, fn, *args):
    """Call fn(*args) in a forked child running as @user (its uid, gid and
    groups, real and effective), so that every request it makes reaches the
    kernel and snapfs as that account's.  Returns what fn returned (it must be
    JSON-serializable); an OSError in the child is raised here with the same
    errno."""
    import pwd
    pw = pwd.getpwnam(user)
    groups = os.getgrouplist(user, pw.pw_gid)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the child: never returns
        try:
            os.close(rfd)
            try:
                os.setgroups(groups)
                os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
                os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
                result = {'value': fn(*args)}
            except OSError as e:
                result = {'errno': e.errno, 'text': str(e)}
            except BaseException as e:              # noqa: B902 - reported to the parent
                result = {'exception': repr(e)}
            os.write(wfd, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    data = b''
    with os.fdopen(rfd, 'rb') as f:
        data = f.read()
    os.waitpid(pid, 0)
    result = json.loads(data or b'{"exception": "the child wrote nothing"}')
    if 'errno' in result:
        raise OSError(result['errno'], '%s (as %s)' % (result['text'], user))
    if 'exception' in result:
        raise AssertionError('as %s: %s' % (user, result['exception']))
    return result['value']


def errno_as(user, fn, *args):
    """0 when fn(*args) succeeds as @user, else the errno it fails with."""
    try:
        run_as(user, fn, *args)
    except OSError as e:
        return e.errno
    return 0


# ---- policies ------------------------------------------------------------------------

def read_policy(env, name):
    """policies/@name as (normalized line, last-run comment, next-run comment)."""
    lines = env.read('policies', name).splitlines()
    assert len(lines) == 3 and lines[1].startswith('# last run: ') and \
        lines[2].startswith('# next run: '), 'policies/%s reads %r' % (name, lines)
    return lines[0], lines[1][len('# last run: '):], lines[2][len('# next run: '):]


def policy_of(ev):
    """The policy an event of a policy run, prune or failure is about (its
    message says "policy '<name>' ..."), or None."""
    m = re.search(r"policy '([^']+)'", ev.get('message') or '')
    return m.group(1) if m else None


def policy_events(events, type_, policy):
    return [ev for ev in events if ev.get('type') == type_ and policy_of(ev) == policy]


# ---- issue 6: audits of the catalog and the storage (crash loop, storm) ---------------
#
# Shared by test_crashloop.py and test_storm.py.  Each audit returns a list
# of violations (strings); an empty list is a pass.  The catalog is only
# ever opened read-only (or a copy of it is), so the audits change nothing.

# catalog numbering: enum snap_state (snap.h), job_state, job_kind,
# layer_state, vm_snapshot_state (engine/catalog.h)
SNAP_CREATING, SNAP_BACKING_UP, SNAP_BACKED_UP, SNAP_BACKUP_FAILED, SNAP_DESTROYING = range(5)
SNAP_DAMAGED = 5  # engine/include/snap.h: after Destroying
SNAP_STATE_NAMES = ('Creating', 'BackingUp', 'BackedUp', 'BackupFailed', 'Destroying')
JOB_QUEUED, JOB_RUNNING, JOB_WAITING = range(3)
JOB_BACKUP, JOB_MERGE, JOB_CLONE, JOB_REVERT = range(4)
JOB_KIND_NAMES = ('backup', 'merge', 'clone', 'revert')
LAYER_CREATING, LAYER_LIVE, LAYER_MERGING, LAYER_RETIRED = range(4)
VMSNAP_CREATING, VMSNAP_READY, VMSNAP_REVERTING, VMSNAP_EXPUNGING, VMSNAP_ERROR = range(5)
VMSNAP_STATE_NAMES = ('Creating', 'Ready', 'Reverting', 'Expunging', 'Error')
UUID_QCOW2 = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.qcow2')


def catalog_file(env):
    return os.path.join(env.source, 'catalog.db')


def catalog_query(env, sql, args=(), path=None):
    """Rows of @sql on the catalog opened read-only (the daemon may run:
    WAL lets a reader in beside it)."""
    import sqlite3
    db = sqlite3.connect('file:%s?mode=ro' % (path or catalog_file(env)), uri=True,
                         timeout=30)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def catalog_integrity(env, copy_dir=None):
    """PRAGMA integrity_check and foreign_key_check, with the daemon stopped.

    With @copy_dir, a copy of catalog.db and its -wal (what the next mount
    opens) is checked, so a catalog a kill -9 left is looked at exactly as it
    is, without a reader of ours replaying its WAL first.  Returns problems."""
    import sqlite3
    path = catalog_file(env)
    if copy_dir is not None:
        os.makedirs(copy_dir, exist_ok=True)
        for suffix in ('', '-wal'):
            if os.path.exists(path + suffix):
                shutil.copyfile(path + suffix, os.path.join(copy_dir, 'catalog.db' + suffix))
        path = os.path.join(copy_dir, 'catalog.db')
        db = sqlite3.connect(path, timeout=30)
    else:
        db = sqlite3.connect('file:%s?mode=ro' % path, uri=True, timeout=30)
    try:
        problems = []
        rows = db.execute('PRAGMA integrity_check').fetchall()
        if rows != [('ok',)]:
            problems.append('catalog integrity_check: %s' % rows[:20])
        fk = db.execute('PRAGMA foreign_key_check').fetchall()
        if fk:
            problems.append('catalog foreign_key_check: %s' % fk[:20])
        return problems
    finally:
        db.close()


def catalog_snapshots(env):
    """[{volume, name, uuid, layer, state, policy_id, backup_bytes, checksum,
    virtual_size}] of every volume snapshot row."""
    rows = catalog_query(env, 'SELECT v.name, s.name, s.uuid, s.layer, s.state, s.policy_id, '
                         's.backup_bytes, s.checksum, s.virtual_size, s.error '
                         'FROM snapshots s JOIN volumes v ON v.id = s.volume_id')
    keys = ('volume', 'name', 'uuid', 'layer', 'state', 'policy_id', 'backup_bytes',
            'checksum', 'virtual_size', 'error')
    return [dict(zip(keys, r)) for r in rows]


def catalog_jobs(env):
    rows = catalog_query(env, 'SELECT j.id, j.kind, j.state, j.target, '
                         "coalesce(v.name, ''), coalesce(s.name, '') FROM jobs j "
                         'LEFT JOIN volumes v ON v.id = j.volume_id '
                         'LEFT JOIN snapshots s ON s.id = j.snapshot_id')
    keys = ('id', 'kind', 'state', 'target', 'volume', 'snapshot')
    return [dict(zip(keys, r)) for r in rows]


def catalog_layers(env):
    """{(volume, uuid): state} of every layer row."""
    rows = catalog_query(env, 'SELECT v.name, l.uuid, l.state FROM layers l '
                         'JOIN volumes v ON v.id = l.volume_id')
    return {(vol, uuid): state for vol, uuid, state in rows}


def catalog_vm_snapshots(env):
    """[{vm, name, uuid, state, memory, disks: {volume: layer}}] (empty
    without the VM tables)."""
    try:
        rows = catalog_query(env, 'SELECT s.id, m.name, s.name, s.uuid, s.state, s.memory '
                             'FROM vm_snapshots s JOIN vms m ON m.id = s.vm_id')
        disks = catalog_query(env, 'SELECT d.vm_snapshot_id, v.name, d.layer '
                              'FROM vm_snapshot_disks d JOIN volumes v ON v.id = d.volume_id')
    except Exception:   # noqa: BLE001 - a catalog without the VM tables
        return []
    out = []
    for sid, vm, name, uuid, state, memory in rows:
        out.append({'vm': vm, 'name': name, 'uuid': uuid, 'state': state, 'memory': memory,
                    'disks': {vol: layer for i, vol, layer in disks if i == sid}})
    return out


def describe_job(job):
    kind = JOB_KIND_NAMES[job['kind']] if 0 <= job['kind'] < 4 else job['kind']
    state = ('queued', 'running', 'waiting')[job['state']] if 0 <= job['state'] < 3 \
        else job['state']
    return '%s job %d (%s) of %s/%s%s' % (kind, job['id'], state, job['volume'],
                                          job['snapshot'],
                                          ' -> ' + job['target'] if job['target'] else '')


def transitional_problems(env, workers):
    """Right after a mount's recovery (no other request yet): nothing in a
    transitional state.  No snapshot Creating/Destroying, no layer Creating
    or Retired,
    no VM snapshot other than Ready, no revert job (its writer is gone), and
    no more jobs `running` than there are workers to run them."""
    problems = []
    for s in catalog_snapshots(env):
        if s['state'] in (SNAP_CREATING, SNAP_DESTROYING):
            problems.append('after recovery: snapshot %s/%s is %s' % (
                s['volume'], s['name'], SNAP_STATE_NAMES[s['state']]))
    for (vol, uuid), state in catalog_layers(env).items():
        if state in (LAYER_CREATING, LAYER_RETIRED):
            problems.append('after recovery: layer %s of %s is %s' % (
                uuid, vol, 'Creating' if state == LAYER_CREATING else 'Retired'))
    for s in catalog_vm_snapshots(env):
        if s['state'] != VMSNAP_READY:
            problems.append('after recovery: VM snapshot %s/%s is %s' % (
                s['vm'], s['name'], VMSNAP_STATE_NAMES[s['state']]
                if 0 <= s['state'] < 5 else s['state']))
    jobs = catalog_jobs(env)
    for job in jobs:
        if job['kind'] == JOB_REVERT:
            problems.append('after recovery: a revert job is left: %s' % describe_job(job))
    running = [j for j in jobs if j['state'] == JOB_RUNNING and j['kind'] != JOB_REVERT]
    if len(running) > workers:
        problems.append('after recovery: %d jobs running with %d workers: %s' % (
            len(running), workers, [describe_job(j) for j in running]))
    return problems


def settle(env, timeout=90):
    """Wait until no job is queued or running (backups, merges, clones
    done).  Returns problems (a timeout, with the jobs left)."""
    deadline = time.monotonic() + timeout
    while True:
        busy = [j for j in catalog_jobs(env) if j['state'] in (JOB_QUEUED, JOB_RUNNING)]
        if not busy:
            return []
        if not env.alive():
            return ['snapfs died while its jobs ran: %s' % [describe_job(j) for j in busy]]
        if time.monotonic() > deadline:
            return ['jobs still queued or running after %d s: %s' % (
                timeout, [describe_job(j) for j in busy])]
        time.sleep(0.05)


def quiet_problems(env):
    """Once settle() returned: every snapshot BackedUp, no job left at all
    (a `waiting` one is a failed copy), no layer being made or folded, every
    VM snapshot Ready, no alert."""
    problems = []
    for s in catalog_snapshots(env):
        if s['state'] != SNAP_BACKED_UP:
            problems.append('settled, yet snapshot %s/%s is %s%s' % (
                s['volume'], s['name'], SNAP_STATE_NAMES[s['state']],
                ' (%s)' % s['error'] if s['error'] else ''))
    for job in catalog_jobs(env):
        problems.append('settled, yet %s' % describe_job(job))
    for (vol, uuid), state in catalog_layers(env).items():
        if state != LAYER_LIVE:
            problems.append('settled, yet layer %s of %s is in state %d' % (uuid, vol, state))
    for s in catalog_vm_snapshots(env):
        if s['state'] != VMSNAP_READY:
            problems.append('settled, yet VM snapshot %s/%s is %s' % (
                s['vm'], s['name'], s['state']))
    for aid, text in catalog_query(env, 'SELECT id, json FROM alerts'):
        problems.append('alert %d: %s' % (aid, text))
    return problems


def orphan_problems(env):
    """No partial or unknown file on either storage: both .tmp directories
    empty; every file under PRIMARY/.snapfs/<vol>/ a layer of that volume in
    the catalog and every catalog layer a file there; memory save files
    exactly those of VM snapshots; SECONDARY/volumes/<vol>/ exactly the
    image and manifest of each BackedUp snapshot, named by its uuid (with
    repository=on: its index and manifest, every chunk the index names
    present; besides them only chunk files, .locks/<xx>, .leases/<host>
    and repository.json)."""
    problems = []
    if env.secondary_tmp_files():
        problems.append('SECONDARY/.tmp not empty: %s' % env.secondary_tmp_files())
    if env.primary_tmp_files():
        problems.append('PRIMARY/.snapfs/.tmp not empty: %s' % env.primary_tmp_files())
    layers = catalog_layers(env)
    on_disk = set()
    lroot = os.path.join(env.primary, '.snapfs')
    for vol in (sorted(os.listdir(lroot)) if os.path.isdir(lroot) else []):
        path = os.path.join(lroot, vol)
        if vol in ('.tmp', '.memory'):
            continue
        if not os.path.isdir(path):
            problems.append('unexpected file PRIMARY/.snapfs/%s' % vol)
            continue
        for name in sorted(os.listdir(path)):
            if not UUID_QCOW2.fullmatch(name):
                problems.append('unexpected file PRIMARY/.snapfs/%s/%s' % (vol, name))
                continue
            on_disk.add((vol, name[:-6]))
            if (vol, name[:-6]) not in layers:
                problems.append('layer file PRIMARY/.snapfs/%s/%s is not in the catalog'
                                % (vol, name))
    for (vol, uuid) in sorted(set(layers) - on_disk):
        problems.append('catalog layer %s of %s has no file' % (uuid, vol))
    memdir = os.path.join(lroot, '.memory')
    memory = {s['memory'] for s in catalog_vm_snapshots(env) if s['memory']}
    for name in (sorted(os.listdir(memdir)) if os.path.isdir(memdir) else []):
        if os.path.join(memdir, name) not in memory:
            problems.append('memory file PRIMARY/.snapfs/.memory/%s belongs to no VM '
                            'snapshot' % name)
    for path in sorted(memory):
        if not os.path.isfile(path):
            problems.append('memory file %s of a VM snapshot is missing' % path)
    want = set()
    repo = env.repository_mode() == 'on'
    for s in catalog_snapshots(env):
        if s['state'] == SNAP_BACKED_UP:
            # with repository=on the catalog's checksum says which kind
            # (sha256: an index; xxh128: a full copy made before)
            full = not repo or not (s['checksum'] or '').startswith('sha256:')
            for ext in (('qcow2', 'json') if full else ('index', 'json')):
                want.add('volumes/%s/%s.%s' % (s['volume'], s['uuid'], ext))
    have = set(env.secondary_files())
    if repo:
        # the repository's own files: repository.json, the fan-out locks,
        # and chunk files (those no index names are GC's: it frees them
        # only after its grace, so they are no orphans here); every chunk a
        # BackedUp snapshot's index names must exist (index_problems())
        for f in sorted(have):
            parts = f.split('/')
            if f == 'repository.json' or \
                    (len(parts) == 2 and parts[0] == '.locks' and re.fullmatch(r'[0-9a-f]{2}', parts[1])) or \
                    (len(parts) == 2 and parts[0] == '.leases' and re.fullmatch(r'[A-Za-z0-9_][A-Za-z0-9._-]*', parts[1])) or \
                    (len(parts) == 3 and parts[0] == '.chunks' and CHUNK_NAME.fullmatch(parts[2])
                     and parts[1] == parts[2][:2]):
                have.discard(f)
        for s in catalog_snapshots(env):
            if s['state'] == SNAP_BACKED_UP and (s['checksum'] or '').startswith('sha256:'):
                problems += index_problems(env, s['volume'], s['uuid'], s['virtual_size'],
                                           s['checksum'], s['name'])
    for f in sorted(have - want):
        problems.append('file SECONDARY/%s belongs to no BackedUp snapshot' % f)
    for f in sorted(want - have):
        problems.append('the backup file SECONDARY/%s of a BackedUp snapshot is missing' % f)
    return problems


def verify_backup(env, snap, reference=None):
    """One BackedUp snapshot row (catalog_snapshots()): its image under
    SECONDARY and under backed-up/ is a standalone qcow2 that passes
    `qemu-img check`, of the right size, with a manifest naming it and
    holding the image's checksum; with @reference, the same guest data."""
    vol, name, uuid = snap['volume'], snap['name'], snap['uuid']
    what = 'backup of %s/%s (%s)' % (vol, name, uuid)
    if env.repository_mode() == 'on' and not (snap['checksum'] or '').startswith('xxh128:'):
        return verify_repository_backup(env, snap, reference)
    img = os.path.join(env.secondary, 'volumes', vol, uuid + '.qcow2')
    problems = []
    if not os.path.isfile(img):
        return ['%s: SECONDARY image missing' % what]
    if os.stat(img).st_size != snap['backup_bytes']:
        problems.append('%s: image is %d bytes, the catalog says %d' % (
            what, os.stat(img).st_size, snap['backup_bytes']))
    shown = env.backup_file(vol, name)
    if not os.path.isfile(shown):
        problems.append('%s: backed-up/volumes/%s/%s.qcow2 is not shown' % (what, vol, name))
    problems += standalone_image_problems(what, img, snap['virtual_size'])
    try:
        with open(os.path.join(env.secondary, 'volumes', vol, uuid + '.json')) as f:
            m = json.load(f)
        if (m.get('volume'), m.get('snapshot'), m.get('uuid')) != (vol, name, uuid):
            problems.append('%s: the manifest names %s/%s (%s)' % (
                what, m.get('volume'), m.get('snapshot'), m.get('uuid')))
        if m.get('checksum') != 'xxh128:' + xxh128(img):
            problems.append('%s: the manifest checksum %s is not the image\'s' % (
                what, m.get('checksum')))
    except (OSError, ValueError) as e:
        problems.append('%s: manifest unreadable: %s' % (what, e))
    if reference is not None and not problems:
        if qemu_img_compare(reference, img) != 0:
            problems.append('%s: does not hold the data the volume had at its mkdir' % what)
    return problems


def standalone_image_problems(what, img, virtual_size):
    """@img is a standalone qcow2 of @virtual_size that passes `qemu-img
    check`: what is wrong with it, each line starting with @what."""
    problems = []
    chk = run(['qemu-img', 'check', img], check=False, timeout=300)
    if chk.returncode != 0:
        problems.append('%s: qemu-img check: %s%s' % (what, chk.stdout, chk.stderr))
    try:
        info = qemu_img_info(img)
        if 'backing-filename' in info or 'full-backing-filename' in info:
            problems.append('%s: has a backing file: %s' % (what, info.get('backing-filename')))
        if info.get('virtual-size') != virtual_size:
            problems.append('%s: virtual size %s, catalog %s' % (
                what, info.get('virtual-size'), virtual_size))
    except AssertionError as e:
        problems.append('%s: qemu-img info: %s' % (what, e))
    return problems


def verify_repository_backup(env, snap, reference=None):
    """verify_backup() with repository=on: a sound index and manifest whose
    chunks all exist (index_problems()), the manifest's size the catalog's
    backup_bytes, and the view backed-up/volumes/<vol>/<name>.qcow2 a
    standalone qcow2 that passes `qemu-img check`, of the right size; with
    @reference, the same guest data."""
    vol, name, uuid = snap['volume'], snap['name'], snap['uuid']
    what = 'backup of %s/%s (%s)' % (vol, name, uuid)
    problems = index_problems(env, vol, uuid, snap['virtual_size'], snap['checksum'], name)
    if problems:
        return problems
    with open(os.path.join(env.secondary, 'volumes', vol, uuid + '.json')) as f:
        m = json.load(f)
    if m.get('size') != snap['backup_bytes']:
        problems.append('%s: manifest size %s, the catalog says %s' % (
            what, m.get('size'), snap['backup_bytes']))
    img = env.backup_file(vol, name)
    if not os.path.isfile(img):
        return problems + ['%s: backed-up/volumes/%s/%s.qcow2 is not shown' % (what, vol, name)]
    problems += standalone_image_problems(what, img, snap['virtual_size'])
    if reference is not None and not problems:
        if qemu_img_compare(reference, img) != 0:
            problems.append('%s: does not hold the data the volume had at its mkdir' % what)
    return problems


def qemu_img_check_problems(path, what):
    """`qemu-img check -U` of an image; its exit status is in the message
    (2: corruptions, 3: only leaked clusters)."""
    chk = run(['qemu-img', 'check', '-U', path], check=False, timeout=300)
    if chk.returncode != 0:
        text = (chk.stdout.strip() + ' ' + chk.stderr.strip()).strip()
        lines = [ln for ln in text.splitlines() if not ln.startswith('Leaked cluster ')]
        return ['%s: qemu-img check (exit %d): %s' % (what, chk.returncode, ' '.join(lines))]
    return []


def catalog_events_since(env, last_id):
    """(events as dicts with their '_id', the last id) of the events after @last_id,
    read from the catalog (cheaper than MOUNT/events for thousands of lines)."""
    rows = catalog_query(env, 'SELECT id, json FROM events WHERE id > ? ORDER BY id',
                         (last_id,))
    out = []
    for eid, text in rows:
        try:
            ev = json.loads(text)
        except ValueError:
            ev = {'type': 'unparsable', 'text': text}
        ev['_id'] = eid
        out.append(ev)
    return out, (rows[-1][0] if rows else last_id)


def event_problems(events):
    """Events that must not occur in a run where nothing fails: files the
    catalog does not know, failed copies/clones/policy runs, alerts, EIO."""
    problems = []
    for ev in events:
        t = ev.get('type', '')
        if t == 'recovery.orphan' or t.endswith('.fail') or t == 'alert.raise' \
                or (t == 'rejected' and ev.get('errno') == 'EIO'):
            problems.append('event: %s' % json.dumps({k: v for k, v in ev.items()
                                                      if k != '_id'}))
    return problems


class ContentRefs:
    """Reference images of volume contents, one per distinct content.

    A content is a tuple with one byte per MiB of the volume: the pattern
    written over that MiB (0: never written, reads zeros).  ref(content)
    makes (once) a qcow2 in scratch/ holding exactly that."""

    def __init__(self, env, size_mib):
        self.env, self.size_mib = env, size_mib
        self.paths = {}
        self.lock = threading.Lock()

    def empty(self):
        return (0,) * self.size_mib

    @staticmethod
    def writes(content):
        return [(p, i * MiB, MiB) for i, p in enumerate(content) if p]

    @staticmethod
    def apply(content, mib, pattern):
        c = list(content)
        c[mib] = pattern
        return tuple(c)

    def ref(self, content):
        with self.lock:
            path = self.paths.get(content)
            if path is None:
                path = self.env.make_reference('%dM' % self.size_mib, self.writes(content))
                self.paths[content] = path
            return path

    def holds(self, path, content, force_share=True):
        """True when the image at @path (with its backing chain) reads @content."""
        return qemu_img_compare(self.ref(content), path, force_share=force_share) == 0

    def describe(self, path):
        """What the image at @path holds, MiB by MiB, as far as one qemu-io run
        can tell (for messages): the pattern of each MiB, '?' where mixed."""
        argv = ['qemu-io', '-r', '-U', '-f', 'qcow2']
        for i in range(self.size_mib):
            argv += ['-c', 'read -v %d 16' % (i * MiB)]
        out = run(argv + [path], check=False, timeout=120).stdout
        found = re.findall(r'^[0-9a-f]{8}:\s+([0-9a-f]{2})', out, re.M)
        return ' '.join(found) if found else out[-200:]


# ---- bugs the crash loop and the storm found, not fixed yet ---------------------------
#
# Each is still reported (as "known bug") and counted, but does not fail
# those two tests unless SNAPFS_STRICT=1.  Remove an entry once its bug
# is fixed (the tests then fail on it again).
STRICT = os.environ.get('SNAPFS_STRICT', '0') != '0'
KNOWN_BUGS = {
}


def known_bug(violation):
    """The KNOWN_BUGS key @violation is an instance of, or None."""
    if STRICT:
        return None
    return next((k for k, rx in KNOWN_BUGS.items() if rx.search(violation)), None)
