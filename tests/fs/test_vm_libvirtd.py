"""snapfs on a real KVM host (issue 11): a system libvirtd runs QEMU as the
unprivileged libvirt-qemu user with dynamic ownership on, and operators use
virsh on the same domains.  Against the harness's private system libvirtd
only (vm_harness.SystemLibvirtd):

- VM snapshots of a running VM (disk, disk+memory) and volume snapshots of
  its disks, which QEMU must be able to open as libvirt-qemu;
- `virsh start` after every snapfs operation, with `virsh dumpxml` still
  naming the volume files;
- domains changed with virsh appear in vms/ without a remount;
- a libvirtd restart under a mounted snapfs.

The first three failed on 07d69c7 (issue 11's failures 1, 2 and 3)."""

import errno
import os
import time
import xml.etree.ElementTree as ET

import pytest

from snapfs_harness import MiB, check_backup, events_of
from vm_harness import (DiskData, SystemLibvirtd, rejected, vm_fixture,  # noqa: F401
                        vmenv)

pytestmark = pytest.mark.vm_driver_only('system')

OUTAGE_BOUND = 5        # seconds an operation may take to fail while libvirtd is down
SEEN_BOUND = 5          # seconds for a change made with virsh to show in vms/


# ---- helpers ----------------------------------------------------------------------------

def disk_sources(env, vm, inactive=False):
    """The source files of @vm's disks in `virsh dumpxml`, in target order."""
    args = ['dumpxml', vm] + (['--inactive'] if inactive else [])
    root = ET.fromstring(env.virsh(*args).stdout)
    return [d.find('source').get('file') for d in root.findall('./devices/disk')
            if d.get('device') == 'disk' and d.find('source') is not None]


def check_sources(env, vm, what):
    """virsh dumpxml (live and inactive) names exactly PRIMARY/<vol>.qcow2
    for each of @vm's volumes."""
    want = [env.volume_path(vol) for vol in env.vms[vm]['volumes']]
    for inactive in (False, True):
        got = disk_sources(env, vm, inactive)
        assert got == want, '%s: virsh dumpxml%s names %s, expected the volume files %s' % (
            what, ' --inactive' if inactive else '', got, want)


def virsh_destroy(env, vm):
    env.virsh('destroy', vm)
    env.wait_vm_state(vm, 'stopped', timeout=SEEN_BOUND)


def virsh_start(env, vm, what):
    """`virsh start` must work (QEMU as libvirt-qemu opens every layer)."""
    out = env.virsh('start', vm, check=False)
    assert out.returncode == 0, 'virsh start %s after %s failed: %s%s\n%s' % (
        vm, what, out.stdout, out.stderr, env.diagnostics())
    assert env.libvirtd.domain_state(vm) == 'running'
    env.wait_vm_state(vm, 'running', timeout=SEEN_BOUND)


def restart_with_virsh(env, d, what):
    """virsh destroy (when running), virsh start; the disks are the volume
    files and read what they should, through QEMU."""
    vm = d.vm
    if env.vm_state(vm) == 'running':
        virsh_destroy(env, vm)
    check_sources(env, vm, 'stopped, after ' + what)
    virsh_start(env, vm, what)
    check_sources(env, vm, 'running, after ' + what)
    d.check(what='through QEMU after %s and a virsh start' % what)


def wait_listed(env, present, *parts):
    """Wait until MOUNT/@parts lists the names @present ({name: True|False})."""
    def check():
        names = env.listdir(*parts)
        return all((n in names) == want for n, want in present.items())
    env.wait_for(check, '%s in %s' % (present, '/'.join(parts)), timeout=SEEN_BOUND)


def memory_files(env):
    path = os.path.join(env.primary, '.snapfs', '.memory')
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


# ---- a, b, c: issue 11's three failures ---------------------------------------------------

def test_disk_snapshots_of_a_running_vm(vmenv):
    # issue 11, failure 1: the mkdir failed with EIO, QEMU (libvirt-qemu)
    # could not open the new overlay in the 0700 layer directory; a volume
    # snapshot of a running VM's disk failed the same way.
    env = vmenv
    env.make_vm('vm1', ['a', 'b'])
    env.mount(workers=2)
    d = DiskData(env, 'vm1')
    env.vm_start('vm1')
    pid = env.vm_pid('vm1')
    d.write()

    env.vm_take('vm1', 's1')
    d.mark('s1')
    assert env.vm_state('vm1') == 'running' and env.vm_pid('vm1') == pid, \
        'a disk snapshot stopped or restarted QEMU'
    assert env.vm_snap_info('vm1', 's1')['type'] == 'disk'
    d.write()
    d.check(what='through QEMU after the snapshot: the frozen layers and the overlays')

    # a volume snapshot of one of the running VM's disks
    env.take('a', 'x')
    d.mark('x')
    assert env.vm_pid('vm1') == pid
    d.write()
    d.check(what='through QEMU after the volume snapshot')
    env.wait_state('a', 'x', 'BackedUp')
    check_backup(env, 'a', 'x', d.ref_of('x', 'a'), 64 * MiB)

    # what each snapshot holds: s1 everything before its mkdir
    env.vm_force_stop('vm1')
    d.check(what='the volume files')
    env.vm_revert('vm1', 's1')
    d.restore('s1')
    d.check('s1', 'after the revert to s1')
    check_sources(env, 'vm1', 'after the revert to s1')


def test_memory_snapshot_of_a_running_vm(vmenv):
    # issue 11, failure 2: the memory was saved, the restore failed
    # ("Cannot access backing file ... as uid:999"), the mkdir gave EIO
    # and the VM was left stopped.
    env = vmenv
    env.make_vm('vm1', ['a', 'b'])
    env.mount()
    d = DiskData(env, 'vm1')
    env.vm_start('vm1')
    d.write()

    def take_memory(snap):
        err = env.vm_take_errno('vm1', snap, memory=True)
        state = env.vm_state('vm1')
        assert (err, state) == (0, 'running'), \
            'memory snapshot %s: mkdir %s, the VM is %s afterwards' % (
                snap, errno.errorcode.get(err, err), state)
        d.mark(snap)
        assert env.vm_snap_info('vm1', snap)['type'] == 'disk+memory'
        assert env.libvirtd.domain_state('vm1') == 'running'
        d.check(snap, 'through QEMU right after the memory snapshot ' + snap)

    take_memory('m')
    assert len(memory_files(env)) == 1, memory_files(env)
    d.write()
    env.vm_take('vm1', 'dk', memory=False)     # m's layers one level down now
    d.write()
    take_memory('m2')
    d.write()

    # reverts from running: QEMU restored from the save file, running
    for snap in ('m', 'm2'):
        pid = env.vm_pid('vm1')
        env.vm_revert('vm1', snap)
        d.restore(snap)
        assert env.vm_state('vm1') == 'running'
        assert env.vm_pid('vm1') not in (None, pid), 'the revert did not restore QEMU'
        d.check(snap, 'through QEMU after the revert to ' + snap)
        check_sources(env, 'vm1', 'after the memory revert to ' + snap)
        d.write()


def test_virsh_start_after_a_snapshot_of_the_stopped_vm(vmenv):
    # issue 11, failure 3: after a snapshot of the stopped VM, `virsh start`
    # failed with "Cannot access backing file ... Permission denied".
    env = vmenv
    env.make_vm('vm1', ['a', 'b'])
    env.mount()
    d = DiskData(env, 'vm1')
    virsh_start(env, 'vm1', 'the definition')
    d.write()
    virsh_destroy(env, 'vm1')
    env.vm_take('vm1', 's1')
    d.mark('s1')
    assert env.vm_state('vm1') == 'stopped'
    check_sources(env, 'vm1', 'after the snapshot of the stopped VM')
    virsh_start(env, 'vm1', 'a snapshot of the stopped VM')
    check_sources(env, 'vm1', 'running, after the snapshot of the stopped VM')
    d.check('s1', 'through QEMU: the frozen layers under the new overlays')
    d.write()
    d.check(what='through QEMU after a write')


# ---- d: virsh start after every snapfs operation --------------------------------------------

def test_virsh_start_after_every_operation(vmenv):
    env = vmenv
    env.make_vm('vm1', ['a', 'b'])
    env.mount(workers=2)
    d = DiskData(env, 'vm1')
    virsh_start(env, 'vm1', 'the definition')
    d.write()

    # take of the running VM
    env.vm_take('vm1', 'r1')
    d.mark('r1')
    d.write()
    restart_with_virsh(env, d, 'a disk snapshot of the running VM')

    # take of the stopped VM
    d.write()
    virsh_destroy(env, 'vm1')
    env.vm_take('vm1', 's1')
    d.mark('s1')
    restart_with_virsh(env, d, 'a disk snapshot of the stopped VM')

    # revert to a disk snapshot (from running: ends stopped)
    d.write()
    env.vm_revert('vm1', 'r1')
    d.restore('r1')
    assert env.vm_state('vm1') == 'stopped'
    restart_with_virsh(env, d, 'a disk revert')

    # disk+memory take, then its revert (ends running)
    d.write()
    env.vm_take('vm1', 'm1', memory=True)
    d.mark('m1')
    env.vm_set_options('vm1', memory=False)
    restart_with_virsh(env, d, 'a disk+memory snapshot')
    d.write()
    env.vm_revert('vm1', 'm1')
    d.restore('m1')
    assert env.vm_state('vm1') == 'running'
    restart_with_virsh(env, d, 'a memory revert')

    # snapshot deletes: their layers are merged (one under the running VM)
    d.write()
    for snap in ('r1', 's1'):
        env.vm_delete('vm1', snap)
    assert env.no_jobs_left()
    restart_with_virsh(env, d, 'two snapshot deletes and their merges')

    # a clone of a volume snapshot of the running VM's disk
    d.write()
    env.take('a', 'x')
    d.mark('x')
    n = len(env.read_events())
    env.control('a', 'clone x c1')

    def clone_ended():
        new = env.events_since(n)
        assert not events_of(new, 'clone.fail'), new
        return events_of(new, 'clone.end')
    env.wait_for(clone_ended, 'the clone of a/x to end')
    assert 'c1' in env.listdir('volumes')
    assert env.volume_equals('c1', d.ref_of('x', 'a'))
    restart_with_virsh(env, d, 'a clone')

    # a backup completed
    env.wait_state('a', 'x', 'BackedUp')
    assert env.no_jobs_left()
    check_backup(env, 'a', 'x', d.ref_of('x', 'a'), 64 * MiB)
    restart_with_virsh(env, d, 'a backup')
    virsh_destroy(env, 'vm1')
    d.check(what='the volume files at the end')


# ---- e: domains changed with virsh appear without a remount -----------------------------------

def test_domains_changed_with_virsh_appear_without_a_remount(vmenv):
    env = vmenv
    env.make_vm('vm1', ['a'], size='16M')
    env.make_volume('c', '16M')
    env.make_volume('e', '16M')
    env.make_volume('f', '16M')
    env.mount()
    assert env.listdir('vms') == ['vm1']

    # define: a new VM shows up, its disk names it
    env.define_vm('vm2', ['c'])
    wait_listed(env, {'vm2': True}, 'vms')
    assert env.vm_info('vm2')['volumes'] == ['c']
    assert env.listdir('vms', 'vm2', 'volumes') == ['c']
    env.wait_for(lambda: env.volume_info('c')['vm'] == 'vm2', 'volumes/c/info to name vm2',
                 timeout=SEEN_BOUND)

    # start and destroy change its state
    env.virsh('start', 'vm2')
    env.wait_vm_state('vm2', 'running', timeout=SEEN_BOUND)
    virsh_destroy(env, 'vm2')

    # attach-disk / detach-disk --config on the stopped VM
    env.virsh('attach-disk', 'vm2', env.volume_path('e'), 'vdb', '--driver', 'qemu',
              '--subdriver', 'qcow2', '--config')
    wait_listed(env, {'c': True, 'e': True}, 'vms', 'vm2', 'volumes')
    assert env.vm_info('vm2')['volumes'] == ['c', 'e']
    env.virsh('detach-disk', 'vm2', 'vdb', '--config')
    wait_listed(env, {'c': True, 'e': False}, 'vms', 'vm2', 'volumes')

    # attach-disk / detach-disk --live on the running VM (SCSI: unplugged
    # at once, where a virtio disk would wait for a guest to let go)
    env.virsh('start', 'vm2')
    env.wait_vm_state('vm2', 'running', timeout=SEEN_BOUND)
    env.virsh('attach-disk', 'vm2', env.volume_path('f'), 'sda', '--targetbus', 'scsi',
              '--driver', 'qemu', '--subdriver', 'qcow2', '--live')
    wait_listed(env, {'c': True, 'f': True}, 'vms', 'vm2', 'volumes')
    env.virsh('detach-disk', 'vm2', 'sda', '--live')
    wait_listed(env, {'c': True, 'f': False}, 'vms', 'vm2', 'volumes')
    virsh_destroy(env, 'vm2')

    # undefine: it disappears, the other VM stays
    env.undefine_vm('vm2')
    wait_listed(env, {'vm1': True, 'vm2': False}, 'vms')
    env.wait_for(lambda: env.volume_info('c')['vm'] is None,
                 'volumes/c/info to name no VM', timeout=SEEN_BOUND)
    assert env.vm_state('vm1') == 'stopped'


# ---- f: a libvirtd restart under a mounted snapfs ----------------------------------------------

@pytest.fixture
def ownenv(request, vm_driver):
    """A VM state directory on a private libvirtd of the test's own (the
    test stops and starts it), closed after the test's cleanup."""
    assert vm_driver == 'system'
    daemon = SystemLibvirtd()
    try:
        daemon.start()
        yield from vm_fixture(request, 'system', daemon)
    finally:
        daemon.close()


def outage_refusal(env, what, fn, op, path):
    """@fn fails with EAGAIN within OUTAGE_BOUND seconds and leaves a
    `rejected` event for @op on @path whose message names libvirt."""
    n = len(env.read_events())
    t0 = time.monotonic()
    try:
        fn()
        err = 0
    except OSError as e:
        err = e.errno
    took = time.monotonic() - t0
    assert err == errno.EAGAIN, '%s while libvirtd is down: %s after %.1f s, expected EAGAIN' % (
        what, errno.errorcode.get(err, err), took)
    assert took < OUTAGE_BOUND, '%s while libvirtd is down took %.1f s to fail' % (what, took)
    events = rejected(env.events_since(n), op, path, errno.EAGAIN)
    assert events and 'libvirt' in events[0].get('message', ''), \
        '%s: no rejected EAGAIN event naming libvirt: %s' % (what, env.events_since(n))


def test_libvirtd_restart_under_a_mounted_snapfs(ownenv):
    env = ownenv
    env.make_vm('vm1', ['a', 'b'])
    env.make_volume('loose', '16M', [(0x31, 0, '1M')])
    env.mount(workers=1)
    d = DiskData(env, 'vm1')
    env.vm_start('vm1')
    pid = env.vm_pid('vm1')
    d.write()
    env.vm_take('vm1', 'before')

    env.libvirtd.stop()
    assert not env.libvirtd.alive()
    assert env.vm_pid('vm1') == pid, 'the VM did not outlive its libvirtd'

    # during the outage: VM operations fail at once, with EAGAIN and an event
    outage_refusal(env, 'mkdir of a VM snapshot',
                   lambda: os.mkdir(env.vm_snap_dir('vm1', 'during')),
                   'mkdir', 'vms/vm1/snapshots/during')
    for command in ('force-stop', 'start'):
        outage_refusal(env, 'control: ' + command,
                       lambda command=command: env.vm_control('vm1', command),
                       command, 'vms/vm1/control')
    # (what vms/ shows during the outage is not specified: not read here)
    # volume snapshots of a volume no VM runs on still work
    env.take('loose', 'l1')
    env.wait_state('loose', 'l1', 'BackedUp')
    assert env.vm_pid('vm1') == pid, 'QEMU was touched during the outage'

    # the same libvirtd again (same directory, same URI): snapfs reconnects
    # by itself, no remount
    env.libvirtd.start()
    t0 = time.monotonic()
    deadline = t0 + 10
    while True:
        err = env.vm_take_errno('vm1', 'after')
        if err != errno.EAGAIN or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert err == 0, 'mkdir of a VM snapshot %.1f s after libvirtd came back: %s\n%s' % (
        time.monotonic() - t0, errno.errorcode.get(err, err), env.diagnostics())
    d.mark('after')
    assert env.vm_state('vm1') == 'running'
    assert env.vm_pid('vm1') == pid, 'the VM was restarted'
    assert env.libvirtd.domain_state('vm1') == 'running'
    assert env.vm_snapshots('vm1') == ['after', 'before']
    # the data: written through QEMU's monitor, read from the files (QEMU's
    # stdout, where reads through QEMU report, went with the old virtlogd)
    d.write()
    env.vm_force_stop('vm1')
    d.check(what='the volume files: writes through QEMU after the reconnect')
    env.vm_revert('vm1', 'after')
    d.restore('after')
    d.check('after', 'the snapshot taken after the reconnect')
    assert env.proc is not None and env.mount_count == 1, 'snapfs was remounted'


def libvirt_xattrs(path):
    return sorted(n for n in os.listxattr(path, follow_symlinks=False)
                  if n.startswith('trusted.libvirt.security.'))


def test_libvirt_gives_the_volume_files_back_after_snapshots_of_the_running_vm(vmenv):
    # libvirt remembers, in trusted.libvirt.security.* xattrs of each image
    # it labels at a VM's start, the owner to give back at the stop, and
    # finds the image by its path.  After a snapshot of the running VM the
    # volume's path names the overlay: the remembered owner must be there
    # (the volume file is root's again after the stop) and no frozen layer
    # may keep libvirt's xattrs (it would count as in use for ever).
    env = vmenv
    env.make_vm('vm1', ['a'])
    env.mount(workers=1)
    before = os.stat(env.volume_path('a'))
    env.vm_start('vm1')
    running = os.stat(env.volume_path('a'))
    assert running.st_uid != before.st_uid, \
        'libvirt did not give the volume file to QEMU\'s user: not dynamic ownership'
    env.vm_take('vm1', 's1')
    env.vm_take('vm1', 's2')
    ldir = os.path.join(env.primary, '.snapfs', 'a')
    layers = [os.path.join(ldir, f) for f in os.listdir(ldir) if f.endswith('.qcow2')]
    assert len(layers) == 2, layers
    for layer in layers:
        assert libvirt_xattrs(layer) == [], '%s keeps %s' % (layer, libvirt_xattrs(layer))
        assert os.stat(layer).st_uid == before.st_uid, \
            'frozen layer %s not given back to uid %d' % (layer, before.st_uid)
    assert libvirt_xattrs(env.volume_path('a')), 'the overlay carries no remembered owner'
    env.virsh('destroy', 'vm1')
    env.wait_vm_state('vm1', 'stopped')
    after = os.stat(env.volume_path('a'))
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid), \
        'the volume file stays %d:%d after the VM stopped' % (after.st_uid, after.st_gid)
    assert libvirt_xattrs(env.volume_path('a')) == []
    env.virsh('start', 'vm1')
    env.wait_vm_state('vm1', 'running')
    check_sources(env, 'vm1', 'after the snapshots and a restart')

    # a memory snapshot: the save gives the file back to its owner before
    # the disks are frozen; the overlay must be owned as that file is then
    # (the bench found it kept QEMU's user, for ever after)
    env.vm_take('vm1', 'm1', memory=True)
    assert env.vm_state('vm1') == 'running'
    env.virsh('destroy', 'vm1')
    env.wait_vm_state('vm1', 'stopped')
    after = os.stat(env.volume_path('a'))
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid), \
        'after a memory snapshot the volume file stays %d:%d once the VM stopped' % (
            after.st_uid, after.st_gid)
    env.virsh('start', 'vm1')
    env.wait_vm_state('vm1', 'running')
