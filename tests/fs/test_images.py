"""images/volumes/<vol>/<snap>.raw (-o repository=on): the raw point-in-time
view of each repository backup.  Listed with its volume; the virtual size,
a stable inode and mtime; qemu-img compare -f raw finds it equal to the
snapshot; SEEK_DATA/SEEK_HOLE agree with the index; an ext4 made inside a
volume mounts from it (-o loop,ro) and a file reads back; CACHEDIR.TAG
carries the standard signature; a damaged chunk is EIO and an event."""

import errno
import os
import shutil
import subprocess
import tempfile

from repo_backend import POSIX_CHUNK
from snapfs_harness import MiB, parse_size, run
from test_repository import A, B, index_path, read_index, take_backed_up

SIGNATURE = b'Signature: 8a477f597d28d172789f06886806bc55'


def raw_path(env, vol, snap):
    return env.p('images', 'volumes', vol, snap + '.raw')


def compare_raw(view, reference):
    proc = run(['qemu-img', 'compare', '-f', 'raw', '-F', 'qcow2', view, reference],
               timeout=300, check=False)
    assert proc.returncode == 0, 'qemu-img compare: %d %s%s' % (
        proc.returncode, proc.stdout, proc.stderr)


def extents_by_seek(path):
    """[(start, end) of data] by SEEK_DATA/SEEK_HOLE, from offset 0."""
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                assert e.errno == errno.ENXIO, e
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            assert start < end <= size, (start, end, size)
            out.append((start, end))
            off = end
        # past the end: ENXIO for both
        for whence in (os.SEEK_DATA, os.SEEK_HOLE):
            try:
                os.lseek(fd, size, whence)
                raise AssertionError('lseek past the end succeeded')
            except OSError as e:
                assert e.errno == errno.ENXIO, e
    finally:
        os.close(fd)
    return out


def chunk_extents(writes, chunk):
    """The data extents an index of @chunk-byte chunks gives @writes: each
    write widened to whole chunks, what touches merged."""
    spans = sorted((parse_size(o) // chunk * chunk,
                    -(-(parse_size(o) + parse_size(n)) // chunk) * chunk)
                   for _, o, n in writes)
    out = []
    for a, b in spans:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def extents_of_index(path):
    chunk_size, vsize, entries = read_index(path)
    out = []
    for i, d in enumerate(entries):
        if not d:
            continue
        start, end = i * chunk_size, min((i + 1) * chunk_size, vsize)
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


# ---- the tests ------------------------------------------------------------------------

def test_listing_size_content_and_stability(env):
    env.make_volume('v', '64M', A)
    env.mount(repository='on')
    assert 'images' in os.listdir(env.mnt)
    take_backed_up(env, 'v', 's1')
    assert os.listdir(env.p('images')) == ['volumes']
    assert os.listdir(env.p('images', 'volumes')) == ['v']
    assert os.listdir(env.p('images', 'volumes', 'v')) == ['s1.raw']
    view = raw_path(env, 'v', 's1')
    st = os.stat(view)
    assert st.st_size == 64 * MiB, st
    assert st.st_mode & 0o777 == 0o440 or st.st_mode & 0o777 == 0o444, oct(st.st_mode)
    # three data chunks of 4 MiB, the rest holes
    assert st.st_blocks * 512 == 12 * MiB, st
    # backed_up_at, as the synthesized qcow2 of backed-up/ says
    assert st.st_mtime == os.stat(env.backup_file('v', 's1')).st_mtime, st
    compare_raw(view, env.make_reference('64M', A))
    with open(view, 'rb') as f:
        f.seek(40 * MiB)
        assert f.read(4096) == bytes([0xa2]) * 4096
        f.seek(20 * MiB)
        assert f.read(4096) == bytes(4096)
    # read-only, like backed-up/
    for fn in (lambda: open(view, 'r+b'), lambda: os.unlink(view),
               lambda: os.mkdir(env.p('images', 'volumes', 'x'))):
        try:
            fn()
            raise AssertionError('a write under images/ succeeded')
        except OSError as e:
            assert e.errno == errno.EROFS, e
    rejected = [e for e in env.read_events() if e['type'] == 'rejected' and
                'images/ is read-only' in e.get('message', '')]
    assert rejected, env.read_events()[-5:]
    # a second backup appears beside it; inode, size, mtime stable across remounts
    env.write_volume('v', B)
    take_backed_up(env, 'v', 's2')
    assert sorted(os.listdir(env.p('images', 'volumes', 'v'))) == ['s1.raw', 's2.raw']
    before = {n: os.stat(raw_path(env, 'v', n)) for n in ('s1', 's2')}
    env.remount()
    for n, b in before.items():
        a = os.stat(raw_path(env, 'v', n))
        assert (a.st_ino, a.st_size, a.st_mtime, a.st_blocks) == \
            (b.st_ino, b.st_size, b.st_mtime, b.st_blocks), (n, a, b)
    compare_raw(raw_path(env, 'v', 's2'), env.make_reference('64M', A + B))


def test_no_images_without_repository(env):
    env.make_volume('v', '16M', [(0x11, 0, '1M')])
    env.mount(repository='off')  # about repository=off: pinned
    take_backed_up(env, 'v', 's1')
    assert 'images' not in os.listdir(env.mnt)
    assert not os.path.exists(env.p('images'))
    assert not os.path.exists(env.p('images', 'CACHEDIR.TAG'))


def test_seek_data_and_hole_agree_with_the_index(env):
    # data at 0-8M, 40-44M and 60-61M, widened to whole chunks; holes
    # between
    writes = A + [(0xb3, '60M', '1M'), (0x55, '5M', '64k')]
    env.make_volume('v', '64M', writes)
    env.mount(repository='on')
    take_backed_up(env, 'v', 's1')
    view = raw_path(env, 'v', 's1')
    want = extents_of_index(index_path(env, 'v', 's1'))
    assert want == chunk_extents(writes, POSIX_CHUNK), want
    assert want[:2] == [(0, 8 * MiB), (40 * MiB, 44 * MiB)], want
    assert extents_by_seek(view) == want
    fd = os.open(view, os.O_RDONLY)
    try:
        # from inside a hole and inside data
        assert os.lseek(fd, 9 * MiB, os.SEEK_DATA) == 40 * MiB
        assert os.lseek(fd, 41 * MiB, os.SEEK_DATA) == 41 * MiB
        assert os.lseek(fd, 41 * MiB, os.SEEK_HOLE) == 44 * MiB
        assert os.lseek(fd, 20 * MiB, os.SEEK_HOLE) == 20 * MiB
    finally:
        os.close(fd)
    # a sparse-aware copy skips the holes and still equals the snapshot
    copy = os.path.join(env.scratch, 'copy.raw')
    run(['cp', '--sparse=always', view, copy])
    data = sum(b - a for a, b in want)
    assert os.stat(copy).st_blocks * 512 <= data + MiB, os.stat(copy)
    compare_raw(copy, env.make_reference('64M', writes))


def test_cachedir_tag(env):
    env.make_volume('v', '16M')
    env.mount(repository='on')
    tag = env.p('images', 'CACHEDIR.TAG')
    with open(tag, 'rb') as f:
        data = f.read()
    assert data.startswith(SIGNATURE + b'\n'), data
    assert 'CACHEDIR.TAG' not in os.listdir(env.p('images'))
    try:
        open(tag, 'wb')
        raise AssertionError('wrote the tag')
    except OSError as e:
        assert e.errno == errno.EROFS, e


def loop_available():
    """Why loop devices cannot be used here, or None."""
    if shutil.which('losetup') is None:
        return 'losetup is not installed'
    proc = subprocess.run(['losetup', '-f'], capture_output=True, text=True)
    if proc.returncode != 0:
        return 'no free loop device (losetup -f: %s)' % proc.stderr.strip()
    return None


def test_single_file_restore_through_a_loop_mount(env):
    why = loop_available()
    assert why is None, 'this test needs loop devices (modprobe loop; ' \
        'a container needs /dev/loop*): ' + why
    assert shutil.which('mkfs.ext4'), 'this test needs mkfs.ext4 (e2fsprogs)'
    tree = os.path.join(env.scratch, 'tree')
    os.makedirs(os.path.join(tree, 'etc'))
    payload = os.urandom(3 * MiB + 123)
    with open(os.path.join(tree, 'etc', 'config.bin'), 'wb') as f:
        f.write(payload)
    with open(os.path.join(tree, 'hello.txt'), 'w') as f:
        f.write('hello from the backup\n')
    raw = os.path.join(env.scratch, 'fs.raw')
    run(['truncate', '-s', '64M', raw])
    run(['mkfs.ext4', '-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0',
         '-d', tree, raw])
    os.makedirs(env.primary, exist_ok=True)
    run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, env.volume_path('fsvol')])
    env.mount(repository='on')
    take_backed_up(env, 'fsvol', 's1')
    # later changes to the volume do not reach the backup
    env.write_volume('fsvol', [(0x00, 0, '16M')])
    view = raw_path(env, 'fsvol', 's1')
    where = tempfile.mkdtemp(dir=env.scratch)
    mounted = False
    try:
        proc = run(['mount', '-t', 'ext4', '-o', 'loop,ro,noload', view, where], check=False)
        assert proc.returncode == 0, 'mount -o loop,ro of the raw view failed: ' + \
            proc.stdout + proc.stderr
        mounted = True
        with open(os.path.join(where, 'hello.txt')) as f:
            assert f.read() == 'hello from the backup\n'
        restored = os.path.join(env.scratch, 'config.bin')
        shutil.copyfile(os.path.join(where, 'etc', 'config.bin'), restored)
        with open(restored, 'rb') as f:
            assert f.read() == payload
    finally:
        if mounted:
            subprocess.run(['umount', where], check=False)
            if os.path.ismount(where):
                subprocess.run(['umount', '-l', where], check=False)


def test_damaged_chunk_is_eio_and_an_event(env):
    env.make_volume('v', '64M', A)
    env.mount(repository='on')
    take_backed_up(env, 'v', 's1')
    _, _, entries = read_index(index_path(env, 'v', 's1'))
    victim = entries[40 * MiB // POSIX_CHUNK]    # at 40M, 0xa2
    assert victim
    path = os.path.join(env.secondary, '.chunks', victim[:2], victim)
    with open(path, 'r+b') as f:
        f.seek(100)
        f.write(b'\xff\x00\xff')
    n = len(env.read_events())
    with open(raw_path(env, 'v', 's1'), 'rb') as f:
        assert f.read(4096) == bytes([0xa1]) * 4096    # a sound chunk reads
        f.seek(40 * MiB)
        try:
            f.read(4096)
            raise AssertionError('read a damaged chunk')
        except OSError as e:
            assert e.errno == errno.EIO, e
    damaged = [e for e in env.events_since(n) if e['type'] == 'repository.damaged']
    assert damaged and victim in damaged[0]['message'], env.events_since(n)
    assert damaged[0].get('errno') in ('EIO', errno.EIO), damaged[0]
