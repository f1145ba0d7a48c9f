"""rsync, tar, restic and borg reading backed-up/ of a real mount, as
docs/backup-tools.md tells: a first run reads every backup; a second run,
after a remount, re-reads nothing (by each tool's own statistics); a
restore gives back images with the data of the snapshots (qemu-img compare
against reference images) and manifests whose checksum matches; pointed at
the whole mount, tar, restic and borg skip the live views that carry a
CACHEDIR.TAG (--exclude-caches), and rsync does with its filter.

Every test runs twice: with the default (repository=off: the views are the
qcow2 files on secondary storage) and with -o repository=on (the views are
qcow2 files synthesized from the backups' indexes, docs/repository.md).  In
both, the daemon's own read count (/proc/<pid>/io rchar) across the second
run stays far below one chunk: the tools' statistics are not the only
witness that nothing was read again."""

import contextlib
import json
import os
import re

import pytest

from repo_backend import POSIX_CHUNK
from snapfs_harness import MiB, qemu_img_compare, run, xxh128

# the backups every test makes: (volume, snapshot) -> data written by then
WEB1 = [(0x61, 0, '6M')]
WEB2 = WEB1 + [(0x62, '20M', '4M')]
DB1 = [(0x71, 0, '3M')]
BACKUPS = {('web', 's1'): ('32M', WEB1), ('web', 's2'): ('32M', WEB2),
           ('db', 's1'): ('16M', DB1)}
FILES = sorted('volumes/%s/%s.%s' % (v, s, ext) for v, s in BACKUPS for ext in ('qcow2', 'json'))
LIVE_VIEWS = ('volumes', 'vms', 'jobs', 'alerts', 'policies')
CHUNK = POSIX_CHUNK  # the repository's chunk size (docs/repository.md)
# what the daemon may read during a second run: requests from /dev/fuse,
# the catalog, manifests; a view read again costs at least a chunk (or, with
# repository=off, a whole qcow2 file of several MiB)
SECOND_RUN_RCHAR = CHUNK // 2


@pytest.fixture(autouse=True, params=['off', 'on'], ids=['repository=off', 'repository=on'])
def repository(request, env):
    """Each test once with repository=off and once with -o repository=on;
    mount() and remount() remember the option.  Both are pinned, so that
    SNAPFS_TEST_REPOSITORY does not turn the off run into a second on run."""
    env.options['repository'] = request.param
    return request.param


def repository_on(env):
    return env.repository_mode() == 'on'


def live_views(env):
    """The views that carry a CACHEDIR.TAG: images/ too with repository=on."""
    return LIVE_VIEWS + (('images',) if repository_on(env) else ())


def daemon_rchar(env):
    """Bytes the snapfs daemon has read so far (all its threads), by the kernel's count."""
    with open('/proc/%d/io' % env.proc.pid) as f:
        for line in f:
            if line.startswith('rchar:'):
                return int(line.split()[1])
    raise AssertionError('no rchar in /proc/%d/io' % env.proc.pid)


@contextlib.contextmanager
def daemon_reads_nothing(env, what):
    """The daemon reads (far) less than one chunk during the with block: no
    view is served again, whatever the tool's statistics say."""
    before = daemon_rchar(env)
    yield
    read = daemon_rchar(env) - before
    assert read < SECOND_RUN_RCHAR, \
        'the daemon read %d bytes during %s: views were read again' % (read, what)


def make_backups(env):
    """Two volumes, three snapshots backed up; {(vol, snap): reference image}."""
    env.make_volume('web', '32M', WEB1)
    env.make_volume('db', '16M', DB1)
    env.mount(workers=2)
    env.take('web', 's1')
    env.write_volume('web', [(0x62, '20M', '4M')])
    env.take('web', 's2')
    env.take('db', 's1')
    for vol, snap in BACKUPS:
        env.wait_state(vol, snap, 'BackedUp')
    return {key: env.make_reference(size, data) for key, (size, data) in BACKUPS.items()}


def files_under(top):
    """Paths of the regular files under @top, relative to it."""
    found = []
    for dirpath, _, names in os.walk(top):
        found += [os.path.relpath(os.path.join(dirpath, n), top) for n in names]
    return sorted(found)


def check_restored(env, refs, top):
    """@top is a restored backed-up/: every image holds its snapshot's data,
    every manifest is the mount's; with repository=off it names the image's
    xxh128, with repository=on the backup's index (whose SHA-256 the catalog
    records as the checksum: the synthesized image has no checksum of its own)."""
    assert files_under(top) == FILES, files_under(top)
    for (vol, snap), ref in refs.items():
        img = os.path.join(top, 'volumes', vol, snap + '.qcow2')
        assert qemu_img_compare(ref, img) == 0, 'restored %s/%s differs' % (vol, snap)
        with open(os.path.join(top, 'volumes', vol, snap + '.json')) as f:
            manifest = json.load(f)
        assert manifest == env.manifest(vol, snap)
        if not repository_on(env):
            assert manifest['format'] == 'qcow2', manifest
            assert manifest['checksum'] == 'xxh128:' + xxh128(img)
            continue
        info = env.info(vol, snap)
        assert manifest['format'] == 'index' and 'checksum' not in manifest, manifest
        assert manifest['index'] == info['uuid'] + '.index', manifest
        assert info['checksum'] == 'sha256:' + manifest['index_sha256'], (info, manifest)
        with open(os.path.join(env.secondary, 'volumes', vol, manifest['index']), 'rb') as f:
            assert f.read()[-32:].hex() == manifest['index_sha256'], manifest


def stat_line(text, pattern):
    """The integer that @pattern's group 1 finds in @text (commas allowed)."""
    m = re.search(pattern, text)
    assert m, 'no %r in:\n%s' % (pattern, text)
    return int(m.group(1).replace(',', ''))


# ---- rsync -----------------------------------------------------------------------

def rsync(env, src, dest, *extra):
    out = run(['rsync', '-a', '--stats'] + list(extra) + [src, dest], timeout=300).stdout
    return stat_line(out, r'Number of regular files transferred: ([\d,]+)'), out


def dir_times(env):
    """{directory under backed-up/: (st_ino, st_mtime_ns)}."""
    top = env.p('backed-up')
    return {os.path.relpath(d, top): (os.stat(d).st_ino, os.stat(d).st_mtime_ns)
            for d, _, _ in os.walk(top)}


def test_rsync(env):
    refs = make_backups(env)
    dest = os.path.join(env.scratch, 'rsync')
    copied, _ = rsync(env, env.p('backed-up') + '/', dest + '/')
    assert copied == len(FILES)
    before = dir_times(env)
    env.remount(workers=2)
    # directories too look the same after a remount (their times are those
    # of their directories on secondary storage, not the mount's)
    assert dir_times(env) == before
    with daemon_reads_nothing(env, 'the second rsync'):
        copied, out = rsync(env, env.p('backed-up') + '/', dest + '/')
    assert copied == 0, 'the second rsync copied files again:\n' + out
    assert stat_line(out, r'Total transferred file size: ([\d,]+) bytes') == 0
    check_restored(env, refs, dest)     # the copy is the restore

    # the whole mount: only backed-up/ passes the filter
    whole = os.path.join(env.scratch, 'rsync-whole')
    copied, _ = rsync(env, env.mnt + '/', whole + '/',
                      '--include=/backed-up/***', '--exclude=*')
    assert copied == len(FILES)
    assert os.listdir(whole) == ['backed-up']
    assert files_under(os.path.join(whole, 'backed-up')) == FILES


# ---- tar -------------------------------------------------------------------------

def tar_create(env, archive, snar, *extra):
    """A GNU tar incremental archive of backed-up/; tar's --totals line."""
    proc = run(['tar', '--create', '--file', archive, '--listed-incremental', snar,
                '--no-check-device', '--totals'] + list(extra) +
               ['-C', env.mnt, 'backed-up'], timeout=300)
    return proc.stderr


def tar_members(archive, incremental=True):
    """{name: type letter} of the archive's members."""
    argv = ['tar', '--list', '--verbose', '--file', archive]
    if incremental:
        argv.insert(1, '--incremental')
    members = {}
    for line in run(argv).stdout.splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6:
            members[fields[5].split(' -> ')[0].rstrip('/')] = line[0]
    return members


def test_tar(env):
    refs = make_backups(env)
    snar0 = os.path.join(env.scratch, 'backed-up.snar')   # tar keeps it up to date
    level0 = os.path.join(env.scratch, 'level0.tar')
    totals0 = tar_create(env, level0, snar0)
    files0 = {n for n, t in tar_members(level0).items() if t == '-'}
    assert files0 == {'backed-up/' + f for f in FILES}, files0

    # the next run, same snapshot file, after a remount (maybe another
    # device number: hence --no-check-device): directories only, no file
    env.remount(workers=2)
    level1 = os.path.join(env.scratch, 'level1.tar')
    with daemon_reads_nothing(env, 'the level 1 tar'):
        totals1 = tar_create(env, level1, snar0)
    members1 = tar_members(level1)
    assert members1 and set(members1.values()) == {'d'}, \
        'the level 1 archive holds files again: %s' % members1
    written0 = stat_line(totals0, r'Total bytes written: (\d+)')
    written1 = stat_line(totals1, r'Total bytes written: (\d+)')
    assert written1 <= 20480 < written0, (totals0, totals1)

    # restore: level 0, then level 1
    restore = os.path.join(env.scratch, 'tar-restore')
    os.makedirs(restore)
    for archive in (level0, level1):
        run(['tar', '--extract', '--listed-incremental=/dev/null', '--file', archive,
             '-C', restore], timeout=300)
    check_restored(env, refs, os.path.join(restore, 'backed-up'))

    # the whole mount: the live views leave only their tag
    whole = os.path.join(env.scratch, 'whole.tar')
    run(['tar', '--create', '--exclude-caches', '--file', whole, '-C', env.mnt, '.'],
        timeout=300)
    members = tar_members(whole, incremental=False)
    for view in live_views(env):
        inside = sorted(n for n in members if n.startswith('./%s/' % view))
        assert inside == ['./%s/CACHEDIR.TAG' % view], inside
    assert {'./backed-up/' + f for f in FILES} <= set(members)


# ---- restic ----------------------------------------------------------------------

def restic(env, *args, cwd=None, timeout=300):
    repo = os.path.join(env.scratch, 'restic')
    renv = dict(os.environ, RESTIC_REPOSITORY=repo, RESTIC_PASSWORD='snapfs-test',
                RESTIC_CACHE_DIR=os.path.join(env.scratch, 'restic-cache'))
    return run(['restic'] + list(args), env=renv, cwd=cwd, timeout=timeout)


def restic_backup(env, *args, cwd=None):
    """`restic backup --json ...`: its summary object."""
    out = restic(env, 'backup', '--json', *args, cwd=cwd).stdout
    summaries = [json.loads(line) for line in out.splitlines()
                 if line.startswith('{') and '"summary"' in line]
    assert len(summaries) == 1, out
    return summaries[0]


def test_restic(env):
    refs = make_backups(env)
    restic(env, 'init')
    # from inside backed-up/: the snapshot holds its content only, not the
    # directories above it (the mount's root has the mount's time)
    top = env.p('backed-up')
    first = restic_backup(env, '.', cwd=top)
    assert first['files_new'] == len(FILES) and first['data_added'] > 0, first

    dev = os.stat(top).st_dev
    env.remount(workers=2)
    with daemon_reads_nothing(env, 'the second restic backup'):
        second = restic_backup(env, '.', cwd=top)
    assert (second['files_new'], second['files_changed'], second['files_unmodified'],
            second['data_blobs']) == (0, 0, len(FILES), 0), second
    # directories keep their times across remounts, but restic 0.14 also
    # stores their device number, which a new mount may not get again: then
    # a few KiB of directory metadata, never file data
    if os.stat(top).st_dev == dev:
        assert (second['dirs_changed'], second['data_added']) == (0, 0), second
    else:
        assert second['data_added'] < 16384, second
    # the text form, as docs/backup-tools.md quotes it
    out = restic(env, 'backup', '.', cwd=top).stdout
    assert re.search(r'Files:\s+0 new,\s+0 changed,\s+%d unmodified' % len(FILES), out), out
    assert 'Added to the repository: 0 B' in out, out

    restore = os.path.join(env.scratch, 'restic-restore')
    restic(env, 'restore', 'latest', '--target', restore)
    check_restored(env, refs, restore)

    # the whole mount: the live views are skipped, backed-up/ is all there
    restic_backup(env, '--exclude-caches', env.mnt)
    listed = restic(env, 'ls', 'latest').stdout.splitlines()
    rel = sorted(os.path.relpath(p, env.mnt) for p in listed if p.startswith(env.mnt + '/'))
    for view in live_views(env):
        assert not [p for p in rel if p.startswith(view + '/')], rel
    assert {'backed-up/' + f for f in FILES} <= set(rel), rel


# ---- borg ------------------------------------------------------------------------

def borg(env, *args, cwd=None, timeout=300):
    benv = dict(os.environ, BORG_BASE_DIR=os.path.join(env.scratch, 'borg-home'),
                BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK='yes')
    benv.pop('BORG_REPO', None)
    return run(['borg'] + list(args), env=benv, cwd=cwd, timeout=timeout)


def borg_create(env, archive, *paths, options=()):
    """borg create --json --stats, run in the mount: (stats, {path: status})."""
    repo = os.path.join(env.scratch, 'borg')
    proc = borg(env, 'create', '--json', '--stats', '--log-json', '--list', *options,
                '%s::%s' % (repo, archive), *paths, cwd=env.mnt)
    stats = json.loads(proc.stdout)['archive']['stats']
    status = {}
    for line in proc.stderr.splitlines():
        if line.startswith('{'):
            msg = json.loads(line)
            if msg.get('type') == 'file_status':
                status[msg['path']] = msg['status']
    return stats, status


def test_borg(env):
    refs = make_backups(env)
    borg(env, 'init', '--encryption=none', os.path.join(env.scratch, 'borg'))
    stats, status = borg_create(env, 'first', 'backed-up')
    files = {'backed-up/' + f for f in FILES}
    assert {p for p, s in status.items() if s == 'A'} == files, status
    assert stats['nfiles'] == len(FILES)

    env.remount(workers=2)
    with daemon_reads_nothing(env, 'the second borg create'):
        stats, status = borg_create(env, 'second', 'backed-up')
    assert stats['nfiles'] == len(FILES)
    read_again = {p for p, s in status.items() if s != 'd' and s != 'U'}
    # borg never trusts its files cache for the newest files of a run (its
    # guard against timestamp granularity): the last manifests written, a
    # few hundred bytes each; every image is U (unchanged)
    ctimes = {p: os.stat(os.path.join(env.mnt, p)).st_ctime_ns for p in files}
    newest = {p for p in files if ctimes[p] == max(ctimes.values())}
    assert read_again <= newest and all(p.endswith('.json') for p in newest), \
        (newest, status)
    assert all(status[p] == 'U' for p in files if p.endswith('.qcow2')), status
    assert stats['deduplicated_size'] < 4096 < stats['original_size'], stats

    restore = os.path.join(env.scratch, 'borg-restore')
    os.makedirs(restore)
    borg(env, 'extract', '%s::second' % os.path.join(env.scratch, 'borg'), cwd=restore)
    check_restored(env, refs, os.path.join(restore, 'backed-up'))

    # the whole mount: the live views are skipped (x), backed-up/ is there
    _, status = borg_create(env, 'whole', '.', options=['--exclude-caches'])
    for view in live_views(env):
        assert status.get(view) == 'x', status
        assert not [p for p in status if p.startswith(view + '/')], status
    assert files <= set(status), status
