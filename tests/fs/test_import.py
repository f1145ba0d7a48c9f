"""Disaster recovery (issue 14, docs/repository.md "A catalog rebuilt from
the repository"): a host whose SOURCE and PRIMARY are lost mounts a new,
empty SOURCE over its old SECONDARY, and every backup it made comes back
under backed-up/volumes/ with its snapshot name and times, BackedUp, its
view equal to the snapshot, restorable by a clone; other hosts' backups
and damaged manifests are left in place, the latter with an event; a
remount imports nothing twice.  In both modes: the repository (indexes)
and full copies (qcow2 files)."""

import errno
import json
import os
import shutil
import uuid

import pytest

from snapfs_harness import qemu_img_compare, snapfs_env
from test_clone import check_clone, wait_clone

MiB = 1 << 20
A = [(0xa1, 0, '4M'), (0xa2, '40M', '2M')]
B = [(0xb2, '8M', '4M')]
W = [(0xd1, '1M', '3M')]


def take_backed_up(env, vol, snap):
    env.take(vol, snap)
    env.wait_state(vol, snap, 'BackedUp')


def import_events(env):
    return [e for e in env.read_events() if e['type'] == 'recovery.import']


def lose_source_and_primary(env):
    """What a dead host leaves: SECONDARY only (SOURCE/secondary here)."""
    for name in os.listdir(env.source):
        if name == 'secondary':
            continue
        path = os.path.join(env.source, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    os.makedirs(env.primary)


def plant(env, vol, manifest):
    """A manifest snapfs did not write, under SECONDARY/volumes/@vol/."""
    d = os.path.join(env.secondary, 'volumes', vol)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, manifest['uuid'] + '.json'), 'w') as f:
        json.dump(manifest, f)


@pytest.mark.parametrize('mode', ['on', 'off'], ids=['repository', 'full-copies'])
def test_new_source_over_old_secondary_gets_its_backups_back(env, mode):
    env.make_volume('v', '64M', A)
    env.make_volume('w', '32M', W)
    ref_a = env.make_reference('64M', A)
    ref_ab = env.make_reference('64M', A + B)
    ref_w = env.make_reference('32M', W)
    env.mount(host='kvm-a', repository=mode, keep_primary=1)
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 'weekly')
    take_backed_up(env, 'w', 's1')
    before = {(vol, snap): env.info(vol, snap) for vol, snap in
              (('v', 's1'), ('v', 'weekly'), ('w', 's1'))}
    vol_uuid = env.volume_info('v')['uuid']
    manifests = {key: env.manifest(*key) for key in before}
    env.unmount()

    # another host's backup and a damaged manifest, beside ours
    other = dict(manifests[('v', 's1')], host='kvm-b', uuid=str(uuid.uuid4()),
                 snapshot='theirs', volume_uuid=str(uuid.uuid4()))
    if 'index' in other:
        other['index'] = other['uuid'] + '.index'
    plant(env, 'v', other)
    broken = str(uuid.uuid4())
    with open(os.path.join(env.secondary, 'volumes', 'w', broken + '.json'), 'w') as f:
        f.write('{"volume": "w", "snapshot": "half')
    lose_source_and_primary(env)

    env.mount(host='kvm-a', repository=mode, keep_primary=1)
    evs = import_events(env)
    summary = [e for e in evs if 'a new catalog' in e['message']]
    assert len(summary) == 1, evs
    assert "3 backup(s) of host 'kvm-a' imported (2 new volume(s)), 1 of other hosts " \
           "left to them, 1 skipped" in summary[0]['message'], summary
    skipped = [e for e in evs if 'not imported' in e['message']]
    assert len(skipped) == 1 and broken in skipped[0]['message'] and \
        skipped[0]['volume'] == 'w', skipped
    assert sorted(env.listdir('volumes')) == ['v', 'w']
    assert env.volume_info('v')['uuid'] == vol_uuid
    assert env.volume_info('v')['on_primary'] is False
    assert sorted(env.snapshots('v')) == ['s1', 'weekly']   # not theirs
    for key, old in before.items():
        info = env.info(*key)
        assert info['state'] == 'BackedUp', info
        for field in ('uuid', 'created_at', 'backed_up_at', 'checksum', 'virtual_size'):
            assert info[field] == old[field], (key, field, info, old)
        assert info['on_primary'] is False, info
        m = env.manifest(*key)
        assert m['host'] == 'kvm-a' and m['volume_uuid'] == manifests[key]['volume_uuid'], m
    for (vol, snap), ref in (((('v', 's1')), ref_a), (('v', 'weekly'), ref_ab),
                             (('w', 's1'), ref_w)):
        assert qemu_img_compare(ref, env.backup_file(vol, snap)) == 0, (vol, snap)
    assert not [e for e in env.read_events() if e['type'] == 'recovery.missing']
    # the planted files are left where they are
    assert os.path.exists(os.path.join(env.secondary, 'volumes', 'w', broken + '.json'))
    assert os.path.exists(os.path.join(env.secondary, 'volumes', 'v', other['uuid'] + '.json'))

    # restored from secondary storage, equal to the snapshot
    n = len(env.read_events())
    env.control('v', 'clone weekly restored')
    wait_clone(env, 'v', 'weekly', 'restored', n)
    check_clone(env, 'restored', ref_ab, 64 * MiB)

    # and new backups go on, in the same volume
    env.remount()
    assert len(import_events(env)) == len(evs)   # nothing imported twice
    env.make_volume('v', '64M', [(0xee, 0, '1M')])
    take_backed_up(env, 'v', 's3')
    assert sorted(env.snapshots('v')) == ['s1', 's3', 'weekly']
    assert env.state('v', 's1') == 'BackedUp'


def test_another_host_name_imports_nothing(env):
    """A new SOURCE mounted under another host name sees that SECONDARY's
    backups as another host's: none comes under backed-up/volumes/."""
    env.make_volume('v', '16M', [(0x11, 0, '1M')])
    env.mount(host='kvm-a')
    take_backed_up(env, 'v', 's1')
    env.unmount()
    lose_source_and_primary(env)
    env.options.pop('host')
    env.mount(host='kvm-b')
    assert env.listdir('volumes') == []
    summary = [e for e in import_events(env) if 'a new catalog' in e['message']]
    assert summary and "0 backup(s) of host 'kvm-b' imported (0 new volume(s)), 1 of other " \
        "hosts left to them" in summary[0]['message'], summary


def test_other_hosts_backups_are_served_under_hosts(env):
    """Two hosts, one SECONDARY (one after the other here): each sees its
    own backups under backed-up/volumes/ and the other's, read-only and
    equal to the snapshot, under backed-up/hosts/<host>/volumes/; the same
    volume name on both stays two volumes."""
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    env.mount(host='kvm-a')
    take_backed_up(env, 'v', 's1')
    a_manifest = env.manifest('v', 's1')
    assert env.listdir('backed-up', 'hosts') == []
    env.unmount()
    with snapfs_env('host-b') as b:
        b.secondary = env.secondary
        b.make_volume('v', '32M', W)
        ref_w = env.make_reference('32M', W)
        b.mount(host='kvm-b')
        take_backed_up(b, 'v', 's1')
        # its own v/s1, and kvm-a's v/s1 beside it
        assert b.listdir('backed-up', 'volumes', 'v') == ['s1.json', 's1.qcow2']
        assert qemu_img_compare(ref_w, b.backup_file('v', 's1')) == 0
        assert b.listdir('backed-up', 'hosts') == ['kvm-a']
        assert b.listdir('backed-up', 'hosts', 'kvm-a') == ['volumes']
        assert b.listdir('backed-up', 'hosts', 'kvm-a', 'volumes') == ['v']
        theirs = b.p('backed-up', 'hosts', 'kvm-a', 'volumes', 'v')
        assert sorted(os.listdir(theirs)) == ['s1.json', 's1.qcow2']
        assert qemu_img_compare(ref_a, os.path.join(theirs, 's1.qcow2')) == 0
        with open(os.path.join(theirs, 's1.json')) as f:
            assert json.load(f) == a_manifest
        st = os.stat(os.path.join(theirs, 's1.qcow2'))
        assert st.st_uid == 0 and st.st_mode & 0o777 == 0o444, st
        # stable across remounts, as this host's own
        b.remount()
        assert os.stat(os.path.join(theirs, 's1.qcow2'))[1:] == st[1:]
        # read-only, and names that are no host's are absent
        for path, err in ((os.path.join(theirs, 'x.qcow2'), errno.EROFS),):
            with pytest.raises(OSError) as e:
                open(path, 'w').close()
            assert e.value.errno == err, e.value
        for missing in (('backed-up', 'hosts', 'kvm-b'), ('backed-up', 'hosts', 'nobody'),
                        ('backed-up', 'hosts', 'kvm-a', 'volumes', 'w'),
                        ('backed-up', 'hosts', 'kvm-a', 'volumes', 'v', 's2.qcow2')):
            assert not os.path.exists(b.p(*missing)), missing
        b.unmount()
    # and kvm-a sees kvm-b's
    env.mount()
    assert env.listdir('backed-up', 'hosts') == ['kvm-b']
    assert qemu_img_compare(ref_a, env.backup_file('v', 's1')) == 0
    assert qemu_img_compare(
        ref_w, env.p('backed-up', 'hosts', 'kvm-b', 'volumes', 'v', 's1.qcow2')) == 0
