"""A disk+memory VM snapshot saves the VM's memory (the VM stops), freezes
its disks, then restores the VM from the save file.  Whatever happens to
that restore, a snapshot must never leave a running VM stopped (issue 11:
under the system libvirtd a restore that could not read the new layers
left the VM stopped, an outage caused by a snapshot).

- the restore fails (SNAPFS_FAULT_POINT=libvirt.restore fails the first
  one): the mkdir fails with EIO and an event saying why, the disks are put
  back, the VM runs again on the data it had, nothing of the snapshot stays;
- snapfs is killed -9 between the save and the restore (SNAPFS_HANG_AT
  vm.take.saved): the VM is stopped until the next mount, whose recovery
  completes the snapshot and restores the VM from its memory."""

import os

from vm_harness import DiskData, vm_events, vmenv  # noqa: F401

from test_vm_crash import check_resolved, crash


def memory_files(env):
    path = os.path.join(env.primary, '.snapfs', '.memory')
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def layer_files(env, vol):
    path = os.path.join(env.primary, '.snapfs', vol)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def mount_with_fault(env, point, **options):
    old = os.environ.get('SNAPFS_FAULT_POINT')
    os.environ['SNAPFS_FAULT_POINT'] = point
    try:
        env.mount(**options)
    finally:
        if old is None:
            del os.environ['SNAPFS_FAULT_POINT']
        else:
            os.environ['SNAPFS_FAULT_POINT'] = old


def test_a_failed_restore_after_the_memory_save_brings_the_vm_back(vmenv):
    env = vmenv
    env.make_vm('vm1', ['a', 'b'])
    mount_with_fault(env, 'libvirt.restore', workers=1)
    d = DiskData(env, 'vm1')
    env.vm_start('vm1')
    d.write()
    env.vm_take('vm1', 'base')              # a layer below, as in real use
    d.write()
    d.mark('before')
    layers = {vol: layer_files(env, vol) for vol in ('a', 'b')}
    count = len(env.read_events())

    err = env.vm_take_errno('vm1', 's1', memory=True)
    assert err == 5, 'the mkdir whose restore failed returned errno %d, not EIO' % err

    assert env.vm_state('vm1') == 'running', \
        'the failed restore left the VM %s' % env.vm_state('vm1')
    d.check('before', 'through QEMU after the failed restore')
    assert env.vm_snapshots('vm1') == ['base'], env.vm_snapshots('vm1')
    assert env.vm_current('vm1') == 'base'
    assert memory_files(env) == [], 'memory file of the rolled back snapshot left: %s' \
        % memory_files(env)
    for vol in ('a', 'b'):
        assert layer_files(env, vol) == layers[vol], \
            'layer files of %s changed: %s -> %s' % (vol, layers[vol], layer_files(env, vol))
    check_resolved(env)
    events = env.read_events()[count:]
    starts = vm_events(events, 'vm.start', 'vm1')
    assert starts and starts[-1]['result'] == 'ok' and 'restored' in starts[-1]['message'], \
        'no event telling the VM was brought back: %s' % events
    refused = [ev for ev in events if ev.get('type') == 'rejected'
               and ev.get('path', '').lstrip('/') == 'vms/vm1/snapshots/s1']
    assert refused and refused[0]['errno'] == 'EIO' and 'rolled back' in refused[0]['message'], \
        refused

    # the VM goes on: it writes, and the next memory snapshot works
    d.write()
    env.vm_take('vm1', 's2', memory=True)
    d.mark('s2')
    assert env.vm_state('vm1') == 'running'
    d.write()
    env.vm_revert('vm1', 's2')
    d.restore('s2')
    assert env.vm_state('vm1') == 'running'
    d.check('s2', 'revert to the memory snapshot taken after the failed one')


def test_kill9_between_the_memory_save_and_the_restore(vmenv):
    env = vmenv
    env.make_vm('vm1', ['a', 'b'])
    env.mount(workers=1)
    d = DiskData(env, 'vm1')
    env.vm_start('vm1')
    d.write()
    env.vm_set_options('vm1', memory=True)
    env.unmount()
    env.mount_hanging('vm.take.saved', workers=1)
    d.mark('s1')
    crash(env, 'vm.take.saved', lambda: os.mkdir(env.vm_snap_dir('vm1', 's1')))
    assert env.vm_pid('vm1') is None, 'the VM runs though its memory was saved'

    env.mount(workers=1)
    assert env.vm_state('vm1') == 'running', \
        'recovery left the VM %s after a cut memory snapshot' % env.vm_state('vm1')
    events = env.read_events()
    starts = vm_events(events, 'recovery.vm.start', 'vm1', 's1')
    assert starts and starts[0]['result'] == 'ok', \
        'no recovery event for the VM: %s' % [e for e in events if 'recovery' in e['type']]
    check_resolved(env)
    # the disks were frozen before the cut: the snapshot is completed
    assert 's1' in env.vm_snapshots('vm1')
    assert env.vm_snap_info('vm1', 's1')['type'] == 'disk+memory'
    d.check('s1', 'through QEMU after the recovery restored the VM')
    d.write()
    env.vm_revert('vm1', 's1')
    d.restore('s1')
    assert env.vm_state('vm1') == 'running'
    d.check('s1', 'revert to the snapshot the recovery completed')
