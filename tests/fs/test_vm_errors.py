"""The errors a user meets under vms/: each with its errno and a line in
`events` saying why (docs/errors.md), and nothing changed by a refused
operation."""

import errno
import os
import time

from snapfs_harness import qemu_img_create
from vm_harness import DiskData, domain_type, rejected, vmenv  # noqa: F401


def mkdir_errno(path):
    try:
        os.mkdir(path)
    except OSError as e:
        return e.errno
    return 0


def name_of(err):
    return 'EOPNOTSUPP' if err == errno.EOPNOTSUPP else errno.errorcode.get(err, str(err))


def test_vm_snapshot_errors(vmenv):
    env = vmenv
    env.make_vm('vm1', ['a', 'b'])
    # vm2's disk is not a volume of primary storage
    other = os.path.join(env.root, 'other.qcow2')
    qemu_img_create(other, '16M')
    env.define_vm('vm2', ['c'], sources={'c': other})
    env.mount()
    assert env.listdir('vms') == ['vm1', 'vm2']
    snaps = 'vms/vm1/snapshots/'

    def refused(path, err, op='mkdir'):
        """mkdir MOUNT/@path fails with @err and leaves a `rejected` event."""
        n = len(env.read_events())
        got = mkdir_errno(env.p(path))
        assert got == err, 'mkdir %s: %s, expected %s' % (path, name_of(got), name_of(err))
        assert rejected(env.events_since(n), op, path, err), \
            'no rejected %s event for %s: %s' % (name_of(err), path, env.events_since(n))

    # -- names: bad ones and `current` (while there is no current link)
    for bad in ('-x', '.x', 'a b', 'a:b', 'x' * 129, 'current'):
        refused(snaps + bad, errno.EINVAL)
    assert env.vm_snapshots('vm1') == []

    # -- snapshot-options: one line of memory=yes|no quiesce=yes|no, each at most once
    for bad in ('memory=maybe', 'foo=yes', 'memory=yes quiesce', 'memory',
                'memory=yes memory=yes', 'quiesce=yes\nmemory=yes'):
        n = len(env.read_events())
        try:
            env.write_file(env.vm_dir('vm1', 'snapshot-options'), bad + '\n')
            err = 0
        except OSError as e:
            err = e.errno
        assert err == errno.EINVAL, '%r: %s' % (bad, name_of(err))
        assert rejected(env.events_since(n), 'write', 'vms/vm1/snapshot-options',
                        errno.EINVAL), env.events_since(n)
    assert env.read('vms', 'vm1', 'snapshot-options').split() == ['memory=no', 'quiesce=no']

    # -- a memory snapshot needs a running VM
    env.vm_set_options('vm1', memory=True)
    refused(snaps + 'mem', errno.EOPNOTSUPP)
    assert env.vm_snapshots('vm1') == []
    assert env.vm_state('vm1') == 'stopped'
    env.vm_set_options('vm1', memory=False)

    # -- a disk that is not a volume of primary storage
    refused('vms/vm2/snapshots/x', errno.EOPNOTSUPP)

    # -- quiesce without a guest agent: a clear error, quickly, not a hang
    env.vm_start('vm1')
    d = DiskData(env, 'vm1')
    d.write()
    env.vm_set_options('vm1', quiesce=True)
    t0 = time.monotonic()
    refused(snaps + 'q', errno.EOPNOTSUPP)
    took = time.monotonic() - t0
    assert took < 10, 'quiesce without an agent took %.1f s to fail' % took
    assert env.vm_snapshots('vm1') == []
    assert env.vm_state('vm1') == 'running'
    d.check(what='after the refused quiesce')
    env.vm_set_options('vm1', quiesce=False)

    # -- EEXIST: the kernel answers an existing name itself, without asking
    # snapfs (design.md, "Events the kernel answers for us": no event).  A
    # racing mkdir of the same name cannot reach snapfs either: the VFS
    # holds the directory's lock across the first mkdir.
    env.vm_take('vm1', 's1')
    assert mkdir_errno(env.vm_snap_dir('vm1', 's1')) == errno.EEXIST
    env.vm_set_options('vm1', memory=True)
    env.vm_take('vm1', 'dup')
    assert mkdir_errno(env.vm_snap_dir('vm1', 'dup')) == errno.EEXIST
    env.vm_set_options('vm1', memory=False)
    # `current` exists now: the kernel says EEXIST
    assert mkdir_errno(env.vm_snap_dir('vm1', 'current')) == errno.EEXIST
    assert sorted(env.vm_snapshots('vm1')) == ['dup', 's1']

    # -- revert of an unknown snapshot
    n = len(env.read_events())
    assert env.vm_control_errno('vm1', 'revert nosuch') == errno.ENOENT
    assert rejected(env.events_since(n), 'revert', snaps + 'nosuch', errno.ENOENT), \
        env.events_since(n)
    assert env.vm_state('vm1') == 'running'
    assert env.vm_current('vm1') == 'dup'

    # -- rmdir of an unknown snapshot, mkdir under an unknown VM
    try:
        os.rmdir(env.vm_snap_dir('vm1', 'nosuch'))
        err = 0
    except OSError as e:
        err = e.errno
    assert err == errno.ENOENT, name_of(err)
    assert mkdir_errno(env.p('vms', 'nosuch', 'snapshots', 'x')) == errno.ENOENT
    env.vm_force_stop('vm1')


def test_vm_snapshots_off(vmenv):
    env = vmenv
    env.make_vm('vm1', ['a', 'b'])
    env.mount(vm_snapshots_off='kvm:qemu')
    assert env.vm_info('vm1')['snapshots_enabled'] is False
    for memory, running in ((False, False), (True, True), (False, True)):
        if running and env.vm_state('vm1') != 'running':
            env.vm_start('vm1')
        env.vm_set_options('vm1', memory=memory)
        n = len(env.read_events())
        err = mkdir_errno(env.vm_snap_dir('vm1', 's'))
        assert err == errno.EOPNOTSUPP, name_of(err)
        assert rejected(env.events_since(n), 'mkdir', 'vms/vm1/snapshots/s', errno.EOPNOTSUPP), \
            env.events_since(n)
        assert env.vm_snapshots('vm1') == []
    # volume snapshots of the VM's disks still work
    env.take('a', 'vs')
    env.wait_state('a', 'vs', 'BackedUp')
    env.vm_force_stop('vm1')
    env.vm_set_options('vm1', memory=False)

    # switched off for the other domain type only: on for this VM
    other = 'qemu' if domain_type() == 'kvm' else 'kvm'
    env.unmount()
    env.options.pop('vm_snapshots_off')
    env.mount(vm_snapshots_off=other)
    assert env.vm_info('vm1')['snapshots_enabled'] is True
    env.vm_take('vm1', 's')
    assert env.vm_snapshots('vm1') == ['s']


def test_revert_refused_when_the_vm_changed(vmenv):
    env = vmenv
    env.make_vm('vm1', ['a', 'b'])
    env.mount()
    d = DiskData(env, 'vm1')
    env.vm_start('vm1')
    d.write()
    env.vm_take('vm1', 'm', memory=True)
    d.mark('m')
    d.write()
    env.vm_take('vm1', 'dk', memory=False)
    d.mark('dk')
    d.write()
    env.vm_force_stop('vm1')

    def refused(snap, why):
        n = len(env.read_events())
        current = env.vm_current('vm1')
        err = env.vm_control_errno('vm1', 'revert ' + snap)
        assert err == errno.EINVAL, '%s: revert %s gave %s' % (why, snap, name_of(err))
        assert rejected(env.events_since(n), 'revert', 'vms/vm1/snapshots/' + snap,
                        errno.EINVAL), '%s: %s' % (why, env.events_since(n))
        # nothing touched
        assert env.vm_state('vm1') == 'stopped', why
        assert env.vm_current('vm1') == current, why
        assert env.vm_snap_info('vm1', snap)['state'] == 'Ready', why
        d.check(what='disks after a refused revert (%s)' % why)

    # memory size changed since the memory snapshot
    env.define_vm('vm1', ['a', 'b'], memory_mib=512)
    env.remount()
    assert env.vm_info('vm1')['memory_kib'] == 512 * 1024
    refused('m', 'memory size changed')
    # a disk snapshot does not care about memory
    env.vm_revert('vm1', 'dk')
    d.restore('dk')
    assert env.vm_state('vm1') == 'stopped'
    d.check('dk', 'disk snapshot reverted with another memory size')

    # CPU count changed
    env.define_vm('vm1', ['a', 'b'], memory_mib=256, vcpus=2)
    env.remount()
    assert env.vm_info('vm1')['vcpus'] == 2
    refused('m', 'vCPUs changed')

    # a disk detached
    env.define_vm('vm1', ['a'], memory_mib=256, vcpus=1)
    env.remount()
    assert env.vm_info('vm1')['volumes'] == ['a']
    env.vms['vm1']['volumes'] = ['a', 'b']     # d checks both volume files
    refused('dk', 'a disk detached')
    refused('m', 'a disk detached')

    # as it was: the memory snapshot reverts and runs
    env.define_vm('vm1', ['a', 'b'], memory_mib=256, vcpus=1)
    env.remount()
    env.vm_revert('vm1', 'm')
    d.restore('m')
    assert env.vm_state('vm1') == 'running'
    env.vm_force_stop('vm1')
    d.check('m', 'after the revert to m with the original definition')
