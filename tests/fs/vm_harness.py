"""vm_harness - real VMs under snapfs, for the VM mount tests.

Builds on snapfs_harness.Snapfs (read its docstring first).  What this adds:

- Two libvirt drivers, chosen per test (VmSnapfs(driver=...), the
  `vm_driver` parameter of the `vmenv` fixture, test ids `test_x[system]`,
  `test_x[embedded]`):
  - 'system' (the default): a real system libvirtd and virtlogd, private
    to this pytest process (SystemLibvirtd, tools/system-libvirtd.sh): QEMU
    runs as the unprivileged libvirt-qemu user with dynamic ownership on,
    as on a Debian KVM host.  It is started by the first test that needs it,
    in a temporary directory, and stopped (its domains destroyed and
    undefined, the directory removed) at the end of the session, also when
    tests fail or the session is interrupted (conftest.py's
    pytest_sessionfinish, atexit, SIGTERM/SIGHUP as KeyboardInterrupt).
    Domains are defined with `virsh define`; snapfs is mounted with
    `-o libvirt=URI`.  The state directory is made traversable (0711) for
    libvirt-qemu, and the extra QMP sockets live in ROOT/qmp/, owned by it.
  - 'embedded': libvirt's QEMU driver inside snapfs (QEMU as root, no
    relabelling); domain XML files in SOURCE/domains/, which snapfs defines
    at every mount (the documented way for the embedded driver).
  Which tests run against which driver: conftest.py (pytest_generate_tests)
  and drivers_for() below; SNAPFS_VM_DRIVER=system|embedded|both overrides
  the default choice.  The daemon is never given `libvirt=none`.
- State directories with a short path (QMP unix socket paths must stay
  under 108 bytes).
- Test VMs need no guest OS: 256 MiB, 1 vcpu, machine 'pc', type 'kvm' when
  /dev/kvm opens read-write (else 'qemu'), one virtio qcow2 disk per volume,
  whose source is exactly PRIMARY/<vol>.qcow2, plus a second QMP monitor on
  qmp_path(vm) (libvirt's qemu:commandline namespace).
- Data goes into the disks THROUGH QEMU while the VM runs: HMP `qemu-io` on
  the disk's virtio backend, over that QMP socket (a fresh connection per
  command: a revert or a memory snapshot restarts QEMU).  While the VM is
  stopped, the volume files are read with qemu-io/qemu-img -U.
- Cleanup always force-stops the test's VMs (control file while mounted);
  with the system driver it then unmounts and destroys and undefines every
  domain the test defined (virsh); then the base cleanup, then it SIGKILLs
  any qemu-system process whose command line names the state directory,
  and waits for it to be gone before the tree is removed: VMs outlive
  snapfs.
- The `vmenv` fixture (import it into a test module): like `env`, with a
  longer watchdog, for the test's driver.

Only the Python 3.11 standard library is used here.
"""

import atexit
import contextlib
import errno
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid as uuidlib

import pytest

import snapfs_harness
from snapfs_harness import (MiB, SessionDaemon, Snapfs, interrupt_on_termination,
                            parse_size, pid_alive, processes_mentioning, read_pid, qemu_img_compare,
                            qemu_io_write, run)

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


def _which(prog):
    return shutil.which(prog, path=os.environ.get('PATH', '') + ':/usr/sbin:/sbin')


def vm_missing_prerequisites(driver='embedded'):
    """Reasons VMs cannot run here with @driver (empty list: they can)."""
    reasons = snapfs_harness.missing_prerequisites()
    if not os.access(QEMU, os.X_OK):
        reasons.append(QEMU + ' missing')
    if driver == 'system':
        for prog in ('libvirtd', 'virtlogd', 'virsh', 'unshare'):
            if _which(prog) is None:
                reasons.append(prog + ' missing')
        if not os.path.isfile(SYSTEM_LIBVIRTD_SH):
            reasons.append(SYSTEM_LIBVIRTD_SH + ' missing')
    # (no libvirt-qemu user: snapfs, or tools/system-libvirtd.sh, creates it)
    return reasons


# ---- which driver a test runs against ------------------------------------------------

VM_DRIVERS = ('system', 'embedded')
DEFAULT_DRIVER = 'system'


def requested_drivers():
    """The drivers SNAPFS_VM_DRIVER asks for (system, embedded or both), or
    None when it is not set (each test's default then)."""
    value = os.environ.get('SNAPFS_VM_DRIVER', '').strip()
    if not value:
        return None
    if value == 'both':
        return VM_DRIVERS
    if value in VM_DRIVERS:
        return (value,)
    raise ValueError('SNAPFS_VM_DRIVER=%s: expected system, embedded or both' % value)


def drivers_for(node):
    """[(driver, skip reason or None)] the test @node (an item or pytest's
    FunctionDefinition) runs against.

    - unmarked: the system libvirtd;
    - @pytest.mark.both_vm_drivers: the system libvirtd and the embedded
      driver (the representative set that keeps the embedded driver tested);
    - @pytest.mark.vm_driver_only('embedded'|'system'): a test that means
      something with one driver only.
    SNAPFS_VM_DRIVER=system|embedded|both replaces the default choice for
    every test (within what it supports); a test that supports none of the
    drivers asked for is reported as skipped."""
    only = node.get_closest_marker('vm_driver_only')
    supported = tuple(d for d in VM_DRIVERS if only is None or d in only.args)
    assert supported, 'vm_driver_only%s names no driver of %s' % (only.args, VM_DRIVERS)
    if node.get_closest_marker('both_vm_drivers'):
        default = supported
    else:
        default = (DEFAULT_DRIVER,) if DEFAULT_DRIVER in supported else supported[:1]
    wanted = requested_drivers()
    if wanted is None:
        return [(d, None) for d in default]
    chosen = [d for d in supported if d in wanted]
    if chosen:
        return [(d, None) for d in chosen]
    return [(d, 'SNAPFS_VM_DRIVER=%s; this test runs against the %s driver only'
             % (os.environ.get('SNAPFS_VM_DRIVER'), d)) for d in supported]


# ---- a private system libvirtd --------------------------------------------------------

SYSTEM_LIBVIRTD_SH = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tools', 'system-libvirtd.sh'))
QEMU_USER = 'libvirt-qemu'
LIBVIRTD_PREFIX = 'snapfs-libvirtd-'


class SystemLibvirtd:
    """A private system libvirtd and virtlogd (tools/system-libvirtd.sh) in
    a temporary directory DIR, as the Debian packages run them: QEMU as
    libvirt-qemu, dynamic ownership on.  Nothing of the host's libvirt is
    touched.

    start() prints nothing and sets .uri; stop() stops both daemons and
    leaves the domains defined and their QEMUs running (a libvirtd restart:
    start() again, same DIR, same URI); close() destroys and undefines
    every domain, stops the daemons, kills what QEMU is left (by libvirt's
    pid files) and removes DIR.  DIR/owner holds the pid of the pytest
    process, so that a later session can clean up after one killed
    outright (reap_stale_libvirtds())."""

    def __init__(self):
        base = '/var/tmp' if os.path.isdir('/var/tmp') else None
        self.dir = tempfile.mkdtemp(prefix=LIBVIRTD_PREFIX, dir=base)
        with open(os.path.join(self.dir, 'owner'), 'w') as f:
            f.write('%d\n' % os.getpid())
        self.uri = 'qemu:///system?socket=%s' % os.path.join(self.dir, 'sock', 'libvirt-sock')

    # -- the daemons ---------------------------------------------------------------

    def start(self):
        out = run(['bash', SYSTEM_LIBVIRTD_SH, 'start', self.dir], timeout=120, check=False)
        if out.returncode != 0:
            raise AssertionError('tools/system-libvirtd.sh start %s exited %d: %s%s\n%s' % (
                self.dir, out.returncode, out.stdout, out.stderr, self.log_tail()))
        uri = out.stdout.strip().splitlines()[-1]
        assert uri == self.uri, 'system-libvirtd.sh printed %r, expected %r' % (uri, self.uri)

    def stop(self):
        """Stop libvirtd and virtlogd (the VMs keep running)."""
        out = run(['bash', SYSTEM_LIBVIRTD_SH, 'stop', self.dir], timeout=120, check=False)
        if out.returncode != 0:
            raise AssertionError('tools/system-libvirtd.sh stop %s exited %d: %s%s' % (
                self.dir, out.returncode, out.stdout, out.stderr))

    def pid(self, name='libvirtd'):
        """The pid of the running @name (libvirtd or virtlogd), or None."""
        pid = read_pid(os.path.join(self.dir, name + '.pid'))
        if pid <= 0 or not pid_alive(pid):
            return None
        try:
            with open('/proc/%d/comm' % pid) as f:
                if f.read().strip() != name:
                    return None
        except OSError:
            return None
        return pid

    def alive(self):
        return self.pid('libvirtd') is not None and self.pid('virtlogd') is not None

    def close(self):
        """Destroy and undefine every domain, stop the daemons, kill any
        QEMU left, remove DIR.  Best effort, never raises."""
        if not os.path.isdir(self.dir):
            return
        if self.alive():
            with contextlib.suppress(Exception):
                self.sweep()
        with contextlib.suppress(Exception):
            self.stop()
        self.kill_qemus()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- virsh ------------------------------------------------------------------------

    def virsh(self, *args, check=True, timeout=60):
        return run(['virsh', '-q', '-c', self.uri] + list(args), timeout=timeout, check=check)

    def domain_uuids(self):
        out = self.virsh('list', '--all', '--uuid')
        return [u.strip() for u in out.stdout.splitlines() if u.strip()]

    def domain_uuid(self, name):
        """The UUID of the domain named @name, or None."""
        out = self.virsh('domuuid', name, check=False)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None

    def domain_state(self, dom):
        return self.virsh('domstate', dom).stdout.strip()

    def remove_domain(self, dom):
        """virsh destroy (when it runs) and undefine of @dom (name or UUID);
        returns what failed, as text ('' when it is gone)."""
        out = self.virsh('domstate', dom, check=False)
        if out.returncode != 0:
            return ''     # no such domain
        if out.stdout.strip() not in ('shut off', 'crashed'):
            d = self.virsh('destroy', dom, check=False)
            if d.returncode != 0:
                return 'virsh destroy %s: %s' % (dom, d.stderr.strip())
        u = self.virsh('undefine', '--managed-save', '--snapshots-metadata',
                       '--checkpoints-metadata', dom, check=False)
        if u.returncode != 0 and self.virsh('domstate', dom, check=False).returncode == 0:
            return 'virsh undefine %s: %s' % (dom, u.stderr.strip())
        return ''

    def sweep(self):
        """Destroy and undefine every domain (leftovers of earlier tests)."""
        problems = [p for p in (self.remove_domain(u) for u in self.domain_uuids()) if p]
        left = self.domain_uuids()
        assert not left, 'domains left in %s: %s (%s)' % (self.uri, left, problems)

    # -- QEMU processes and logs -----------------------------------------------------------

    def qemu_pids(self):
        """Pids of the QEMUs this libvirtd started (libvirt's pid files)."""
        pids = []
        for path in glob.glob(os.path.join(self.dir, 'run', 'qemu', '*.pid')):
            pid = read_pid(path)
            try:
                with open('/proc/%d/cmdline' % pid, 'rb') as f:
                    if b'qemu-system' in f.read():
                        pids.append(pid)
            except OSError:
                pass
        return pids

    def kill_qemus(self, wait=10):
        pids = self.qemu_pids()
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + wait
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        return pids

    def qemu_log(self, vm):
        """QEMU's stdout/stderr, through virtlogd."""
        return os.path.join(self.dir, 'log', 'qemu', vm + '.log')

    def log_tail(self, lines=40):
        parts = []
        for name in ('libvirtd.log', 'virtlogd.log'):
            try:
                with open(os.path.join(self.dir, name), errors='replace') as f:
                    text = f.read().splitlines()
            except OSError:
                continue
            if text:
                parts.append('---- %s/%s (last %d lines) ----' % (self.dir, name, lines))
                parts += text[-lines:]
        return '\n'.join(parts)


def reap_stale_libvirtds():
    """Close the private libvirtds of earlier pytest processes that died
    without closing them (their DIR/owner names a process that is gone)."""
    base = '/var/tmp' if os.path.isdir('/var/tmp') else tempfile.gettempdir()
    for owner in glob.glob(os.path.join(base, LIBVIRTD_PREFIX + '*', 'owner')):
        pid = read_pid(owner)
        if pid > 0 and pid_alive(pid):
            continue
        stale = SystemLibvirtd.__new__(SystemLibvirtd)
        stale.dir = os.path.dirname(owner)
        stale.uri = 'qemu:///system?socket=%s' % os.path.join(stale.dir, 'sock', 'libvirt-sock')
        stale.close()


def _new_system_libvirtd():
    """The session's libvirtd, made at the first call of system_libvirtd():
    earlier sessions' leftovers reaped first; stopped at exit as a last
    resort, and on SIGTERM/SIGHUP through pytest's teardown."""
    reap_stale_libvirtds()
    atexit.register(stop_system_libvirtd)
    interrupt_on_termination()
    return SystemLibvirtd()


_session_libvirtd = SessionDaemon('the private system libvirtd', _new_system_libvirtd)


def system_libvirtd():
    """The private system libvirtd of this pytest process, started by the
    first call (and again when it is found dead); a start that failed fails
    every later call at once.  stop_system_libvirtd() ends it: conftest.py
    calls it at the end of the session."""
    return _session_libvirtd.get()


def stop_system_libvirtd():
    """Close the session's libvirtd, if one was started (safe to call twice)."""
    _session_libvirtd.stop()


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
    """A Snapfs with VMs: @driver 'system' (domains defined with virsh on a
    private system libvirtd, @libvirtd or the session's, snapfs mounted with
    -o libvirt=URI) or 'embedded' (SOURCE/domains/<vm>.xml, defined by
    snapfs at every mount)."""

    def __init__(self, name='t', bin=None, driver=DEFAULT_DRIVER, libvirtd=None):
        assert driver in VM_DRIVERS, driver
        if driver == 'system' and libvirtd is None:
            libvirtd = system_libvirtd()    # before the tree: nothing to clean up if it fails
        super().__init__(re.sub(r'^test_', '', name)[:24], bin)
        self.driver = driver
        self.libvirtd = libvirtd
        self.vms = {}    # vm -> {'uuid', 'volumes', 'memory_mib', 'vcpus'}
        self.other_domains = []     # UUIDs defined with define_domain_xml()
        if driver == 'embedded':
            self.domains = os.path.join(self.source, 'domains')
            os.makedirs(self.domains, exist_ok=True)
            self.qmp_dir = self.root
            return
        # the XML files given to virsh, where snapfs does not look
        self.domains = os.path.join(self.root, 'domains')
        os.makedirs(self.domains)
        # QEMU runs as libvirt-qemu: it must reach PRIMARY/<vol>.qcow2
        # (mkdtemp made ROOT 0700) and create its QMP socket
        for d in (self.root, self.source, self.primary):
            os.chmod(d, os.stat(d).st_mode & 0o7777 | 0o011)
        self.qmp_dir = os.path.join(self.root, 'qmp')
        os.makedirs(self.qmp_dir)
        qemu_user = pwd.getpwnam(QEMU_USER)
        os.chown(self.qmp_dir, qemu_user.pw_uid, qemu_user.pw_gid)
        os.chmod(self.qmp_dir, 0o700)
        self.options['libvirt'] = libvirtd.uri
        libvirtd.sweep()        # domains earlier tests left behind

    @property
    def uri(self):
        """The libvirt URI to give virsh for this test's domains."""
        if self.driver == 'system':
            return self.libvirtd.uri
        return 'qemu:///embed?root=%s' % os.path.join(self.source, 'libvirt')

    def virsh(self, *args, check=True, timeout=60):
        """virsh -c URI @args (system driver; with the embedded driver only
        while snapfs is not mounted: two drivers on one root disagree)."""
        return run(['virsh', '-q', '-c', self.uri] + list(args), timeout=timeout, check=check)

    # -- defining VMs -------------------------------------------------------------

    def qmp_path(self, vm):
        return os.path.join(self.qmp_dir, 'q-%s.sock' % vm)

    def domain_xml(self, vm, volumes, memory_mib=256, vcpus=1, uuid=None, sources=None):
        """@sources: {vol: path} of disks whose file is not PRIMARY/<vol>.qcow2."""
        disks = []
        for i, vol in enumerate(volumes):
            disks.append(
                "    <disk type='file' device='disk'>\n"
                "      <driver name='qemu' type='qcow2'/>\n"
                "      <source file='%s'/>\n"
                "      <target dev='vd%s' bus='virtio'/>\n"
                "    </disk>\n" % ((sources or {}).get(vol) or self.volume_path(vol),
                                    chr(ord('a') + i)))
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

    def define_vm(self, vm, volumes, memory_mib=256, vcpus=1, sources=None):
        """Define VM @vm with a disk per volume (@sources: see domain_xml).
        Embedded driver: write SOURCE/domains/@vm.xml (defined by snapfs at
        the next mount).  System driver: `virsh define` at once (a domain of
        that name with another UUID, left by an earlier test, is removed
        first).  Calling it again for the same VM keeps its UUID: that is a
        redefinition of the same domain.  Returns the XML file's path."""
        uuid = self.vms.get(vm, {}).get('uuid') or str(uuidlib.uuid4())
        self.vms[vm] = {'uuid': uuid, 'volumes': list(volumes),
                        'memory_mib': memory_mib, 'vcpus': vcpus}
        path = os.path.join(self.domains, vm + '.xml')
        with open(path, 'w') as f:
            f.write(self.domain_xml(vm, volumes, memory_mib, vcpus, uuid, sources))
        if self.driver == 'system':
            other = self.libvirtd.domain_uuid(vm)
            if other is not None and other != uuid:
                problem = self.libvirtd.remove_domain(other)
                assert not problem, 'a leftover domain %s is in the way: %s' % (vm, problem)
            self.virsh('define', path)
        return path

    def define_domain_xml(self, filename, xml):
        """Define a domain from the text @xml, as a user would: in
        SOURCE/domains/@filename (embedded), with virsh (system; it is
        undefined at cleanup).  Returns False when virsh refused it."""
        path = os.path.join(self.domains, filename)
        with open(path, 'w') as f:
            f.write(xml)
        if self.driver == 'embedded':
            return True
        m = re.search(r'<uuid>([^<]+)</uuid>', xml)
        if m:
            self.other_domains.append(m.group(1))
        return self.virsh('define', path, check=False).returncode == 0

    def undefine_vm(self, vm):
        """Undefine @vm behind snapfs's back (destroyed first when it runs);
        with the embedded driver only while snapfs is not mounted."""
        if self.driver == 'system':
            problem = self.libvirtd.remove_domain(self.vms[vm]['uuid'])
            assert not problem, problem
        else:
            assert not self.alive(), 'the embedded driver belongs to the mounted snapfs'
            self.virsh('undefine', vm)
        os.unlink(os.path.join(self.domains, vm + '.xml'))
        del self.vms[vm]

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
        SOURCE/libvirt/log/qemu/<vm>.log (snapfs's qemu.conf:
        stdio_handler=file), the system libvirtd's virtlogd to its
        log/qemu/<vm>.log."""
        if self.driver == 'system':
            return self.libvirtd.qemu_log(vm)
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
            text = ''
            if os.path.getsize(log) < start:
                # virtlogd rotated the log (at 2 MiB) after our offset
                with open(log + '.0', 'rb') as f:
                    f.seek(start)
                    text = f.read().decode(errors='replace')
                start = 0
            with open(log, 'rb') as f:
                f.seek(start)
                text += f.read().decode(errors='replace')
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

    def remove_domains(self):
        """System driver: destroy and undefine every domain of the test."""
        if self.driver != 'system' or not self.libvirtd.alive():
            return
        for uuid in [v['uuid'] for v in self.vms.values()] + self.other_domains:
            try:
                problem = self.libvirtd.remove_domain(uuid)
            except Exception as e:  # keep cleaning up
                problem = repr(e)
            if problem:
                self.problems.append('cleanup: ' + problem)

    def cleanup(self):
        try:
            self.force_stop_all()
        except Exception as e:  # keep cleaning up
            self.problems.append('force-stop at cleanup failed: %r' % e)
        if self.driver == 'system':
            # unmounted first: snapfs must not see its VMs go away
            try:
                self.unmount(check=False)
            except Exception as e:  # keep cleaning up
                self.problems.append('unmount failed: %r' % e)
            self.remove_domains()
        # kill the VMs before the base cleanup removes the tree under them
        self.kill_vm_processes()
        super().cleanup()
        left = self.kill_vm_processes()
        if left:
            self.problems.append('qemu-system still ran after cleanup: %s' % left)
        if self.driver == 'system':
            # the next test's VM of the same name starts a fresh log
            for vm in self.vms:
                for path in glob.glob(glob.escape(self.libvirtd.qemu_log(vm)) + '*'):
                    with contextlib.suppress(OSError):
                        os.unlink(path)

    def diagnostics(self, lines=150):
        """The base's, then each VM's QEMU log and (system driver) the
        libvirtd's and virtlogd's logs."""
        parts = [super().diagnostics(lines)]
        for vm in self.vms:
            try:
                with open(self.qemu_log(vm), errors='replace') as f:
                    text = f.read().splitlines()
            except OSError:
                continue
            parts.append('---- %s (last 30 lines) ----' % self.qemu_log(vm))
            parts += text[-30:]
        if self.driver == 'system':
            parts.append(self.libvirtd.log_tail())
        return '\n'.join(parts)


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

def vm_fixture(request, driver, libvirtd=None):
    """The body of a VM fixture (yield from it): a VmSnapfs for @driver
    (@libvirtd: a SystemLibvirtd of the test's own instead of the
    session's), its watchdog, its cleanup, and what the cleanup found
    failing the test."""
    missing = vm_missing_prerequisites(driver)
    if missing:
        pytest.skip('VM tests cannot run: ' + ', '.join(missing))
    e = VmSnapfs(request.node.name, driver=driver, libvirtd=libvirtd)
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


@pytest.fixture
def vmenv(request, vm_driver):
    """A fresh VM state directory, nothing mounted: env.make_vm(...), env.mount(...).
    @vm_driver: 'system' or 'embedded' (conftest.py parametrizes it)."""
    yield from vm_fixture(request, vm_driver)
