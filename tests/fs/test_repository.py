"""-o repository=on: backups go into the repository of deduplicated chunks
(docs/repository.md).  A backup is published as an index and a manifest;
an incremental one reads and writes only what changed; identical volumes
share chunks; deleting a backup leaves the others restorable and GC frees
what nothing names; revert and clone read the repository; kill -9 in the
middle of a backup loses nothing; a damaged chunk fails a restore with EIO
and an event naming it.

Every test runs on both storage backends of the repository (the `backend`
fixture, conftest.py): [posix], files under SECONDARY, and [rados], the
objects of a namespace of the session's Ceph cluster; a test reads and
pokes the repository through env.repo (repo_backend.py).  The path-based
helpers (index_path, chunk_path, read_index) serve the POSIX-only tests of
other files."""

import errno
import glob
import hashlib
import json
import os
import re
import struct
import time

import pytest

from repo_backend import chunk_name
from snapfs_harness import (MiB, events_of, qemu_img_compare, qemu_img_info, run)

pytestmark = pytest.mark.usefixtures('backend')

A = [(0xa1, 0, '4M'), (0xa3, '4M', '4M'), (0xa2, '40M', '4M')]
B = [(0xb1, 0, '4M'), (0xb3, '60M', '2M')]   # 4M: s1's first 4 MiB (one pattern) is its own at every chunk size
C = [(0xc1, '16M', '4M')]


# ---- helpers ------------------------------------------------------------------------

def chunks_in(env, nbytes):
    """How many chunks of the repository @env mounts hold @nbytes (a
    multiple of the chunk size: 4 MiB on POSIX, 2 MiB on RADOS)."""
    cs = env.repo.new_chunk_size
    assert nbytes % cs == 0, (nbytes, cs)
    return nbytes // cs


def uuid_of(env, vol, snap):
    return env.info(vol, snap)['uuid']


def index_name(env, vol, snap):
    """The repository name of the index of @vol/@snap."""
    return 'volumes/%s/%s.index' % (vol, uuid_of(env, vol, snap))


def index_path(env, vol, snap):
    """Its path on a POSIX secondary."""
    return os.path.join(env.secondary, index_name(env, vol, snap))


def read_index(path):
    """(chunk_size, virtual_size, [hex digest or None for a hole]) of the
    index file at @path (POSIX)."""
    with open(path, 'rb') as f:
        return parse_index(f.read(), path)


def index_of(env, vol, snap):
    """read_index() of @vol/@snap's index, on either backend."""
    name = index_name(env, vol, snap)
    return parse_index(env.repo.read(name), name)


def parse_index(data, path):
    assert data[:8] == b'SNAPIDX1', path
    version, chunk_size, vsize, count = struct.unpack('<IIQQ', data[8:32])
    assert version == 1 and len(data) == 64 + 32 * count, path
    assert hashlib.sha256(data[:-32]).digest() == data[-32:], 'index checksum: ' + path
    entries = []
    for i in range(count):
        d = data[32 + 32 * i:64 + 32 * i]
        entries.append(None if d == bytes(32) else d.hex())
    return chunk_size, vsize, entries


def chunk_files(env):
    return env.repo.chunk_names()


def chunk_path(env, name):
    """The path of chunk @name on a POSIX secondary (env.repo and
    repo_backend.chunk_name() on either backend)."""
    return os.path.join(env.secondary, '.chunks', name[:2], name)


def index_names(env):
    """The names of every index (as the glob volumes/*/*.index finds them)."""
    out = []
    for n in env.repo.names('volumes/'):
        parts = n.split('/')
        if len(parts) == 3 and not parts[1].startswith('.') and \
                not parts[2].startswith('.') and parts[2].endswith('.index'):
            out.append(n)
    return out


def named_chunks(env):
    names = set()
    for name in index_names(env):
        names |= {d for d in parse_index(env.repo.read(name), name)[2] if d}
    return names


def backup_end(env, vol, snap):
    evs = events_of(env.read_events(), 'backup.end', vol, snap)
    assert evs, 'no backup.end for %s/%s' % (vol, snap)
    msg = evs[-1]['message']
    m = re.search(r'read (\d+) bytes, (\d+) chunks; (\d+) chunks written, (\d+) reused, '
                  r'(\d+) copied from the base', msg)
    assert m, msg
    keys = ('bytes_read', 'chunks_read', 'written', 'reused', 'copied')
    out = dict(zip(keys, map(int, m.groups())))
    out['incremental'] = msg.find('incremental over') >= 0
    out['message'] = msg
    return out


def take_backed_up(env, vol, snap):
    env.take(vol, snap)
    env.wait_state(vol, snap, 'BackedUp')


def s1_only_in_the_repository(env):
    """Volume v: s1 (A) and s2 (A + B) backed up with keep_primary=1, so
    that s1 is left only in the repository."""
    env.make_volume('v', '64M', A)
    env.mount(repository='on', keep_primary=1)
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 's2')
    env.wait_for(lambda: env.info('v', 's1')['on_primary'] is False, 's1 off primary')


def check_published(env, vol, snap, vsize):
    """The backup of @vol/@snap is an index and a manifest that agree;
    every chunk it names is there and hashes to its name; no qcow2."""
    uuid = uuid_of(env, vol, snap)
    d = 'volumes/%s/' % vol
    assert not env.repo.exists(d + uuid + '.qcow2')
    index = env.repo.read(d + uuid + '.index')
    chunk_size, got_vsize, entries = parse_index(index, d + uuid + '.index')
    assert chunk_size == env.repo.new_chunk_size and got_vsize == vsize
    m = json.loads(env.repo.read(d + uuid + '.json'))
    tail = index[-32:]
    assert m['format'] == 'index' and m['index'] == uuid + '.index', m
    assert m['index_sha256'] == tail.hex() and m['chunk_size'] == env.repo.new_chunk_size, m
    assert m['volume'] == vol and m['snapshot'] == snap and m['uuid'] == uuid, m
    assert 'checksum' not in m, m
    size = 0
    for i, name in enumerate(entries):
        if not name:
            continue
        data = env.repo.read(chunk_name(name))
        assert data[:8] == b'SNAPCHK1', name
        assert hashlib.sha256(data[16:]).hexdigest() == name, name
        size += len(data) - 16
    assert m['size'] == size, (m, size)
    info = env.info(vol, snap)
    assert info['checksum'] == 'sha256:' + tail.hex(), info
    return m


def view_check(env, vol, snap, reference):
    """backed-up/<vol>/<snap>.qcow2: a standalone qcow2 synthesized from
    the index, equal to the snapshot, sized by its allocated data, mtime
    backed_up_at."""
    img = env.backup_file(vol, snap)
    st = os.stat(img)
    info = qemu_img_info(img)
    assert info.get('format') == 'qcow2' and 'backing-filename' not in info, info
    check = run(['qemu-img', 'check', img], check=False, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert qemu_img_compare(reference, img) == 0
    m = env.manifest(vol, snap)
    # allocated data plus a few metadata clusters, not the virtual size
    assert m['size'] <= st.st_size <= m['size'] + 8 * info['cluster-size'], (st, m, info)
    return (st.st_ino, st.st_size, st.st_mtime)


def clone_and_compare(env, vol, snap, newvol, reference):
    n = len(env.read_events())
    env.control(vol, 'clone %s %s' % (snap, newvol))

    def done():
        new = env.events_since(n)
        fails = events_of(new, 'clone.fail', vol, snap)
        assert not fails, fails
        return events_of(new, 'clone.end', vol, snap)
    env.wait_for(done, 'the clone of %s/%s' % (vol, snap), timeout=120)
    path = env.volume_path(newvol)
    info = qemu_img_info(path, force_share=True)
    assert 'backing-filename' not in info, info
    check = run(['qemu-img', 'check', '-U', path], check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert qemu_img_compare(reference, path, force_share=True) == 0, \
        'the clone of %s/%s does not hold its data' % (vol, snap)


def revert(env, vol, snap, where):
    n = len(env.read_events())
    env.control(vol, 'revert ' + snap)
    evs = events_of(env.events_since(n), 'volume.revert', vol, snap)
    assert len(evs) == 1 and evs[0].get('result') == 'ok', env.events_since(n)
    assert 'from %s storage' % where in evs[0]['message'], evs[0]


def age_chunks(env, seconds=3600):
    """As if every chunk were written @seconds ago: POSIX mtime, RADOS the
    xattr snapfs.t (GC compares either with the real time)."""
    past = time.time() - seconds
    for name in chunk_files(env):
        env.repo.age(chunk_name(name), past)


# ---- the tests ------------------------------------------------------------------------

def test_repository_json_made_and_checked(env, backend):
    env.make_volume('v', '16M', [(0x11, 0, '1M')])
    env.mount(repository='on')
    rj = json.loads(env.repo.read('repository.json'))
    assert rj == {'format': 'snapfs-repository', 'version': 1,
                  'chunk_size': env.repo.new_chunk_size,
                  'hash': 'sha256', 'compression': 'none'}, rj
    env.unmount()
    # a version this snapfs does not know: the mount fails, one clear line
    rj['version'] = 2
    env.repo.write('repository.json', json.dumps(rj).encode())
    if backend == 'rados':      # checked after the daemon's start: see mount_refused()
        text = env.mount_refused(repository='on')[0]
        assert 'version 2' in text and 'refusing to mount' in text, text
        env.repo.write('repository.json', b'{"format": "something-else"')
        text = env.mount_refused()[0]
        assert 'not a snapfs repository' in text, text
    else:
        try:
            env.mount(repository='on')
            raise AssertionError('mounted a repository of version 2')
        except AssertionError as e:
            assert 'version 2' in str(e) and 'refusing to mount' in str(e), str(e)
        # a file that is not a repository's: refused too, nothing changed
        env.repo.write('repository.json', b'{"format": "something-else"')
        try:
            env.mount()
            raise AssertionError('mounted over a damaged repository.json')
        except AssertionError as e:
            assert 'not a snapfs repository' in str(e), str(e)
    assert env.repo.read('repository.json') == b'{"format": "something-else"'
    if backend == 'posix':      # (RADOS has no repository=off)
        env.mount(repository='off')  # repository=off does not read it


def test_repository_is_the_default(env):
    """Without -o repository (and without SNAPFS_TEST_REPOSITORY) the mount
    backs up into the repository: repository.json, an index, a synthesized
    view; the daemon's start line says repository=on."""
    env.make_volume('v', '16M', [(0x11, 0, '1M')])
    ref = env.make_reference('16M', [(0x11, 0, '1M')])
    env.options.pop('repository', None)
    saved = os.environ.pop('SNAPFS_TEST_REPOSITORY', None)
    try:
        env.mount()
        assert env.repo.exists('repository.json')
        take_backed_up(env, 'v', 's1')
        check_published(env, 'v', 's1', 16 * MiB)
        view_check(env, 'v', 's1', ref)
        assert 'repository=on' in env.log_text()
    finally:
        if saved is not None:
            os.environ['SNAPFS_TEST_REPOSITORY'] = saved


def test_backup_is_published_as_index_and_manifest(env):
    env.make_volume('v', '64M', A)
    ref = env.make_reference('64M', A)
    env.mount(repository='on')
    take_backed_up(env, 'v', 's1')
    m = check_published(env, 'v', 's1', 64 * MiB)
    assert m['size'] == 12 * MiB, m   # 8M at 0 and 4M at 40M; the rest holes
    ev = backup_end(env, 'v', 's1')
    assert not ev['incremental'] and ev['written'] == 3, ev
    # 2 MiB chunks: each 4M write is two equal chunks, one stored
    assert ev['reused'] == chunks_in(env, 12 * MiB) - 3, ev
    seen = view_check(env, 'v', 's1', ref)
    assert env.listdir('backed-up', 'volumes', 'v') == ['s1.json', 's1.qcow2']
    # it survives a remount (recovery finds the index, not a qcow2), and the
    # view keeps its inode, size and mtime
    env.remount()
    assert env.state('v', 's1') == 'BackedUp'
    assert not [e for e in env.read_events() if e['type'] == 'recovery.missing']
    assert view_check(env, 'v', 's1', ref) == seen


def test_incremental_backup_reads_only_what_changed(env):
    writes = [(0x20 + i, '%dM' % (i * 4), '4M') for i in range(32)]  # 128 MiB data
    env.make_volume('v', '256M', writes)
    env.mount(repository='on', keep_primary=2)
    take_backed_up(env, 'v', 's1')
    full = backup_end(env, 'v', 's1')
    assert full['written'] == 32 and full['bytes_read'] >= 128 * MiB, full
    # 1% of the volume: 2 MiB in two chunks
    change = [(0x77, '5M', '1M'), (0x78, '100M', '1M')]
    env.write_volume('v', change)
    ref2 = env.make_reference('256M', writes + change)
    take_backed_up(env, 'v', 's2')
    inc = backup_end(env, 'v', 's2')
    assert inc['incremental'], inc
    assert inc['bytes_read'] <= 2 * env.repo.new_chunk_size, inc
    assert inc['chunks_read'] <= 2 and inc['written'] <= 2, inc
    assert inc['copied'] >= chunks_in(env, 256 * MiB) - 4, inc
    check_published(env, 'v', 's2', 256 * MiB)
    assert len(chunk_files(env)) == 34, chunk_files(env)
    view_check(env, 'v', 's2', ref2)
    clone_and_compare(env, 'v', 's2', 'c2', ref2)


def test_identical_volumes_share_chunks(env):
    env.make_volume('v1', '64M', A)
    env.make_volume('v2', '64M', A)
    env.mount(repository='on')
    take_backed_up(env, 'v1', 's')
    n = len(chunk_files(env))
    take_backed_up(env, 'v2', 's')
    assert len(chunk_files(env)) == n == 3
    ev = backup_end(env, 'v2', 's')
    assert ev['written'] == 0 and ev['reused'] == chunks_in(env, 12 * MiB), ev
    assert index_of(env, 'v1', 's')[2] == index_of(env, 'v2', 's')[2]


def test_delete_leaves_others_restorable_and_gc_frees(env):
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    ref_ab = env.make_reference('64M', A + B)
    ref_abc = env.make_reference('64M', A + B + C)
    env.mount(repository='on', keep_primary=1)
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 's2')
    env.write_volume('v', C)
    take_backed_up(env, 'v', 's3')
    only_s1 = set(index_of(env, 'v', 's1')[2]) - \
        set(index_of(env, 'v', 's2')[2]) - \
        set(index_of(env, 'v', 's3')[2]) - {None}
    assert only_s1, 'the test data should give s1 chunks of its own'
    env.no_jobs_left()
    # as if the chunks were written long ago: GC's grace is over for them
    age_chunks(env)
    n = len(env.read_events())
    os.rmdir(env.snap_dir('v', 's1'))
    gc = env.wait_event(lambda e: e['type'] == 'repository.gc', since=n,
                        what='a GC run after the delete')
    assert gc.get('result') == 'ok', gc
    have = set(chunk_files(env))
    assert have == named_chunks(env), (have, named_chunks(env))
    assert not (only_s1 & have)
    # the others restore alone, from secondary storage
    clone_and_compare(env, 'v', 's2', 'c2', ref_ab)
    env.wait_for(lambda: env.info('v', 's2')['on_primary'] is False, 's2 off primary')
    revert(env, 'v', 's2', 'secondary')
    assert qemu_img_compare(ref_ab, env.volume_path('v'), force_share=True) == 0
    view_check(env, 'v', 's3', ref_abc)
    del ref_a


D = [(0xd4, '48M', '4M')]


@pytest.mark.parametrize('kept', ['s1', 's2', 's3'])
def test_every_backup_restores_alone_after_the_others_are_deleted(env, kept):
    """Three backups of one volume with different data (s2 incremental over
    s1, s3 over s2), and a fourth, s4, whose backup releases s3 from primary;
    every backup but @kept is deleted: GC leaves exactly the chunks @kept's
    index names, and @kept restores alone, from secondary storage (a clone,
    and its backed-up/ view)."""
    data = {'s1': A, 's2': A + B, 's3': A + B + C, 's4': A + B + C + D}
    env.make_volume('v', '64M', A)
    ref = env.make_reference('64M', data[kept])
    env.mount(repository='on', keep_primary=1)
    take_backed_up(env, 'v', 's1')
    for snap, writes in (('s2', B), ('s3', C), ('s4', D)):
        env.write_volume('v', writes)
        take_backed_up(env, 'v', snap)
        assert backup_end(env, 'v', snap)['incremental'], backup_end(env, 'v', snap)
    indexes = {snap: set(index_of(env, 'v', snap)[2]) - {None}
               for snap in data}
    assert len({frozenset(i) for i in indexes.values()}) == 4, 'the backups should differ'
    keep_uuid = uuid_of(env, 'v', kept)
    env.wait_for(lambda: env.info('v', kept)['on_primary'] is False,
                 '%s to leave primary storage' % kept)
    env.no_jobs_left()
    age_chunks(env)     # GC's grace is over for every chunk
    n = len(env.read_events())
    for snap in sorted(set(data) - {kept}):
        os.rmdir(env.snap_dir('v', snap))

    def gc_done():
        gcs = [e for e in env.events_since(n) if e['type'] == 'repository.gc']
        assert all(e.get('result') == 'ok' for e in gcs), gcs
        have = set(chunk_files(env))
        # at no moment may a GC remove a chunk the kept index names
        assert indexes[kept] <= have, 'GC removed chunks %s names: %s' % (
            kept, sorted(indexes[kept] - have))
        return gcs and have == indexes[kept]
    env.wait_for(gc_done, 'a GC run that leaves only the chunks of ' + kept, timeout=60)
    env.no_jobs_left()
    assert set(chunk_files(env)) == indexes[kept] == named_chunks(env)
    assert env.repo.listdir('volumes/v') == [keep_uuid + '.index', keep_uuid + '.json']
    assert env.listdir('backed-up', 'volumes', 'v') == [kept + '.json', kept + '.qcow2']
    assert env.snapshots('v') == [kept], env.snapshots('v')
    check_published(env, 'v', kept, 64 * MiB)
    # restored alone: a clone (from secondary storage) and the view
    n = len(env.read_events())
    clone_and_compare(env, 'v', kept, 'restored', ref)
    ends = events_of(env.events_since(n), 'clone.end', 'v', kept)
    assert ends and 'from secondary storage' in ends[-1]['message'], ends
    view_check(env, 'v', kept, ref)


def test_revert_and_clone_from_the_repository(env):
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    env.mount(repository='on', keep_primary=1)
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 's2')
    env.wait_for(lambda: env.info('v', 's1')['on_primary'] is False,
                 's1 to leave primary storage', timeout=30)
    env.write_volume('v', C)
    revert(env, 'v', 's1', 'secondary')
    assert qemu_img_compare(ref_a, env.volume_path('v'), force_share=True) == 0
    assert env.primary_tmp_files() == []
    clone_and_compare(env, 'v', 's1', 'c1', ref_a)
    # the reverted volume backs up again, in full (its base is gone from primary)
    env.write_volume('v', C)
    ref_ac = env.make_reference('64M', A + C)
    take_backed_up(env, 'v', 's3')
    clone_and_compare(env, 'v', 's3', 'c3', ref_ac)


def kill_mid_backup(env, point):
    env.make_volume('v', '64M', A)
    ref_a = env.make_reference('64M', A)
    env.mount_hanging(point, repository='on', workers=1)
    env.take('v', 's1')
    env.wait_testpoint(point)
    env.kill9()
    env.mount()
    env.wait_state('v', 's1', 'BackedUp', timeout=60)
    check_published(env, 'v', 's1', 64 * MiB)
    assert not [n for n in env.repo.listdir('volumes/v')
                if n.startswith('.') and n.endswith('.tmp')]
    env.write_volume('v', B)
    take_backed_up(env, 'v', 's2')
    env.wait_for(lambda: env.info('v', 's1')['on_primary'] is False, 's1 off primary')
    clone_and_compare(env, 'v', 's1', 'c1', ref_a)


def test_kill9_after_chunks_written(env):
    kill_mid_backup(env, 'backup.repo.chunks_written')


def test_kill9_after_index_written(env):
    kill_mid_backup(env, 'backup.repo.index_written')


def test_damaged_chunk_fails_the_restore_with_eio(env):
    s1_only_in_the_repository(env)
    only_s1 = sorted(set(index_of(env, 'v', 's1')[2]) -
                     set(index_of(env, 'v', 's2')[2]) - {None})
    env.repo.patch(chunk_name(only_s1[0]), 100, b'\xff\x00\xff')
    n = len(env.read_events())
    try:
        env.control('v', 'revert s1')
        raise AssertionError('a revert from a damaged chunk succeeded')
    except OSError as e:
        assert e.errno == errno.EIO, e
    new = env.events_since(n)
    damaged = [e for e in new if e['type'] == 'repository.damaged']
    assert damaged and only_s1[0] in damaged[0]['message'], new
    assert damaged[0].get('errno') in ('EIO', errno.EIO), damaged[0]
    # the view serves what it can, and EIO where the chunk is damaged
    try:
        with open(env.backup_file('v', 's1'), 'rb') as f:
            while f.read(1 << 20):
                pass
        raise AssertionError('read the whole view over a damaged chunk')
    except OSError as e:
        assert e.errno == errno.EIO, e
    # s2 names no damaged chunk: it still restores
    ref_ab = env.make_reference('64M', A + B)
    clone_and_compare(env, 'v', 's2', 'c2', ref_ab)


@pytest.mark.posix_only('the fault point is the POSIX directory fsync')
def test_a_failed_index_publish_leaves_no_index(env):
    """The index's directory fsync fails after its rename: the backup is
    BackupFailed and the index is not left under its name (found by the
    fault walk once the lease's fault point moved the walk's numbering);
    a retry publishes it."""
    env.make_volume('v', '16M', [(0x11, 0, '1M')])
    os.environ['SNAPFS_FAULT_POINT'] = 'index.fsync_dir'
    try:
        env.mount(workers=1, retries=0)
    finally:
        del os.environ['SNAPFS_FAULT_POINT']
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackupFailed', fail_fast=False)
    assert glob.glob(os.path.join(env.secondary, 'volumes', 'v', '*')) == []
    env.control('v', 'retry s1')
    env.wait_state('v', 's1', 'BackedUp')
    check_published(env, 'v', 's1', 16 * MiB)
