#!/usr/bin/env python3
"""vmbench.py - the VM snapshot benchmarks of issue 3 (256 MiB VMs).

For VMs with 256 MiB of RAM, 1 vCPU and two qcow2 virtio volumes, under
snapfs's embedded libvirt QEMU driver (QEMU as root, the default), under a
real system libvirtd (--libvirt=system: a private one started with
tools/system-libvirtd.sh, QEMU as the unprivileged libvirt-qemu user with
dynamic ownership, its output through virtlogd; the domains defined with
virsh, snapfs mounted with -o libvirt=URI), or both in one go
(--libvirt=both):

  1. disk snapshot of the running VM: mkdir wall time, and the guest's I/O
     pause, i.e. the QMP transaction snapfs logs as "freeze: switched N
     disk(s) of 'VM' in X ms" (target: under 100 ms, every sample); baseline
     in the same run: mkdir of a snapshot of the same VM stopped.
  2. disk+memory snapshot: mkdir wall time (save the memory, freeze the
     disks, restore the VM).
  3. revert (`revert <snap>` written to vms/<vm>/control, wall time of the
     write) to a disk snapshot and to a disk+memory snapshot, from a running
     and from a stopped VM (target: disk+memory from running under 2 s,
     median); context in the same run: a plain `start` and `force-stop`.

No guest OS: the boot volume holds one boot sector (bench/guest.S,
assembled into GUEST_HEX below) that fills the guest's RAM with
incompressible data and then keeps writing to its boot disk through the
BIOS, so that a memory snapshot has the RAM of a busy 256 MiB guest to save
and a disk snapshot has guest I/O to drain.  Two VMs by default: type 'kvm'
when /dev/kvm opens read-write (else 'qemu'), and a 'qemu' (TCG) one, since
under a KVM that emulates real mode (PVM, as here) the guest never gets past
the BIOS in useful time and its RAM stays almost empty.

The machine is shared and noisy: every operation is repeated (one cycle of
all of them per sample), medians and min..max are printed, ratios are of
medians, and where the time goes is read from millisecond stamps in
SOURCE/snapfs.log and QEMU's log (SOURCE/libvirt/log/qemu/<vm>.log, or
WORK/libvirtd/log/qemu/<vm>.log with the system libvirtd, written by
virtlogd).

With the system libvirtd, WORK is WORK/system with --libvirt=both
(WORK/embedded for the other), the daemons' directory is WORK/libvirtd, and
QEMU as libvirt-qemu must reach the volumes: WORK, SOURCE and PRIMARY get
o+x (the work directory of mkdtemp is 0700), the volumes are relabelled by
libvirt at every start (dynamic ownership: the two qcow2 disks are all QEMU
opens of ours; no -kernel), the files snapfs makes under PRIMARY/.snapfs
get their owners from snapfs.  libvirtd daemonizes its QEMUs, so pid 1
reaps them (snapfs's own subreaper plays no part): --reaper runs the
daemons under a child subreaper, as a host whose init reaps promptly
would.  At the end, always (also on a failure or
Ctrl-C): the VMs force-stopped, snapfs unmounted, the domains undefined,
tools/system-libvirtd.sh stop; bench/run.sh stops a libvirtd left in
WORK/libvirtd or WORK/*/libvirtd as a backstop.

Normally started by bench/run.sh --vm (which owns the work directory and
cleans up after a crash of this script); by hand:

  python3 bench/vmbench.py --bin build/fs/snapfs [--quick]

Python 3 standard library only (and benchlib.py beside it).  Needs root.
"""

import ctypes
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

from benchlib import (FAILURES, BenchError, GiB, LogTail, MiB, Refused, Snapfs,
                      arg_parser, end_on_signals, epoch, finish, fmt_ms, fsync_file,
                      is_mounted, log, median, parse_args, quick_or_full,
                      remove_work, run, setup, spread, start_report, version)

RAM_MIB = 256
FILL_MIB = 239          # what guest.S writes: 1 MiB .. 240 MiB
PAUSE_TARGET = 0.100    # guest I/O pause of a running disk snapshot
REVERT_TARGET = 2.0     # revert to a disk+memory snapshot, from running

# bench/guest.S, assembled (as --32; ld -Ttext 0x7c00 --oformat binary);
# zero padding and the 0x55 0xaa signature are added by guest_sector()
GUEST_HEX = (
    'fa31c08ed88ec08ed0bc007cea117c00008816127de4920c0224fee6920f0116f87c0f20'
    'c00c010f22c0ea2f7c080066b810008ed88ec08ed0bf00001000b891f4452589c2c1e20d'
    '31d089c2c1ea1131d089c2c1e20531d0890783c70481ff0000000f72deea6c7c00001800'
    'b820008ed88ec08ed00f20c024fe0f22c0ea827c000031c08ed88ec08ed0bc007cfbba02'
    '04b046eebefe7cb44330c08a16127dcd1366a10e7d6683c0086625ff7f000066a30e7d66'
    '050008000066a3067d66ff060080b48631c9bae803cd15ebc78d74000000000000000000'
    'ffff0000009acf00ffff00000092cf00ffff0000009a0000ffff0000009200002700d07c'
    '0000100008000080000000080000000000000000000080')

DOMAIN_XML = """<domain type='{type}'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>{ram}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{primary}/{name}-boot.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{primary}/{name}-data.qcow2'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def guest_sector():
    body = bytes.fromhex(GUEST_HEX)
    return body + bytes(510 - len(body)) + b'\x55\xaa'


def kvm_usable():
    try:
        os.close(os.open('/dev/kvm', os.O_RDWR | os.O_CLOEXEC))
        return True
    except OSError:
        return False


# ---- logs ----------------------------------------------------------------------

SNAPFS_STAMP = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (\w+): (.*)$')
QEMU_LIBVIRT = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\+0000: (.*)$')
QEMU_SELF = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z qemu-system[^:]*: (.*)$')
FREEZE = re.compile(r"freeze: switched (\d+) disk\(s\) of '([^']+)' in ([0-9.]+) ms")


def snapfs_marks(lines, vm):
    """[(epoch, what, value)] from snapfs.log lines about @vm."""
    out = []
    for line in lines:
        m = SNAPFS_STAMP.match(line)
        if not m:
            continue
        t = epoch(m.group(1), '%Y-%m-%dT%H:%M:%S.%f')
        msg = m.group(3)
        f = FREEZE.search(msg)
        if f and f.group(2) == vm:
            out.append((t, 'freeze', float(f.group(3)) / 1e3))
        elif msg.startswith('event: '):
            try:
                ev = json.loads(msg[7:])
            except ValueError:
                continue
            if ev.get('vm') == vm:
                out.append((t, 'event:' + ev.get('type', '?'), ev))
    return out


def qemu_marks(lines):
    """[(epoch, what, value)] from QEMU's log: starting up, shutting down
    (libvirt's stamps) and terminating on signal (QEMU's own stamp)."""
    out = []
    for line in lines:
        m = QEMU_LIBVIRT.match(line)
        if m:
            t = epoch(m.group(1), '%Y-%m-%d %H:%M:%S.%f')
            if m.group(2).startswith('starting up'):
                out.append((t, 'qemu.start', None))
            elif m.group(2).startswith('shutting down'):
                out.append((t, 'qemu.down', m.group(2).partition('reason=')[2]))
            continue
        m = QEMU_SELF.match(line)
        if m and 'terminating on signal' in m.group(2):
            out.append((epoch(m.group(1), '%Y-%m-%dT%H:%M:%S.%f'), 'qemu.signal', None))
    return out


def first(marks, what, after=0.0):
    for t, w, v in marks:
        if w == what and t >= after - 0.002:
            return t, v
    return None, None


# ---- the daemon -------------------------------------------------------------------


def reaper_main(pidfile, argv, linger=False):
    """--as-reaper: be a child subreaper for @argv (snapfs), so that the
    QEMUs libvirt daemonizes are reaped the moment they exit instead of
    whenever pid 1 gets to it; forward TERM/INT/HUP; exit with its status.

    --as-lingering-reaper (@linger): @argv is tools/system-libvirtd.sh
    start, whose daemons, and the QEMUs they daemonize, are orphaned to us;
    write @argv's exit status to @pidfile when it ends, then reap every
    orphan until no child is left (the daemons stopped, their QEMUs gone),
    and exit 0.  TERM/INT/HUP end it at once (orphans then go to pid 1)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:     # PR_SET_CHILD_SUBREAPER
        sys.exit('vmbench: prctl(PR_SET_CHILD_SUBREAPER) failed')
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    if linger:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda s, _f: os._exit(128 + s))
    else:
        with open(pidfile, 'w') as f:
            f.write('%d\n' % pid)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda s, _f: os.kill(pid, s))
    while True:
        try:
            p, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0 if linger else 1
        except InterruptedError:
            continue
        if p == pid:
            rc = os.waitstatus_to_exitcode(status) & 0xff
            if not linger:
                return rc
            with open(pidfile + '.tmp', 'w') as f:
                f.write('%d\n' % rc)
            os.rename(pidfile + '.tmp', pidfile)


# ---- the system libvirtd ------------------------------------------------------------

SYSTEM_LIBVIRTD_SH = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'tools', 'system-libvirtd.sh')
QEMU_USER = 'libvirt-qemu'


class SystemLibvirtd:
    """A private system libvirtd and virtlogd in @dir (WORK/libvirtd),
    started by tools/system-libvirtd.sh, ended by close(): QEMU runs as
    libvirt-qemu with dynamic ownership, its log written by virtlogd to
    DIR/log/qemu/<vm>.log, its pid file DIR/run/qemu/<vm>.pid.  With
    @reaper, the script runs under this file as --as-lingering-reaper, a
    child subreaper that stays while the daemons run: libvirtd's daemonized
    QEMUs are reaped the moment they exit (as systemd, pid 1 of a real
    host, does), not whenever this machine's pid 1 gets to them."""

    start_timeout = 120

    def __init__(self, dir, reaper):
        self.dir = dir
        self.reaper = reaper
        self.reaper_proc = None
        self.uri = None
        self.defined = []       # domain names, undefined by close()

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        argv = ['bash', SYSTEM_LIBVIRTD_SH, 'start', self.dir]
        if not self.reaper:
            out = run(argv, timeout=self.start_timeout).stdout
        else:
            rcfile = self.dir + '.reaper-rc'
            outfile = self.dir + '.start-out'
            with open(outfile, 'w') as f:
                self.reaper_proc = subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__),
                     '--as-lingering-reaper', rcfile, '--'] + argv,
                    stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                    start_new_session=True)
            deadline = time.monotonic() + self.start_timeout
            while not os.path.exists(rcfile):
                if self.reaper_proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            with open(outfile) as f:
                out = f.read()
            try:
                with open(rcfile) as f:
                    rc = int(f.read())
            except (OSError, ValueError):
                rc = None
            if rc != 0:
                raise BenchError('%s exited %s: %s' % (' '.join(argv), rc, out[-1500:]))
        self.uri = out.strip().splitlines()[-1]
        if not self.uri.startswith('qemu:///system?socket='):
            raise BenchError('%s printed %r, not a URI' % (' '.join(argv), out))
        return self.uri

    def virsh(self, *args, check=True):
        return run(['virsh', '-q', '-c', self.uri] + list(args), timeout=120,
                   check=check)

    def define(self, name, xml_path):
        self.virsh('define', xml_path)
        self.defined.append(name)

    def undefine(self, name):
        """Destroy @name if it runs, then undefine it; what failed, as text."""
        st = self.virsh('domstate', name, check=False)
        if st.returncode != 0:
            return ''       # gone
        if st.stdout.strip() not in ('shut off', 'crashed'):
            d = self.virsh('destroy', name, check=False)
            if d.returncode != 0:
                return 'virsh destroy %s: %s' % (name, d.stderr.strip())
        u = self.virsh('undefine', '--managed-save', '--snapshots-metadata',
                       '--checkpoints-metadata', name, check=False)
        if u.returncode != 0:
            return 'virsh undefine %s: %s' % (name, u.stderr.strip())
        return ''

    def qemu_log(self, vm):
        return os.path.join(self.dir, 'log', 'qemu', vm + '.log')

    def qemu_pidfile(self, vm):
        return os.path.join(self.dir, 'run', 'qemu', vm + '.pid')

    def close(self):
        """Undefine our domains (destroyed first), stop both daemons, kill
        any QEMU they left (libvirt's pid files), end the reaper.  Best
        effort: logs what failed, never raises."""
        if self.uri:
            for name in self.defined:
                try:
                    why = self.undefine(name)
                except FAILURES as e:
                    why = str(e)
                if why:
                    log('   cleanup: %s' % why)
            self.defined = []
        p = subprocess.run(['bash', SYSTEM_LIBVIRTD_SH, 'stop', self.dir],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        if p.returncode != 0:
            log('   cleanup: system-libvirtd.sh stop %s exited %d: %s'
                % (self.dir, p.returncode, p.stdout.strip()))
        for path in glob.glob(os.path.join(self.dir, 'run', 'qemu', '*.pid')):
            try:
                with open(path) as f:
                    pid = int(f.read())
                with open('/proc/%d/cmdline' % pid, 'rb') as f:
                    if b'qemu-system' not in f.read():
                        continue
                os.kill(pid, signal.SIGKILL)
                log('   cleanup: killed QEMU %d left running' % pid)
            except (OSError, ValueError):
                pass
        if self.reaper_proc is not None:
            try:
                self.reaper_proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.reaper_proc.kill()
                self.reaper_proc.wait()
            self.reaper_proc = None
        self.uri = None


class VmSnapfs(Snapfs):
    """One snapfs daemon and the VMs @vms, started and ended by us.  With
    @libvirtd None, libvirt is embedded and the VMs are defined in
    SOURCE/domains/; with @reaper snapfs runs under a child subreaper (this
    script as --as-reaper: self.proc is the reaper, self.pid snapfs, read
    from snapfs.pid, which the reaper writes).  With @libvirtd (a started
    SystemLibvirtd), snapfs mounts with -o libvirt=URI and the VMs are its
    domains (defined with virsh by the caller)."""

    start_timeout = 90      # first mount: libvirt probes QEMU
    quiet_timeout = 300

    def __init__(self, binary, work, opts, reaper, vms, libvirtd=None):
        if libvirtd is not None:
            opts += ',libvirt=' + libvirtd.uri
            reaper = False      # snapfs starts no QEMU of its own
        super().__init__(binary, work, opts,
                         dirs=('source/domains',) if libvirtd is None else ())
        self.reaper = reaper
        self.vms = vms
        self.libvirtd = libvirtd
        self.snaplog = LogTail(os.path.join(self.source, 'snapfs.log'))

    def qemu_log(self, vm):
        if self.libvirtd:
            return self.libvirtd.qemu_log(vm)
        return os.path.join(self.source, 'libvirt', 'log', 'qemu', vm + '.log')

    def qemu_pidfile(self, vm):
        if self.libvirtd:
            return self.libvirtd.qemu_pidfile(vm)
        return os.path.join(self.source, 'libvirt', 'run', 'qemu', vm + '.pid')

    def command(self):
        argv = super().command()
        if self.reaper:
            argv = [sys.executable, os.path.abspath(__file__), '--as-reaper',
                    self.pidfile, '--'] + argv
        return argv

    def spawned(self):
        return None if self.reaper else super().spawned()

    def ready(self):
        if self.pid is None:
            try:
                with open(self.pidfile) as f:
                    self.pid = int(f.read())
            except (OSError, ValueError):
                pass
        return self.pid and is_mounted(self.mnt) and \
            all(os.path.isdir(self.p('vms', vm)) for vm in self.vms)

    def not_ready(self):
        return ('snapfs did not mount with VMs %s within %d s; see %s'
                % (', '.join(self.vms), self.start_timeout,
                   os.path.join(self.source, 'snapfs.log')))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def events_tail(self, n=5):
        try:
            with open(self.p('events')) as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return '(events unreadable)'

    # -- the vms/ tree --

    def vm_state(self, vm):
        with open(self.p('vms', vm, 'state')) as f:
            return f.read().strip()

    def control(self, vm, cmd):
        """Write @cmd to vms/<vm>/control; the wall time of the write."""
        fd = os.open(self.p('vms', vm, 'control'), os.O_WRONLY)
        try:
            t = time.perf_counter()
            os.write(fd, cmd.encode() + b'\n')
            return time.perf_counter() - t
        except OSError as e:
            raise BenchError('%s > vms/%s/control: %s; last events:\n%s'
                             % (cmd, vm, e, self.events_tail()))
        finally:
            os.close(fd)

    def options(self, vm, memory):
        with open(self.p('vms', vm, 'snapshot-options'), 'w') as f:
            f.write('memory=%s\n' % ('yes' if memory else 'no'))

    def mkdir(self, vm, snap):
        d = self.p('vms', vm, 'snapshots', snap)
        t = time.perf_counter()
        try:
            os.mkdir(d)
        except OSError as e:
            raise BenchError('mkdir vms/%s/snapshots/%s: %s; last events:\n%s'
                             % (vm, snap, e, self.events_tail()))
        return time.perf_counter() - t

    def rmdir(self, vm, snap):
        t = time.perf_counter()
        os.rmdir(self.p('vms', vm, 'snapshots', snap))
        return time.perf_counter() - t

    def qemu_pid(self, vm):
        try:
            with open(self.qemu_pidfile(vm)) as f:
                pid = int(f.read())
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                cmd = f.read()
        except (OSError, ValueError):
            return None
        return pid if b'qemu-system' in cmd and self.work.encode() in cmd else None

    # -- the end --

    def stop(self):
        """Force-stop our VMs, unmount, end snapfs, kill any QEMU left."""
        if self.proc is None:
            return
        if self.alive() and is_mounted(self.mnt):
            for vm in self.vms:
                try:
                    if os.path.isdir(self.p('vms', vm)) and self.vm_state(vm) != 'stopped':
                        self.control(vm, 'force-stop')
                except (OSError, BenchError) as e:
                    log('   cleanup: force-stop of %s failed: %s' % (vm, e))
        self.unmount()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for pid in (self.pid, self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, TypeError):
                    pass
            self.proc.wait()
        killed = kill_qemus(self.work)
        if killed:
            log('   cleanup: killed %d QEMU process(es) left running' % killed)
        self.proc = None
        self.logf.close()


def kill_qemus(work):
    """SIGKILL every qemu-system process whose command line names @work."""
    n = 0
    key = (work.rstrip('/') + '/').encode()
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % name, 'rb') as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.startswith(b'/usr/bin/qemu-system') or b'qemu-system' in cmd.split(b'\0')[0]:
            if key in cmd:
                try:
                    os.kill(int(name), signal.SIGKILL)
                    n += 1
                except ProcessLookupError:
                    pass
    return n


# ---- the benchmark -------------------------------------------------------------------


def reap_probe(samples=5):
    """How long after SIGTERM an orphan (reparented to pid 1, as libvirt's
    daemonized QEMUs are) stays visible to kill(pid, 0): the machine's init
    reaping latency, which libvirt waits out on every QEMU it stops."""
    gone, zombie = [], []
    for _ in range(samples):
        out = run(['sh', '-c', 'sleep 60 </dev/null >/dev/null 2>&1 & echo $!']).stdout
        pid = int(out.strip())
        time.sleep(0.05)
        t = time.perf_counter()
        os.kill(pid, signal.SIGTERM)
        z = None
        while time.perf_counter() - t < 10:
            try:
                with open('/proc/%d/stat' % pid) as f:
                    st = f.read().rsplit(')', 1)[1].split()[0]
            except OSError:
                break
            if st == 'Z' and z is None:
                z = time.perf_counter() - t
            time.sleep(0.002)
        gone.append(time.perf_counter() - t)
        zombie.append(z if z is not None else 0.0)
    return gone, zombie


def make_volumes(fs, vm):
    boot = os.path.join(fs.primary, vm + '-boot.qcow2')
    data = os.path.join(fs.primary, vm + '-data.qcow2')
    raw = os.path.join(fs.work, vm + '-boot.raw')
    with open(raw, 'wb') as f:
        f.write(guest_sector())
        f.truncate(MiB)
    run(['qemu-img', 'convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, boot])
    run(['qemu-img', 'resize', '-q', boot, '1G'])
    os.unlink(raw)
    run(['qemu-img', 'create', '-q', '-f', 'qcow2', data, '1G'])
    run(['qemu-io', '-f', 'qcow2', '-c', 'write -q -P 0x5a 0 64M', data])
    for p in (boot, data):
        fsync_file(p)


class Phase:
    """All samples of one VM."""

    def __init__(self, fs, vm, vmtype, a):
        self.fs, self.vm, self.type, self.a = fs, vm, vmtype, a
        self.qlog = LogTail(fs.qemu_log(vm))
        self.filled = None      # does the guest fill its RAM in useful time?
        self.s = {}             # op -> [seconds]
        self.parts = {}         # op -> [{part: seconds}]
        self.extra = {'freeze_s': [], 'memfile_mib': [], 'rss_mib_at_memsnap': [],
                      'chain_depth': [], 'rmdir_s': [], 'freeze_lines': []}
        self.notes = []

    # -- helpers --

    def rss_mib(self):
        pid = self.fs.qemu_pid(self.vm)
        if not pid:
            return 0
        try:
            with open('/proc/%d/status' % pid) as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        return int(line.split()[1]) // 1024
        except OSError:
            pass
        return 0

    def wait_ready(self, first=False):
        """Until the guest has filled its RAM (QEMU's RSS covers it), or, for
        a guest that does not get there in useful time, a 1 s settle."""
        if self.filled is False:
            time.sleep(1.0)
            return
        limit = self.a.fill_timeout if first or self.filled is None else 60
        want = FILL_MIB + 8
        t = time.monotonic()
        while time.monotonic() - t < limit:
            if self.rss_mib() >= want:
                if self.filled is None:
                    self.filled = True
                    log('   %s: guest RAM filled %.1f s after start (QEMU RSS %d MiB)'
                        % (self.vm, time.monotonic() - t, self.rss_mib()))
                time.sleep(0.2)     # and writing to its disk
                return
            time.sleep(0.05)
        if self.filled:
            raise BenchError('%s: guest did not fill its RAM again within %d s'
                             % (self.vm, limit))
        self.filled = False
        msg = ('%s (%s): the guest had not filled its RAM %d s after start (QEMU '
               'RSS %d MiB); measured with the RAM it has' % (self.vm, self.type,
                                                               limit, self.rss_mib()))
        self.notes.append(msg)
        log('   ' + msg)

    def expect(self, state, after):
        st = self.fs.vm_state(self.vm)
        if st != state:
            raise BenchError('%s is %s after %s, expected %s; last events:\n%s'
                             % (self.vm, st, after, state, self.fs.events_tail()))

    def before(self):
        self.fs.wait_quiet()
        os.sync()
        time.sleep(0.05)
        self.fs.snaplog.mark()
        self.qlog.mark()
        return time.time()

    def marks(self):
        m = snapfs_marks(self.fs.snaplog.lines(), self.vm) + qemu_marks(self.qlog.lines())
        m.sort(key=lambda x: x[0])
        return m

    def record(self, op, dt, parts=None):
        self.s.setdefault(op, []).append(dt)
        if parts is not None:
            self.parts.setdefault(op, []).append(parts)

    def chain_depth(self):
        path = os.path.join(self.fs.primary, self.vm + '-boot.qcow2')
        info = json.loads(run(['qemu-img', 'info', '-U', '--backing-chain',
                               '--output=json', path]).stdout)
        names = [i.get('filename') for i in info]
        if len(set(names)) != len(names) or names[0] in names[1:]:
            raise BenchError('%s: backing chain names a file twice: %s' % (path, names))
        return len(info)

    # -- the operations, each timed --

    def snap_disk_running(self, name):
        t0 = self.before()
        dt = self.fs.mkdir(self.vm, name)
        self.expect('running', 'a disk snapshot')
        m = self.marks()
        fz = [v for _, w, v in m if w == 'freeze']
        tf, _ = first(m, 'freeze', t0)
        te, _ = first(m, 'event:vm.snapshot', t0)
        if len(fz) != 1:
            self.notes.append('%s: %d freeze lines for one running disk snapshot'
                              % (name, len(fz)))
        self.extra['freeze_s'].extend(fz)
        parts = None
        if tf and te:
            parts = {'prepare (link, overlays, QMP add)': tf - fz[0] - t0,
                     'transaction (guest I/O paused)': fz[0],
                     'swap + catalog': te - tf}
        self.record('disk, running', dt, parts)

    def snap_disk_stopped(self, name):
        self.before()
        dt = self.fs.mkdir(self.vm, name)
        self.expect('stopped', 'a disk snapshot of the stopped VM')
        self.record('disk, stopped', dt)

    def snap_memory(self, name):
        self.fs.options(self.vm, True)
        self.extra['rss_mib_at_memsnap'].append(self.rss_mib())
        mem = os.path.join(self.fs.primary, '.snapfs', '.memory')
        have = set(os.listdir(mem)) if os.path.isdir(mem) else set()
        try:
            t0 = self.before()
            dt = self.fs.mkdir(self.vm, name)
        finally:
            self.fs.options(self.vm, False)
        self.expect('running', 'a disk+memory snapshot')
        new = [f for f in os.listdir(mem) if f not in have] if os.path.isdir(mem) else []
        if len(new) == 1:
            self.extra['memfile_mib'].append(
                os.path.getsize(os.path.join(mem, new[0])) / MiB)
        m = self.marks()
        ts, _ = first(m, 'qemu.signal', t0)
        tu, _ = first(m, 'qemu.start', t0)
        te, _ = first(m, 'event:vm.snapshot', t0)
        parts = None
        if ts and tu and te and ts <= tu <= te:
            parts = {'prepare + save memory': ts - t0,
                     'old QEMU reaped, disks swapped': tu - ts,
                     'restore': te - tu}
        self.record('disk+memory', dt, parts)

    def revert(self, name, kind, from_state):
        t0 = self.before()
        dt = self.fs.control(self.vm, 'revert ' + name)
        end = 'running' if kind == 'memory' else 'stopped'
        self.expect(end, 'revert to %s' % name)
        m = self.marks()
        te, _ = first(m, 'event:vm.revert', t0)
        parts = None
        if from_state == 'running':
            ts, _ = first(m, 'qemu.signal', t0)
            td, _ = first(m, 'qemu.down', t0)
            if kind == 'memory':
                tu, _ = first(m, 'qemu.start', t0)
                if ts and td and tu and te and ts <= td <= tu <= te:
                    parts = {'checks, SIGTERM': ts - t0,
                             'wait for QEMU to be reaped': td - ts,
                             'disks': tu - td, 'restore': te - tu}
            elif ts and td and te and ts <= td <= te:
                parts = {'checks, SIGTERM': ts - t0,
                         'wait for QEMU to be reaped': td - ts, 'disks': te - td}
        elif kind == 'memory':
            tu, _ = first(m, 'qemu.start', t0)
            if tu and te and tu <= te:
                parts = {'checks, disks': tu - t0, 'restore': te - tu}
        self.record('revert %s, from %s' % (kind, from_state), dt, parts)

    def start(self):
        t0 = self.before()
        dt = self.fs.control(self.vm, 'start')
        self.expect('running', 'start')
        self.record('start', dt)
        return t0

    def force_stop(self):
        t0 = self.before()
        dt = self.fs.control(self.vm, 'force-stop')
        self.expect('stopped', 'force-stop')
        m = self.marks()
        ts, _ = first(m, 'qemu.signal', t0)
        td, _ = first(m, 'qemu.down', t0)
        parts = None
        if ts and td and ts <= td:
            parts = {'until SIGTERM': ts - t0, 'wait for QEMU to be reaped': td - ts}
        self.record('force-stop', dt, parts)

    # -- the cycle --

    def run(self):
        a, vm = self.a, self.vm
        log('== %s: type %s, %d MiB RAM, 1 vCPU, volumes %s-boot and %s-data'
            % (vm, self.type, RAM_MIB, vm, vm))
        self.fs.control(vm, 'start')
        self.expect('running', 'start')
        self.wait_ready(first=True)
        # untimed warm-up: one of each snapshot kind and a revert
        self.fs.mkdir(vm, 'w-d')
        self.fs.options(vm, True)
        try:
            self.fs.mkdir(vm, 'w-m')
        finally:
            self.fs.options(vm, False)
        self.wait_ready()
        self.fs.control(vm, 'revert w-m')
        self.wait_ready()
        for i in range(a.samples):
            d, mm, s = 'd%d' % i, 'm%d' % i, 's%d' % i
            self.snap_disk_running(d)               # running -> running
            self.snap_memory(mm)                    # running -> running
            self.wait_ready()
            self.revert(mm, 'memory', 'running')    # -> running
            self.wait_ready()
            self.revert(d, 'disk', 'running')       # -> stopped
            self.snap_disk_stopped(s)               # stopped -> stopped
            self.revert(mm, 'memory', 'stopped')    # -> running
            self.wait_ready()
            self.force_stop()                       # -> stopped
            self.revert(s, 'disk', 'stopped')       # -> stopped
            self.start()                            # -> running
            self.wait_ready()
            self.extra['chain_depth'].append(self.chain_depth())
            log('   sample %d: disk snapshot running %s (pause %s), stopped %s; '
                'disk+memory %s; revert memory %s, disk %s; start %s'
                % (i, fmt_ms(self.s['disk, running'][-1]),
                   fmt_ms(self.extra['freeze_s'][-1]) if self.extra['freeze_s'] else '?',
                   fmt_ms(self.s['disk, stopped'][-1]),
                   fmt_ms(self.s['disk+memory'][-1]),
                   fmt_ms(self.s['revert memory, from running'][-1]),
                   fmt_ms(self.s['revert disk, from running'][-1]),
                   fmt_ms(self.s['start'][-1])))
        # Every snapshot stays until here.  Deleting them within the loop
        # leaves dead layers that a revert's merge job folds away while
        # libvirt restores the VM from the chain it has just read: the
        # revert then fails with EIO ("Path ... is not accessible"; see
        # docs/benchmarks.md).  Newest first.
        self.fs.control(vm, 'force-stop')
        for i in reversed(range(a.samples)):
            for snap in ('s%d' % i, 'm%d' % i, 'd%d' % i):
                self.fs.wait_quiet()
                self.extra['rmdir_s'].append(self.fs.rmdir(vm, snap))
        for snap in ('w-m', 'w-d'):
            self.fs.wait_quiet()
            self.fs.rmdir(vm, snap)
        self.fs.wait_quiet()
        self.leftovers = leftovers(self.fs, vm)
        self.report()

    def report(self):
        log('   %s (%s), medians [min..max] n:' % (self.vm, self.type))
        for op in ('disk, running', 'disk, stopped', 'disk+memory',
                   'revert memory, from running', 'revert memory, from stopped',
                   'revert disk, from running', 'revert disk, from stopped',
                   'start', 'force-stop'):
            if op in self.s:
                log('     %-28s %s' % (op, spread(self.s[op], fmt_ms)))
                parts = self.parts.get(op) or []
                if parts:
                    keys = list(parts[0])
                    log('       where the time goes (medians of %d): %s' % (
                        len(parts), ', '.join('%s %s' % (k, fmt_ms(median(
                            [p[k] for p in parts if k in p]))) for k in keys)))
        fz = self.extra['freeze_s']
        if fz:
            log('     %-28s %s' % ('guest I/O pause (QMP)', spread(fz, fmt_ms)))
        if self.extra['memfile_mib']:
            log('     memory file %.1f MiB (median), QEMU RSS at the snapshot %d MiB'
                % (median(self.extra['memfile_mib']),
                   median(self.extra['rss_mib_at_memsnap'])))
        log('     rmdir of a VM snapshot %s; boot volume chain depth %s'
            % (spread(self.extra['rmdir_s'], fmt_ms),
               '..'.join(str(x) for x in sorted(set(self.extra['chain_depth'])))))
        log('     after deleting every snapshot: %s' % (self.leftovers or 'nothing left'))
        for n in self.notes:
            log('     note: %s' % n)

    def rows(self, label):
        rows, s = [], self.s
        fz = self.extra['freeze_s']

        def r(name, base, snap, ratio, target, ok):
            rows.append(dict(name='%s: %s' % (label, name), base=base, snap=snap,
                             ratio=ratio, target=target,
                             result='-' if ok is None else 'PASS' if ok else 'MISS'))

        def ms3(xs):
            return '%s (%s..%s)' % (fmt_ms(median(xs)), fmt_ms(min(xs)), fmt_ms(max(xs)))

        run_, stop_ = s['disk, running'], s['disk, stopped']
        r('disk snapshot, running (mkdir)', 'stopped: ' + fmt_ms(median(stop_)),
          ms3(run_), '%.2fx' % (median(run_) / median(stop_)), '-', None)
        if fz:
            r('guest I/O pause of it (QMP transaction)', '-', ms3(fz), '-',
              '< %d ms, every sample' % (PAUSE_TARGET * 1e3), max(fz) < PAUSE_TARGET)
        else:
            r('guest I/O pause of it (QMP transaction)', '-', 'not logged', '-',
              '< %d ms' % (PAUSE_TARGET * 1e3), False)
        st = s['start']
        mem = s['disk+memory']
        r('disk+memory snapshot (mkdir), %.0f MiB saved'
          % (median(self.extra['memfile_mib']) if self.extra['memfile_mib'] else 0),
          '-', ms3(mem), '-', '-', None)
        rm = s['revert memory, from running']
        r('revert to disk+memory, from running', 'start: ' + fmt_ms(median(st)),
          ms3(rm), '%.2fx' % (median(rm) / median(st)),
          '< %.0f s (median)' % REVERT_TARGET, median(rm) < REVERT_TARGET)
        rms = s['revert memory, from stopped']
        r('revert to disk+memory, from stopped', 'start: ' + fmt_ms(median(st)),
          ms3(rms), '%.2fx' % (median(rms) / median(st)), '-', None)
        fsx = s['force-stop']
        rd = s['revert disk, from running']
        r('revert to disk, from running', 'force-stop: ' + fmt_ms(median(fsx)),
          ms3(rd), '%.2fx' % (median(rd) / median(fsx)), '-', None)
        rds = s['revert disk, from stopped']
        r('revert to disk, from stopped', '-', ms3(rds), '-', '-', None)
        return rows


def leftovers(fs, vm):
    """Files left once every snapshot of @vm is deleted and snapfs is quiet:
    memory files, and layers of its volumes on primary."""
    out = []
    mem = glob.glob(os.path.join(fs.primary, '.snapfs', '.memory', '*'))
    if mem:
        out.append('%d memory file(s)' % len(mem))
    for vol in (vm + '-boot', vm + '-data'):
        layers = [f for f in glob.glob(os.path.join(fs.primary, '.snapfs', vol, '*'))
                  if not os.path.basename(f).startswith('.')]
        if layers:
            out.append('%d layer(s) of %s' % (len(layers), vol))
    return ', '.join(out)


def reachable_by_others(path):
    """The first directory from / down to @path that others cannot
    traverse (no o+x), or None."""
    d = '/'
    for part in os.path.realpath(path).strip('/').split('/'):
        d = os.path.join(d, part)
        if not os.stat(d).st_mode & 0o001:
            return d
    return None


def prepare_mode(mode, work, both):
    """WORK of @mode (WORK itself, or WORK/@mode with --libvirt=both) and,
    for the system mode, the checks QEMU as libvirt-qemu needs."""
    mwork = os.path.join(work, mode) if both else work
    os.makedirs(mwork, exist_ok=True)
    if mode == 'system':
        # QEMU as libvirt-qemu opens PRIMARY/<vm>-*.qcow2: every directory
        # on the way must let others through; ours get o+x (mkdtemp made
        # WORK 0700), those above are checked
        for d in (work, mwork):
            os.chmod(d, os.stat(d).st_mode & 0o7777 | 0o011)
        blocked = reachable_by_others(mwork)
        if blocked:
            raise Refused('vmbench: %s is not o+x: QEMU as %s could not reach '
                          'the volumes under %s' % (blocked, QEMU_USER, mwork))
    return mwork


def run_mode(mode, mwork, binary, vms, a, results):
    """Mount, run every VM's cycles, report; always ends with the VMs
    stopped, snapfs unmounted and (system mode) the domains undefined and
    the daemons stopped.  Rows labelled with @mode unless it is the
    embedded one alone."""
    prefix = '' if a.libvirt == 'embedded' else \
        ('system libvirtd, ' if mode == 'system' else 'embedded, ')
    log('== %s' % ('libvirt embedded in snapfs (qemu:///embed), QEMU as root'
                   if mode == 'embedded' else
                   'a system libvirtd (tools/system-libvirtd.sh), QEMU as %s, '
                   'dynamic ownership, virtlogd%s'
                   % (QEMU_USER, ', under a child subreaper (--reaper)'
                      if a.reaper else '')))
    libvirtd = None
    fs = None
    try:
        if mode == 'system':
            libvirtd = SystemLibvirtd(os.path.join(mwork, 'libvirtd'), a.reaper)
            t = time.perf_counter()
            libvirtd.start()
            log('   %s started in %.1f s' % (libvirtd.uri, time.perf_counter() - t))
            ver = run(['virsh', '-c', libvirtd.uri, 'version']).stdout
            results['machine'].setdefault('libvirtd', ' '.join(
                l.strip() for l in ver.splitlines() if 'libvirt' in l.lower()))
        fs = VmSnapfs(binary, mwork, 'workers=1,retries=0', a.reaper,
                      [vm for vm, _ in vms], libvirtd)
        if libvirtd:
            os.chmod(fs.source, os.stat(fs.source).st_mode & 0o7777 | 0o011)
            os.chmod(fs.primary, os.stat(fs.primary).st_mode & 0o7777 | 0o011)
            domains = os.path.join(mwork, 'domains')     # not SOURCE/domains
            os.makedirs(domains, exist_ok=True)
        else:
            domains = os.path.join(fs.source, 'domains')
        for vm, t in vms:
            make_volumes(fs, vm)
            xml = os.path.join(domains, vm + '.xml')
            with open(xml, 'w') as f:
                f.write(DOMAIN_XML.format(type=t, name=vm, uuid=uuid.uuid4(),
                                          ram=RAM_MIB, primary=fs.primary))
            if libvirtd:
                libvirtd.define(vm, xml)
        t = time.perf_counter()
        fs.start()
        log('   mounted with %d VM(s) in %.1f s' % (len(vms), time.perf_counter() - t))
        for vm, t in vms:
            ph = Phase(fs, vm, t, a)
            ph.run()
            label = '%s%s VM%s' % (prefix, t, '' if ph.filled else ', RAM not filled')
            results['rows'] += ph.rows(label)
            results['vms'][vm if a.libvirt != 'both' else mode + '/' + vm] = dict(
                libvirt=mode, type=t, filled=ph.filled, samples_s=ph.s,
                parts_s=ph.parts, extra=ph.extra, notes=ph.notes,
                leftovers=ph.leftovers)
            log()
    finally:
        try:
            if fs is not None:
                fs.stop()
        finally:
            if libvirtd is not None:
                libvirtd.close()
                log('   the system libvirtd stopped, its domains undefined')


def main():
    if len(sys.argv) > 2 and sys.argv[1] in ('--as-reaper', '--as-lingering-reaper'):
        argv = sys.argv[3:]
        if argv and argv[0] == '--':
            argv = argv[1:]
        return reaper_main(sys.argv[2], argv,
                           linger=sys.argv[1] == '--as-lingering-reaper')

    ap = arg_parser(__doc__, '2 samples per VM', 'an empty directory on local '
                    'disk, short path (default: a new one under /var/tmp, '
                    'removed at the end)')
    ap.add_argument('--libvirt', choices=('embedded', 'system', 'both'),
                    default='embedded',
                    help="embedded: libvirt's QEMU driver inside snapfs, QEMU as "
                    "root (default); system: a private system libvirtd "
                    "(tools/system-libvirtd.sh), QEMU as libvirt-qemu; both: "
                    "embedded, then system")
    ap.add_argument('--samples', type=int, help='cycles per VM (default 8)')
    ap.add_argument('--types', help="VM domain types to run, comma-separated "
                    "(default: 'kvm' if /dev/kvm opens read-write, and 'qemu')")
    ap.add_argument('--fill-timeout', type=float, default=None,
                    help='seconds the first boot may take to fill the guest RAM '
                    '(default 30, quick 15)')
    ap.add_argument('--reaper', action='store_true',
                    help='run the parent of the QEMUs (snapfs with the embedded '
                    'driver, libvirtd with the system one) under a child '
                    'subreaper that reaps them at once (what a host whose init '
                    'reaps promptly does)')
    a = parse_args(ap)
    quick_or_full(a, samples=(2, 8), fill_timeout=(15, 30))
    if a.types:
        types = a.types.split(',')
    else:
        types = ['kvm', 'qemu'] if kvm_usable() else ['qemu']
    if any(t not in ('kvm', 'qemu') for t in types) or len(set(types)) != len(types):
        sys.exit("vmbench: --types takes kvm and/or qemu, once each")
    if 'kvm' in types and not kvm_usable():
        sys.exit('vmbench: /dev/kvm does not open read-write')
    modes = ['embedded', 'system'] if a.libvirt == 'both' else [a.libvirt]
    both = len(modes) > 1

    try:
        progs = ('qemu-img', 'qemu-io', 'fusermount3', 'qemu-system-x86_64')
        if 'system' in modes:
            progs += ('libvirtd', 'virtlogd', 'virsh', 'unshare')
            if not os.path.exists(SYSTEM_LIBVIRTD_SH):
                raise Refused('vmbench: %s is missing' % SYSTEM_LIBVIRTD_SH)
        binary, work, own_work = setup(
            'vmbench', a, progs,
            'FUSE, libvirt embedded as root' if modes == ['embedded'] else
            'FUSE, a system libvirtd', prefix='sfb-')
        # QEMU's monitor socket: SOURCE/libvirt/lib/qemu/domain-NNN-<vm>/monitor.sock
        # (embedded; the system libvirtd's sockets are under /var/lib/libvirt
        # in its own namespace); the system libvirtd's client socket:
        # WORK/libvirtd/sock/libvirt-sock
        sock = os.path.join(work, 'embedded' if both else '',
                            'source/libvirt/lib/qemu/domain-999-tcg256/monitor.sock')
        if len(sock) > 100:
            raise Refused('vmbench: %s is too long a path for unix sockets under it'
                          % work)
        need = len(types) * (2 * GiB) + GiB
        if shutil.disk_usage(work).free < need:
            raise Refused('vmbench: %s has less than %d MiB free' % (work, need // MiB))
        mworks = [prepare_mode(m, work, both) for m in modes]
    except Refused as e:
        sys.exit(str(e))
    end_on_signals()

    mount = {'embedded': '-f -o workers=1,retries=0, libvirt embedded (qemu:///embed)%s'
             % (', under a child subreaper (--reaper)' if a.reaper else ''),
             'system': '-f -o workers=1,retries=0,libvirt=qemu:///system?socket='
             'WORK/libvirtd/sock/libvirt-sock: a private system libvirtd, QEMU '
             'as %s%s' % (QEMU_USER, ', libvirtd under a child subreaper (--reaper)'
                          if a.reaper else '')}
    tools = [('qemu', version('qemu-system-x86_64')),
             ('kvm_modules', ','.join(sorted(
                 os.path.basename(m) for m in glob.glob('/sys/module/kvm*'))))]
    if 'system' in modes:
        tools.append(('libvirt', version('libvirtd')))
    info = start_report(
        'snapfs VM benchmarks', a, work, binary, tools,
        dict(samples=a.samples, types=types, reaper=a.reaper,
             fill_timeout=a.fill_timeout, libvirt=a.libvirt),
        [('work dir', work)] + [('mount' if not both else 'mount (%s)' % m, mount[m])
                                for m in modes],
        width=11)
    gone, zombie = reap_probe()
    info['orphan_reap_s'] = gone
    log('  an orphan (as libvirt\'s QEMUs are) killed with SIGTERM is a zombie '
        'after %s and gone (reaped by init) after %s'
        % (fmt_ms(median(zombie)), spread(gone, fmt_ms)))
    log()

    vms = [('kvm256' if t == 'kvm' else 'tcg256', t) for t in types]
    results = dict(machine=info, rows=[], vms={})
    t_start = time.perf_counter()
    failed = []
    for mode, mwork in zip(modes, mworks):
        try:
            run_mode(mode, mwork, binary, vms, a, results)
        except FAILURES as e:
            failed.append(e)
            log('vmbench: the %s run failed: %s: %s' % (mode, type(e).__name__, e))
            log()
        except KeyboardInterrupt as e:
            failed.append(e)
            break
    remove_work(a, work, own_work)
    return finish('vmbench', a, results, t_start, failed,
                  'medians (min..max), ratio of medians', ratio_head='ratio')

if __name__ == '__main__':
    sys.exit(main())
