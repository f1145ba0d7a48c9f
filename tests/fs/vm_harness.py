"""vm_harness - real VMs under snapfs's embedded libvirt, for the VM mount tests.

Builds on snapfs_harness.Snapfs (read its docstring first).  What this adds:

- VmSnapfs: a state directory with a short path (QMP unix socket paths must
  stay under 108 bytes) and domain XML files in SOURCE/domains/, which
  snapfs defines at every mount (the documented way for the embedded
  driver).  The daemon is never given `libvirt=none`.
- Test VMs need no guest OS: 256 MiB, 1 vcpu, machine 'pc', type 'kvm' when
  /dev/kvm opens read-write (else 'qemu'), one virtio qcow2 disk per volume,
  whose source is exactly PRIMARY/<vol>.qcow2, plus a second QMP monitor on
  ROOT/q-<vm>.sock (libvirt's qemu:commandline namespace).
- Data goes into the disks THROUGH QEMU while the VM runs: HMP `qemu-io` on
  the disk's virtio backend, over that QMP socket (a fresh connection per
  command: a revert or a memory snapshot restarts QEMU).  While the VM is
  stopped, the volume files are read with qemu-io/qemu-img -U.
- Cleanup always force-stops the test's VMs (control file while mounted),
  then the base cleanup, then SIGKILLs any qemu-system process whose
  command line names the state directory, and waits for it to be gone
  before the tree is removed: VMs started by the embedded driver outlive
  snapfs.
- The `vmenv` fixture (import it into a test module): like `env`, with a
  longer watchdog.

Only the Python 3.11 standard library is used here.
"""

import contextlib
import errno
import json
import os
import re
import signal
import socket
import time
import uuid as uuidlib

import pytest

import snapfs_harness
from snapfs_harness import (MiB, Snapfs, parse_size, processes_mentioning,
                            qemu_img_compare, qemu_io_write, run)

VM_WATCHDOG_SECONDS = int(os.environ.get('SNAPFS_VM_TEST_WATCHDOG', '420'))
QEMU = '/usr/bin/qemu-system-x86_64'
VM_WAIT = 60          # seconds for a VM state change
QMP_TIMEOUT = 60


def kvm_usable():
    try:
        fd = os.open('/dev/kvm', os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def domain_type():
    return 'kvm' if kvm_usable() else 'qemu'


def vm_missing_prerequisites():
    reasons = snapfs_harness.missing_prerequisites()
    if not os.access(QEMU, os.X_OK):
        reasons.append(QEMU + ' missing')
    try:
        import pwd
        pwd.getpwnam('libvirt-qemu')
    except KeyError:
        pass  # snapfs creates it when it runs as root
    return reasons


class QmpError(AssertionError):
    pass


class Qmp:
    """One connection to a QEMU QMP socket (line-delimited JSON)."""

    def __init__(self, path, timeout=QMP_TIMEOUT):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b''
        greeting = self._read()
        assert 'QMP' in greeting, greeting
        self.execute('qmp_capabilities')

    def _read(self):
        """The next message that is not an event."""
        while True:
            while b'\n' not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise QmpError('QMP connection closed')
                self.buf += chunk
            line, self.buf = self.buf.split(b'\n', 1)
            if not line.strip():
                continue
            msg = json.loads(line)
            if 'event' in msg:
                continue
            return msg

    def execute(self, cmd, **arguments):
        req = {'execute': cmd}
        if arguments:
            req['arguments'] = arguments
        self.sock.sendall(json.dumps(req).encode() + b'\n')
        reply = self._read()
        if 'error' in reply:
            raise QmpError('QMP %s failed: %s' % (cmd, reply['error']))
        return reply.get('return')

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


class VmSnapfs(Snapfs):
    """A Snapfs whose SOURCE also defines VMs (SOURCE/domains/<vm>.xml)."""

    def __init__(self, name='t', bin=None):
        super().__init__(re.sub(r'^test_', '', name)[:24], bin)
        self.domains = os.path.join(self.source, 'domains')
        os.makedirs(self.domains, exist_ok=True)
        self.vms = {}    # vm -> {'uuid', 'volumes', 'memory_mib', 'vcpus'}

    # -- defining VMs -------------------------------------------------------------

    def qmp_path(self, vm):
        return os.path.join(self.root, 'q-%s.sock' % vm)

    def domain_xml(self, vm, volumes, memory_mib=256, vcpus=1, uuid=None):
        disks = []
        for i, vol in enumerate(volumes):
            disks.append(
                "    <disk type='file' device='disk'>\n"
                "      <driver name='qemu' type='qcow2'/>\n"
                "      <source file='%s'/>\n"
                "      <target dev='vd%s' bus='virtio'/>\n"
                "    </disk>\n" % (self.volume_path(vol), chr(ord('a') + i)))
        return (
            "<domain type='%s' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
            "  <name>%s</name>\n"
            "  <uuid>%s</uuid>\n"
            "  <memory unit='MiB'>%d</memory>\n"
            "  <currentMemory unit='MiB'>%d</currentMemory>\n"
            "  <vcpu>%d</vcpu>\n"
            "  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n"
            "  <features><acpi/></features>\n"
            "  <on_poweroff>destroy</on_poweroff>\n"
            "  <devices>\n"
            "    <emulator>%s</emulator>\n"
            "%s"
            "  </devices>\n"
            "  <qemu:commandline>\n"
            "    <qemu:arg value='-qmp'/>\n"
            "    <qemu:arg value='unix:%s,server=on,wait=off'/>\n"
            "  </qemu:commandline>\n"
            "</domain>\n" % (domain_type(), vm, uuid, memory_mib, memory_mib,
                             vcpus, QEMU, ''.join(disks), self.qmp_path(vm)))

    def define_vm(self, vm, volumes, memory_mib=256, vcpus=1):
        """Write SOURCE/domains/@vm.xml (defined by snapfs at the next
        mount).  Calling it again for the same VM keeps its UUID: that is a
        redefinition of the same domain."""
        uuid = self.vms.get(vm, {}).get('uuid') or str(uuidlib.uuid4())
        self.vms[vm] = {'uuid': uuid, 'volumes': list(volumes),
                        'memory_mib': memory_mib, 'vcpus': vcpus}
        path = os.path.join(self.domains, vm + '.xml')
        with open(path, 'w') as f:
            f.write(self.domain_xml(vm, volumes, memory_mib, vcpus, uuid))
        return path

    def make_vm(self, vm, volumes, size='64M', writes=None, **kw):
        """Create each volume (qcow2 of @size; @writes: {vol: [(pattern,
        offset, length)]} written before mounting) and define the VM."""
        for vol in volumes:
            self.make_volume(vol, size, (writes or {}).get(vol, ()))
        return self.define_vm(vm, volumes, **kw)

    # -- the tree under vms/ --------------------------------------------------------

    def vm_dir(self, vm, *rest):
        return self.p('vms', vm, *rest)

    def vm_snap_dir(self, vm, snap, *rest):
        return self.p('vms', vm, 'snapshots', snap, *rest)

    def vm_info(self, vm):
        return self.read_json('vms', vm, 'info')

    def vm_state(self, vm):
        return self.read('vms', vm, 'state').strip()

    def vm_control(self, vm, command):
        """One write(2) of @command to vms/@vm/control (raises OSError)."""
        self.write_file(self.vm_dir(vm, 'control'), command + '\n')

    def vm_control_errno(self, vm, command):
        """The errno the write fails with, or 0."""
        try:
            self.vm_control(vm, command)
        except OSError as e:
            return e.errno
        return 0

    def vm_set_options(self, vm, memory=False, quiesce=False):
        self.write_file(self.vm_dir(vm, 'snapshot-options'),
                        'memory=%s quiesce=%s\n' % ('yes' if memory else 'no',
                                                    'yes' if quiesce else 'no'))

    def vm_take(self, vm, snap, memory=None):
        """mkdir vms/@vm/snapshots/@snap (after setting memory=yes|no when
        @memory is given); returns the seconds the mkdir took."""
        if memory is not None:
            self.vm_set_options(vm, memory=memory)
        t0 = time.monotonic()
        os.mkdir(self.vm_snap_dir(vm, snap))
        return time.monotonic() - t0

    def vm_take_errno(self, vm, snap, memory=None):
        try:
            self.vm_take(vm, snap, memory)
        except OSError as e:
            return e.errno
        return 0

    def vm_delete(self, vm, snap):
        os.rmdir(self.vm_snap_dir(vm, snap))

    def vm_revert(self, vm, snap):
        """revert @snap through the control file; returns the seconds it took."""
        t0 = time.monotonic()
        self.vm_control(vm, 'revert ' + snap)
        return time.monotonic() - t0

    def vm_snapshots(self, vm):
        """Snapshot directory names (without `current`)."""
        return [n for n in self.listdir('vms', vm, 'snapshots') if n != 'current']

    def vm_snap_info(self, vm, snap):
        return self.read_json('vms', vm, 'snapshots', snap, 'info')

    def vm_current(self, vm):
        """Target of snapshots/current, or None when there is no such link."""
        try:
            return os.readlink(self.vm_dir(vm, 'snapshots', 'current'))
        except FileNotFoundError:
            return None

    def vm_parent_link(self, vm, snap):
        try:
            return os.readlink(self.vm_snap_dir(vm, snap, 'parent'))
        except FileNotFoundError:
            return None

    def wait_vm_state(self, vm, wanted, timeout=VM_WAIT):
        seen = []

        def check():
            st = self.vm_state(vm)
            if not seen or seen[-1] != st:
                seen.append(st)
            return st == wanted
        self.wait_for(check, 'VM %s to be %s (seen: %s)' % (vm, wanted, seen), timeout)

    def vm_start(self, vm):
        self.vm_control(vm, 'start')
        self.wait_vm_state(vm, 'running')

    def vm_force_stop(self, vm):
        self.vm_control(vm, 'force-stop')
        self.wait_vm_state(vm, 'stopped')

    # -- data through QEMU ------------------------------------------------------------

    def qmp(self, vm, timeout=QMP_TIMEOUT):
        """A new QMP connection to the running VM's extra monitor (waits for
        the socket: QEMU creates it as it starts)."""
        path = self.qmp_path(vm)
        deadline = time.monotonic() + 20
        while True:
            try:
                return Qmp(path, timeout)
            except (FileNotFoundError, ConnectionRefusedError) as e:
                if time.monotonic() > deadline:
                    raise AssertionError('cannot connect to %s: %s\n%s'
                                         % (path, e, self.diagnostics()))
                time.sleep(0.05)

    def hmp(self, vm, command_line):
        q = self.qmp(vm)
        try:
            return q.execute('human-monitor-command', **{'command-line': command_line})
        finally:
            q.close()

    def qemu_io(self, vm, disk, command):
        """Run one qemu-io @command on disk number @disk (0: vda) of the
        running VM, through its monitor; returns the monitor's text."""
        dev = '/machine/peripheral/virtio-disk%d/virtio-backend' % disk
        return self.hmp(vm, 'qemu-io -d %s "%s"' % (dev, command))

    def guest_write(self, vm, disk, pattern, offset, length):
        """Write @pattern over [offset, offset+length) of disk @disk, through QEMU."""
        offset, length = parse_size(offset), parse_size(length)
        while length > 0:
            chunk = min(length, 64 * MiB)
            out = self.qemu_io(vm, disk, 'write -P 0x%02x %d %d' % (pattern, offset, chunk))
            assert out == '', 'qemu-io write on %s disk %d: %r' % (vm, disk, out)
            offset += chunk
            length -= chunk
        # a flush as a guest's sync would do: the data reaches the image file
        out = self.qemu_io(vm, disk, 'flush')
        assert out == '', 'qemu-io flush on %s disk %d: %r' % (vm, disk, out)

    def qemu_log(self, vm):
        """QEMU's stdout/stderr: the embedded driver writes them to
        SOURCE/libvirt/log/qemu/<vm>.log (snapfs's qemu.conf: stdio_handler=file)."""
        return os.path.join(self.source, 'libvirt', 'log', 'qemu', vm + '.log')

    def guest_reads(self, vm, disk, pattern, offset, length):
        """True when disk @disk of the running VM reads @pattern there.

        qemu-io run through the monitor prints its report on QEMU's stdout,
        not into the monitor's reply: the verdict is read from the VM's log
        ("Pattern verification failed ..." before "read N/N bytes at offset O")."""
        offset, length = parse_size(offset), parse_size(length)
        log = self.qemu_log(vm)
        start = os.path.getsize(log)
        out = self.qemu_io(vm, disk, 'read -P 0x%02x %d %d' % (pattern, offset, length))
        assert out == '', 'qemu-io read on %s disk %d: %r' % (vm, disk, out)
        done = 'read %d/%d bytes at offset %d\n' % (length, length, offset)
        deadline = time.monotonic() + 10
        while True:
            with open(log, 'rb') as f:
                f.seek(start)
                text = f.read().decode(errors='replace')
            if done in text:
                break
            assert time.monotonic() < deadline, \
                'no qemu-io report in %s after a read on %s disk %d: %r' % (log, vm, disk, text)
            time.sleep(0.02)
        report = text[:text.index(done)]
        return 'Pattern verification failed' not in report

    def file_reads(self, vol, pattern, offset, length):
        """True when the volume file (VM stopped) reads @pattern there."""
        offset, length = parse_size(offset), parse_size(length)
        proc = run(['qemu-io', '-r', '-U', '-f', 'qcow2', '-c',
                    'read -P 0x%02x %d %d' % (pattern, offset, length),
                    self.volume_path(vol)], check=False, timeout=300)
        out = proc.stdout + proc.stderr
        if 'verification failed' in out:
            return False
        assert proc.returncode == 0 and 'read %d/%d bytes' % (length, length) in out, \
            'qemu-io read of %s: %s' % (vol, out)
        return True

    def reads(self, vm, vol, pattern, offset, length):
        """@pattern there?  Through QEMU while @vm runs, from the file when stopped."""
        volumes = self.vms[vm]['volumes']
        if self.vm_state(vm) == 'running':
            return self.guest_reads(vm, volumes.index(vol), pattern, offset, length)
        return self.file_reads(vol, pattern, offset, length)

    def volume_equals(self, vol, reference):
        """The stopped VM's volume holds exactly the data of @reference."""
        return qemu_img_compare(reference, self.volume_path(vol), force_share=True) == 0

    # -- the catalog, read-only --------------------------------------------------------

    def catalog_rows(self, sql):
        import sqlite3
        db = sqlite3.connect('file:%s?mode=ro' % os.path.join(self.source, 'catalog.db'),
                             uri=True, timeout=10)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    # -- processes ---------------------------------------------------------------------

    def qemu_processes(self):
        """[(pid, cmdline)] of qemu-system processes of this state directory."""
        return [(pid, cmd) for pid, cmd in processes_mentioning(self.root)
                if 'qemu-system' in cmd]

    def vm_pid(self, vm):
        """The pid of @vm's QEMU (by its QMP socket path), or None."""
        for pid, cmd in self.qemu_processes():
            if self.qmp_path(vm) in cmd:
                return pid
        return None

    def kill_vm_processes(self, wait=10):
        found = self.qemu_processes()
        for pid, _ in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + wait
        while self.qemu_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def leftover_non_vm_processes(self):
        """Leftovers of a killed daemon other than the VMs (which outlive it)."""
        return [(pid, cmd) for pid, cmd in self.leftover_processes()
                if 'qemu-system' not in cmd]

    def force_stop_all(self):
        """force-stop every VM of the test through the mount (best effort)."""
        if not self.alive():
            return
        for vm in self.vms:
            with contextlib.suppress(Exception):
                if os.path.isdir(self.vm_dir(vm)):
                    self.vm_control(vm, 'force-stop')

    def cleanup(self):
        try:
            self.force_stop_all()
        except Exception as e:  # keep cleaning up
            self.problems.append('force-stop at cleanup failed: %r' % e)
        # kill the VMs before the base cleanup removes the tree under them
        self.kill_vm_processes()
        super().cleanup()
        left = self.kill_vm_processes()
        if left:
            self.problems.append('qemu-system still ran after cleanup: %s' % left)


# ---- what the disks should hold ----------------------------------------------------

class DiskData:
    """Writes made into a VM's disks and what each disk should hold now.

    Write number n puts pattern 0x11+0x40*i+n on disk number i
    over [n MiB, n+1 MiB): regions never overlap, so a write that is not
    there reads as zeros.  mark(name) remembers the current content (at a
    snapshot), restore(name) goes back to it (after a revert)."""

    def __init__(self, env, vm, size='64M', initial=None, bases=None):
        """@initial: {vol: [(pattern, offset, length)]} the volumes held
        before (written with env.make_vm(writes=...)); keep it above 64 MiB.
        @bases: {vol: a qcow2 copy of the volume with just that}, if made."""
        self.env, self.vm, self.size = env, vm, size
        self.volumes = env.vms[vm]['volumes']
        self.n = 0
        self.initial = {vol: tuple((p, parse_size(o), parse_size(n))
                                   for p, o, n in (initial or {}).get(vol, ()))
                        for vol in self.volumes}
        self.current = dict(self.initial)
        self.everything = dict(self.current)
        self.bases = dict(bases or {})
        self.saved = {}
        self.refs = {}

    def write(self, volumes=None):
        """One new write on each disk (or on @volumes), through QEMU."""
        n = self.n
        self.n += 1
        assert n < min(64, parse_size(self.size) // MiB)
        for i, vol in enumerate(self.volumes):
            if volumes is not None and vol not in volumes:
                continue
            w = ((0x11 + 0x40 * i + n) & 0xff, n * MiB, MiB)
            self.env.guest_write(self.vm, i, *w)
            self.current[vol] += (w,)
            self.everything[vol] += (w,)
        return n

    def mark(self, name):
        self.saved[name] = dict(self.current)

    def restore(self, name):
        self.current = dict(self.saved[name])

    def reference(self, vol, writes):
        """A qcow2 in scratch/ holding @writes: an overlay (over one base
        image of the initial writes) when the volume started with data."""
        key = (vol, writes)
        if key in self.refs:
            return self.refs[key]
        base_writes = self.initial.get(vol, ())
        if base_writes and writes[:len(base_writes)] == base_writes:
            base = self.bases.get(vol)
            if base is None:
                base = self.bases[vol] = self.env.make_reference(self.size, list(base_writes))
            self.env.refs += 1
            path = os.path.join(self.env.scratch, 'ref%d.qcow2' % self.env.refs)
            run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, path])
            qemu_io_write(path, list(writes[len(base_writes):]))
        else:
            path = self.env.make_reference(self.size, list(writes))
        self.refs[key] = path
        return path

    def ref_of(self, name, vol):
        """A qcow2 with what @vol held at mark(@name)."""
        return self.reference(vol, self.saved[name][vol])

    def problems(self, expected=None):
        """What differs from @expected (default: the current content):
        through QEMU when the VM runs (each region), exactly (qemu-img
        compare of the volume file with a reference) when it is stopped."""
        expected = self.current if expected is None else expected
        env, found = self.env, []
        state = env.vm_state(self.vm)
        for i, vol in enumerate(self.volumes):
            if state == 'running':
                for w in self.everything[vol]:
                    want = w if w in expected[vol] else (0, w[1], w[2])
                    if not env.guest_reads(self.vm, i, *want):
                        found.append('%s (via QEMU): region %d MiB does not read 0x%02x%s'
                                     % (vol, w[1] // MiB, want[0],
                                        '' if want is w else ' (write 0x%02x should be gone)' % w[0]))
            elif state == 'stopped':
                if not env.volume_equals(vol, self.reference(vol, expected[vol])):
                    have = [('0x%02x@%dM' % (w[0], w[1] // MiB))
                            for w in self.everything[vol]
                            if env.file_reads(vol, *w)]
                    found.append('%s (file): should hold %s, holds %s' % (
                        vol, ['0x%02x@%dM' % (w[0], w[1] // MiB) for w in expected[vol]], have))
            else:
                found.append('VM %s is %s: cannot check its disks' % (self.vm, state))
        return found

    def image_problems(self, path, name, vol):
        """Region by region (one qemu-io run), what image @path (a backup)
        holds that differs from @vol at mark(@name): each write of the
        test must read its pattern there or, when it came later, zeros
        (the initial writes are not read)."""
        expected = self.saved[name][vol]
        argv = ['qemu-io', '-r', '-U', '-f', 'qcow2']
        checks = []
        for w in self.everything[vol]:
            if w in self.initial[vol]:
                continue    # the same in every snapshot (and large)
            want = w if w in expected else (0, w[1], w[2])
            checks.append(want)
            argv += ['-c', 'read -P 0x%02x %d %d' % want]
        out = run(argv + [path], timeout=300, check=False)
        text = out.stdout + out.stderr
        if out.returncode != 0:
            return ['qemu-io on %s failed: %s' % (path, text[-500:])]
        # one report per command, in order; a mismatch line comes before it
        found, pieces = [], re.split(r'(read \d+/\d+ bytes at offset \d+)', text)
        reports = [pieces[i] for i in range(0, len(pieces) - 1, 2)]
        if len(reports) != len(checks):
            return ['qemu-io on %s: %d reports for %d reads: %s' % (
                path, len(reports), len(checks), text[-500:])]
        for want, before in zip(checks, reports):
            if 'Pattern verification failed' in before:
                found.append('%s: region %d MiB does not read 0x%02x'
                             % (os.path.basename(path), want[1] // MiB, want[0]))
        return found

    def check(self, name=None, what=''):
        """Assert the disks hold what they held at mark(@name) (default: now)."""
        found = self.problems(self.saved[name] if name else None)
        assert not found, '%s: %s' % (what or ('data of ' + (name or 'now')), '; '.join(found))


# ---- checks ----------------------------------------------------------------------------

def rejected(events, op, path, err):
    """The `rejected` events for @op on @path (a relative tree path) with errno @err."""
    # by value: Python names 95 ENOTSUP, snapfs writes EOPNOTSUPP
    return [ev for ev in events if ev.get('type') == 'rejected' and ev.get('op') == op
            and ev.get('path', '').lstrip('/') == path
            and getattr(errno, str(ev.get('errno')), None) == err]


def vm_events(events, type_, vm=None, snap=None):
    out = []
    for ev in events:
        if ev.get('type') != type_:
            continue
        if vm is not None and ev.get('vm') != vm:
            continue
        if snap is not None and ev.get('snapshot') != snap:
            continue
        out.append(ev)
    return out


# ---- the fixture ------------------------------------------------------------------------

@pytest.fixture
def vmenv(request):
    """A fresh VM state directory, nothing mounted: env.make_vm(...), env.mount(...)."""
    missing = vm_missing_prerequisites()
    if missing:
        pytest.skip('VM tests cannot run: ' + ', '.join(missing))
    e = VmSnapfs(request.node.name)
    request.node._snapfs_env = e
    e.start_watchdog(VM_WATCHDOG_SECONDS)
    try:
        yield e
        if e.proc is not None and e.proc.poll() is not None:
            e.problems.append('snapfs died during the test (status %s)' % e.proc.returncode)
            e.proc = None
    finally:
        e.cleanup()
    failed = any(getattr(request.node, 'rep_' + w, None) is not None
                 and getattr(request.node, 'rep_' + w).failed
                 for w in ('setup', 'call'))
    if e.problems and not failed:
        pytest.fail('\n'.join(e.problems), pytrace=False)
    elif e.problems:
        print('\n'.join(e.problems))
