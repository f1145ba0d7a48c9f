"""benchlib.py - what the snapfs benchmarks in bench/ share.

snapbench.py, vmbench.py, clonebench.py and policybench.py import it from
beside them (python3 puts a script's own directory first on sys.path).  It
holds the parts that are the same in every benchmark:

  - running commands and reading /proc: run(), drop_caches(), fsync_file(),
    fs_of(), is_mounted(), children_of(), loadavg(), epoch();
  - numbers as printed: median(), fmt_ms(), fmt_s(), fmt_gbs(), spread();
  - a test volume written with qemu-io: make_volume();
  - the lines a log file gained since a mark: LogTail;
  - one snapfs daemon, mounted in the foreground and ended by us: Snapfs
    (vmbench.py's VmSnapfs extends it);
  - the frame of a run: the common options (arg_parser(), parse_args(),
    quick_or_full()), the checks before it (setup(), Refused), SIGTERM and
    SIGHUP as Ctrl-C (end_on_signals()), the header (start_report()), and the
    end (finish(): --json, the summary table, the count of targets met, the
    exit status: 0 every target met, 1 a target missed, 2 the run failed).

A summary row is a dict: name, base, snap, ratio, target, and either
'result' (the cell as printed) or 'ok' (True PASS, False MISS, None '-');
the rows whose cell is PASS or MISS are the targets counted at the end.

Python 3 standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

MiB = 1 << 20
GiB = 1 << 30
NOT_LOCAL = ('tmpfs', 'ramfs', 'overlay', 'fuse', 'nfs', 'nfs4')


def log(msg=''):
    print(msg, flush=True)


class BenchError(Exception):
    pass


class Refused(Exception):
    """The run cannot start (see setup()); the text names the script."""


# what ends a run as failed (exit status 2) rather than as a crash
FAILURES = (BenchError, OSError, subprocess.SubprocessError)


def run(argv, timeout=600, check=True):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise BenchError('%s exited %d: %s' % (' '.join(argv), p.returncode,
                                               (p.stderr or p.stdout)[-1500:]))
    return p


def version(prog):
    """The first line of `@prog --version`."""
    return run([prog, '--version']).stdout.splitlines()[0]


# ---- files and /proc ------------------------------------------------------------


def drop_caches():
    os.sync()
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('3\n')


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def loadavg():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


def mount_table():
    out = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            left, _, right = line.partition(' - ')
            fields = left.split()
            mp = fields[4].replace('\\040', ' ')
            out.append((mp, right.split()[0] if right else '',
                        right.split()[1] if right else ''))
    return out


def fs_of(path):
    """(mount point, fstype, device) of the file system holding @path."""
    path = os.path.realpath(path)
    best = ('/', '?', '?')
    for mp, fstype, dev in mount_table():
        if (path == mp or path.startswith(mp.rstrip('/') + '/')) and \
                len(mp) >= len(best[0]):
            best = (mp, fstype, dev)
    return best


def is_mounted(path):
    return any(mp == path for mp, _, _ in mount_table())


def children_of(pid):
    """snapfs's own worker children (qemu-img).  QEMUs are left out: snapfs
    is a child subreaper, so the VMs libvirt daemonizes become its
    children, and they are not work in progress."""
    kids = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % name) as f:
                stat = f.read()
            comm = stat.split('(', 1)[1].rsplit(')', 1)[0]
            ppid = int(stat.rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and not comm.startswith('qemu-system'):
            kids.append(int(name))
    return kids


def epoch(text, fmt='%Y-%m-%dT%H:%M:%S.%f'):
    """Epoch seconds of a UTC time stamp @text (strptime format @fmt); the
    default reads snapfs.log's stamps without their 'Z'."""
    return datetime.datetime.strptime(text, fmt).replace(
        tzinfo=datetime.timezone.utc).timestamp()


class LogTail:
    """The lines a log file gained since mark()."""

    def __init__(self, path):
        self.path = path
        self.offset = 0

    def mark(self):
        try:
            self.offset = os.path.getsize(self.path)
        except OSError:
            self.offset = 0

    def read(self):
        """The bytes since the mark (none while the file is unreadable)."""
        try:
            with open(self.path, 'rb') as f:
                f.seek(self.offset)
                return f.read()
        except OSError:
            return b''

    def lines(self):
        return self.read().decode('utf-8', 'replace').splitlines()


# ---- numbers -------------------------------------------------------------------


def median(xs):
    return statistics.median(xs)


def fmt_ms(s):
    return '%.1f ms' % (s * 1e3)


def fmt_s(s):
    return '%.2f s' % s


def fmt_gbs(bps):
    return '%.2f GB/s' % (bps / 1e9)


def spread(xs, fmt):
    return '%s [%s..%s] n=%d' % (fmt(median(xs)), fmt(min(xs)), fmt(max(xs)),
                                 len(xs))


def paired(ratio, pairs):
    """A summary row's ratio cell: the ratio of the medians and the range
    of the paired ratios."""
    return '%.2fx (%.2f..%.2f)' % (ratio, min(pairs), max(pairs))


# ---- volumes ---------------------------------------------------------------------


def qemu_io_chunks(total, pattern0):
    """-c arguments writing @total bytes from offset 0 in <= 1 GiB writes,
    each chunk with its own pattern (qemu-io refuses one write > 2 GiB)."""
    args, off, i = [], 0, 0
    while off < total:
        n = min(GiB, total - off)
        args += ['-c', 'write -q -P 0x%02x %d %d' % ((pattern0 + i) & 0xff, off, n)]
        off += n
        i += 1
    return args


def make_volume(path, virtual, allocated, pattern0):
    run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, str(virtual)])
    run(['qemu-io', '-f', 'qcow2'] + qemu_io_chunks(allocated, pattern0) + [path],
        timeout=1800)
    fsync_file(path)


def backing_file(path):
    """The backing file qemu-img names for the qcow2 file @path, or None."""
    info = json.loads(run(['qemu-img', 'info', '-U', '--output=json',
                           path]).stdout)
    return info.get('full-backing-filename') or info.get('backing-filename')


# ---- the daemon ------------------------------------------------------------------


class Snapfs:
    """One snapfs daemon, started in the foreground by us, ended by us.

    WORK holds source/, primary/, secondary/, mnt/, snapfs.out (its stdout
    and stderr) and snapfs.pid (for bench/run.sh's cleanup)."""

    exit_seconds = None
    start_timeout = 30      # seconds until it must be mounted
    quiet_timeout = 900     # wait_quiet()'s default

    def __init__(self, binary, work, opts, dirs=()):
        self.binary = binary
        self.work = work
        self.source = os.path.join(work, 'source')
        self.primary = os.path.join(work, 'primary')
        self.secondary = os.path.join(work, 'secondary')
        self.mnt = os.path.join(work, 'mnt')
        self.pidfile = os.path.join(work, 'snapfs.pid')
        self.opts = opts
        self.proc = None
        self.pid = None         # snapfs itself (see VmSnapfs's reaper)
        self.logf = None
        for d in (self.source, self.primary, self.secondary, self.mnt) + \
                tuple(os.path.join(work, d) for d in dirs):
            os.makedirs(d, exist_ok=True)

    def command(self):
        o = 'primary=%s,secondary=%s,%s' % (self.primary, self.secondary,
                                           self.opts)
        return [self.binary, '-f', '-o', o, self.source, self.mnt]

    def spawned(self):
        """Just after the start: snapfs's pid, written to snapfs.pid."""
        with open(self.pidfile, 'w') as f:
            f.write('%d\n' % self.proc.pid)
        return self.proc.pid

    def ready(self):
        return is_mounted(self.mnt) and os.path.isdir(self.p('volumes'))

    def not_ready(self):
        """The error when it is not ready() within start_timeout."""
        return 'snapfs did not mount within %d s' % self.start_timeout

    def start(self):
        self.logf = open(os.path.join(self.work, 'snapfs.out'), 'ab')
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf,
                                     start_new_session=True)
        self.pid = self.spawned()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError('snapfs exited %d at start; see %s/snapfs.out'
                                 % (self.proc.returncode, self.work))
            if self.ready():
                return
            time.sleep(0.05)
        raise BenchError(self.not_ready())

    def p(self, *parts):
        return os.path.join(self.mnt, *parts)

    def snap_dir(self, vol, snap):
        return self.p('volumes', vol, 'snapshots', snap)

    def state(self, vol, snap):
        with open(os.path.join(self.snap_dir(vol, snap), 'state')) as f:
            return f.read().strip()

    def wait_volume(self, vol, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.isdir(self.p('volumes', vol)):
                return
            time.sleep(0.05)
        raise BenchError('volume %s did not show up' % vol)

    def wait_quiet(self, timeout=None):
        """No job in jobs/ and no child process (qemu-img) of the daemon,
        twice in a row 50 ms apart."""
        timeout = timeout or self.quiet_timeout
        deadline = time.monotonic() + timeout
        calm = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError('snapfs died (exit %s)' % self.proc.returncode)
            busy = os.listdir(self.p('jobs')) or children_of(self.pid)
            calm = 0 if busy else calm + 1
            if calm >= 2:
                return
            time.sleep(0.05)
        raise BenchError('snapfs still busy after %d s' % timeout)

    def unmount(self):
        """fusermount3 -u, 20 tries 0.25 s apart, then -uz."""
        for _ in range(20):
            if not is_mounted(self.mnt):
                break
            subprocess.run(['fusermount3', '-u', self.mnt],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if is_mounted(self.mnt):
                time.sleep(0.25)
        if is_mounted(self.mnt):
            subprocess.run(['fusermount3', '-uz', self.mnt],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc is None:
            return
        self.unmount()
        t = time.monotonic()
        try:
            self.proc.wait(timeout=30)
            self.exit_seconds = time.monotonic() - t
        except subprocess.TimeoutExpired:
            self.exit_seconds = None
            kids = children_of(self.proc.pid)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        log('   snapfs exited %s after the unmount' %
            ('%.2f s' % self.exit_seconds if self.exit_seconds is not None
             else 'only when killed, more than 30 s'))
        self.proc = None
        self.logf.close()


# ---- the run ---------------------------------------------------------------------


def arg_parser(doc, quick_help, workdir_help='an empty directory on local disk '
               '(default: a new one under /var/tmp, removed at the end)'):
    """The options every benchmark takes first: --bin, --workdir, --quick
    (its own options follow, then parse_args() adds --json and --keep)."""
    ap = argparse.ArgumentParser(description=doc.split('\n')[0])
    ap.add_argument('--bin', required=True, help='the snapfs binary')
    ap.add_argument('--workdir', help=workdir_help)
    ap.add_argument('--quick', action='store_true', help=quick_help)
    return ap


def parse_args(ap):
    ap.add_argument('--json', help='also write the results here')
    ap.add_argument('--keep', action='store_true', help='keep the work directory')
    return ap.parse_args()


def quick_or_full(a, **defaults):
    """Each option in @defaults (name=(quick, full)) left unset by the
    command line gets its quick or its full default."""
    for k, (quick, full) in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, quick if a.quick else full)


def setup(name, a, progs, why_root='FUSE mount, drop_caches',
          prefix='snapfs-bench.'):
    """Before a run: root, @progs on PATH, an executable --bin, a work
    directory on a local disk (--workdir, else a new one under /var/tmp
    named @prefix...).  Returns (binary, work, own_work: made here); raises
    Refused, its text starting with @name."""
    if os.geteuid() != 0:
        raise Refused('%s: must run as root (%s)' % (name, why_root))
    for prog in progs:
        if not shutil.which(prog):
            raise Refused('%s: %s is missing' % (name, prog))
    binary = os.path.realpath(a.bin)
    if not os.access(binary, os.X_OK):
        raise Refused('%s: no snapfs binary at %s' % (name, a.bin))
    own_work = a.workdir is None
    work = a.workdir or tempfile.mkdtemp(prefix=prefix, dir='/var/tmp')
    work = os.path.realpath(work)
    fstype = fs_of(work)[1]
    if fstype in NOT_LOCAL:
        raise Refused('%s: %s is on %s; benchmarks need a local disk'
                      % (name, work, fstype))
    return binary, work, own_work


def remove_work(a, work, own_work, parts=None):
    """After a run, unless --keep: the work directory if setup() made it;
    in one that --workdir named (bench/run.sh removes those), only @parts,
    subdirectories the run made.  Never while WORK/mnt or PART/mnt is still
    mounted (the removal would go into the mount)."""
    if a.keep or any(is_mounted(os.path.join(work, p, 'mnt')) for p in parts or ('',)):
        return
    if own_work:
        shutil.rmtree(work, ignore_errors=True)
    else:
        for p in parts or ():
            shutil.rmtree(os.path.join(work, p), ignore_errors=True)


def end_on_signals():
    """SIGTERM/SIGHUP end the run through its finally, like Ctrl-C."""
    def on_signal(signum, _frame):
        raise KeyboardInterrupt('signal %d' % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


def machine(work):
    info = {}
    info['date'] = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    info['nproc'] = os.cpu_count()
    info['kernel'] = platform.release()
    try:
        with open('/proc/cpuinfo') as f:
            info['cpu'] = next((l.split(':', 1)[1].strip() for l in f
                                if l.startswith('model name')), '?')
        with open('/proc/meminfo') as f:
            info['mem_gib'] = round(int(f.readline().split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    info['loadavg_start'] = loadavg()
    mp, fstype, dev = fs_of(work)
    info['workdir_fs'] = '%s on %s (%s)' % (dev, mp, fstype)
    blk = os.path.basename(os.path.realpath(dev)) if dev.startswith('/dev/') else ''
    rot = '/sys/block/%s/queue/rotational' % blk
    if blk and os.path.exists(rot):
        with open(rot) as f:
            info['disk'] = '%s, rotational=%s' % (blk, f.read().strip())
        try:
            with open('/sys/block/%s/size' % blk) as f:
                info['disk'] += ', %d GiB' % (int(f.read()) * 512 // GiB)
        except OSError:
            pass
    return info


def start_report(title, a, work, binary, tools, params, lines, width=10,
                 label=None):
    """The facts of a run (machine(), snapfs -V, --bin and @label, @tools:
    [(key, text)] such as the QEMU version, quick or full, @params), printed
    as the header: '@title, quick run, date', one fact a line, then @lines
    [(label, text)] such as the work directory and the mount options, the
    labels @width wide.  Returns the facts (results['machine'])."""
    info = machine(work)
    info['snapfs'] = run([binary, '-V'], check=False).stdout.strip()
    info['binary'] = binary + (' (%s)' % label if label else '')
    info.update(tools)
    info['mode'] = 'quick' if a.quick else 'full'
    info['params'] = params
    log('%s, %s run, %s' % (title, info['mode'], info['date']))
    for k in ('nproc', 'cpu', 'mem_gib', 'kernel', 'workdir_fs', 'disk', 'snapfs',
              'binary') + tuple(k for k, _ in tools) + ('params', 'loadavg_start'):
        if k in info:
            log('  %-*s %s' % (width, k, info[k]))
    for k, text in lines:
        log('  %-*s %s' % (width, k, text))
    return info


def verdict(row):
    """A summary row's result cell (see the top of this file)."""
    if 'result' in row:
        return row['result']
    return '-' if row['ok'] is None else 'PASS' if row['ok'] else 'MISS'


def print_table(rows, ratio_head='ratio (paired range)'):
    head = ('benchmark', 'baseline', 'snapfs', ratio_head, 'target', 'result')
    cells = [head] + [(r['name'], r['base'], r['snap'], r['ratio'], r['target'],
                       verdict(r)) for r in rows]
    w = [max(len(c[i]) for c in cells) for i in range(len(head))]

    def line(c):
        return '| ' + ' | '.join(x.ljust(w[i]) for i, x in enumerate(c)) + ' |'
    log(line(head))
    log('|' + '|'.join('-' * (x + 2) for x in w) + '|')
    for c in cells[1:]:
        log(line(c))


def finish(name, a, results, t_start, failed, medians='medians, ratio of medians',
           ratio_head='ratio (paired range)'):
    """The end of a run (started at perf_counter() @t_start; @failed: the
    exceptions that ended it or a part of it): the results to --json, the
    summary table, then '@name: FAILED: ...' for each failure, else how
    many targets were met.  Returns the exit status: 0 every target met,
    1 a target missed, 2 the run failed."""
    info = results['machine']
    results['seconds'] = round(time.perf_counter() - t_start, 1)
    info['loadavg_end'] = loadavg()
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(results, f, indent=1)
    rows = results['rows']
    if rows:
        log('== summary (%s run, %s, %d s, load average %s at the start, %s at '
            'the end; %s)' % (info['mode'], info['date'], results['seconds'],
                              info['loadavg_start'], info['loadavg_end'], medians))
        print_table(rows, ratio_head)
    if failed:
        for e in failed:
            log('%s: FAILED: %s: %s' % (name, type(e).__name__, e))
        return 2
    judged = [r for r in rows if verdict(r) in ('PASS', 'MISS')]
    missed = [r['name'] for r in judged if verdict(r) == 'MISS']
    log('%d of %d targets met%s' % (len(judged) - len(missed), len(judged),
                                    '; missed: ' + '; '.join(missed) if missed else ''))
    return 1 if missed else 0
