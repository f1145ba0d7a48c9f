"""Fault injection: make the Nth failure point of a run fail, for N = 1, 2,
... until a run passes every point without a fault (engine/fault.c:
SNAPFS_FAULT_AT=N; failure points are catalog transactions and writes,
subprocess starts and exits, renames, fsyncs and libvirt calls).

Each run starts from a fresh state directory and does the same work with
one worker: two snapshots and their backups, a clone, a revert, a delete
and a policy run.  Whatever the fault broke, the operation must fail with
an errno and an event (never hang, never crash the daemon); and after a
clean remount (recovery) the catalog and storage must agree: integrity
check ok, nothing in a transitional state, every BackedUp snapshot's
backup complete and holding its data, no partial or orphan files, every
volume a sound qcow2.

CI walks every SNAPFS_FAULT_STRIDE-th point (default 8, under a minute; the
ASan run of tools/sanitize.sh --ci every 16th from the 3rd);
SNAPFS_FAULT_STRIDE=1 walks them all (SNAPFS_FAULT_START=N begins at N).  The summary line is
`faults: N runs, F faults injected, V violations`."""

import errno
import glob
import os
import re
import sqlite3

import snapfs_harness as H
from snapfs_harness import (qemu_img_compare, qemu_img_info, report_line, run,
                            snapfs_env)

A = [(0xa1, 0, '4M'), (0xa2, '8M', '2M')]
B = [(0xb1, 0, '6M')]   # covers s1's 0xa1 chunks: GC has one to remove at every chunk size
STRIDE = int(os.environ.get('SNAPFS_FAULT_STRIDE', '8'))
START = int(os.environ.get('SNAPFS_FAULT_START', '1'))
MAX_POINTS = 2000
ALLOWED = {0, errno.EIO, errno.EAGAIN, errno.ENOENT, errno.EBUSY, errno.EEXIST}


def attempt(fn, *args):
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


def fired(env):
    text = env.log_text()
    m = re.search(r'fault: point (\d+) \((\S+)\) fails', text)
    return m.group(2) if m else None


def settle(env, what):
    """Wait until jobs/ is empty; jobs waiting for a retry (a failed copy, a
    job that could not record its end) get their time on the test clock."""
    def done():
        jobs = env.jobs()
        if jobs and all(j.get('state') == 'waiting' for j in jobs):
            env.set_clock(env.clock() + 3600)
        return jobs == []
    env.wait_for(done, what, timeout=120)


def scenario(env, refs):
    """The work, under a fault; returns {operation: errno}."""
    out = {}
    out['mkdir s1'] = attempt(env.take, 'v', 's1')
    env.write_volume('v', B)
    out['mkdir s2'] = attempt(env.take, 'v', 's2')
    settle(env, 'jobs to end')
    out['clone'] = attempt(env.control, 'v', 'clone s1 c1')
    settle(env, 'the clone to end')
    out['revert'] = attempt(env.control, 'v', 'revert s1')
    out['rmdir s2'] = attempt(os.rmdir, env.snap_dir('v', 's2'))
    out['policy'] = attempt(env.write_file, env.p('policies', 'p'),
                            'target=volume:v schedule=daily keep=1 tz=UTC\n')
    t = env.clock()
    env.set_clock(t - t % 86400 + 86400 + 60)
    settle(env, 'the policy run to end')
    return out


def violations(env, refs, results):
    """What is wrong after recovery (the daemon unmounted)."""
    bad = []
    for op, err in results.items():
        if err not in ALLOWED:
            bad.append('%s failed with %s' % (op, errno.errorcode.get(err, err)))
    db = sqlite3.connect('file:%s?mode=ro' % os.path.join(env.source, 'catalog.db'),
                         uri=True)
    try:
        if db.execute('PRAGMA integrity_check').fetchone()[0] != 'ok':
            bad.append('catalog integrity_check failed')
        for name, state in db.execute('SELECT name, state FROM snapshots'):
            if state in (0, 4):
                bad.append('snapshot %s left in state %d' % (name, state))
        # (a job may be `running` in the catalog after the unmount: a job
        # that started after the last look at jobs/ was cancelled by the
        # unmount and is queued again at the next start, by design)
        for uuid, state in db.execute('SELECT uuid, state FROM layers'):
            if state != 1:
                bad.append('layer %s left in state %d' % (uuid, state))
        layers = {u for (u,) in db.execute('SELECT uuid FROM layers')}
        backed = list(db.execute(
            'SELECT s.name, s.uuid FROM snapshots s WHERE s.state = 2'))
    finally:
        db.close()
    files = {os.path.basename(p)[:-len('.qcow2')]
             for p in glob.glob(os.path.join(env.primary, '.snapfs', 'v', '*.qcow2'))}
    if files != layers:
        bad.append('layers: catalog %s, files %s' % (sorted(layers), sorted(files)))
    for d in (os.path.join(env.primary, '.snapfs', '.tmp'), os.path.join(env.secondary, '.tmp')):
        if os.path.isdir(d) and os.listdir(d):
            bad.append('%s not empty: %s' % (d, os.listdir(d)))
    known = set()
    if env.repository_mode() == 'on':
        return bad + repository_violations(env, refs, backed)
    for name, uuid in backed:
        img = os.path.join(env.secondary, 'volumes', 'v', uuid + '.qcow2')
        known.update({uuid + '.qcow2', uuid + '.json'})
        if not os.path.exists(img) or not os.path.exists(img[:-6] + '.json'):
            bad.append('BackedUp %s without its files' % name)
            continue
        if run(['qemu-img', 'check', '-q', img], check=False).returncode != 0:
            bad.append('backup of %s fails qemu-img check' % name)
        if name in refs and qemu_img_compare(refs[name], img) != 0:
            bad.append('backup of %s holds other data' % name)
    return bad + unknown_and_primary_problems(env, known)


def unknown_and_primary_problems(env, known):
    """The end of violations() in either mode: SECONDARY/volumes/v holds
    only the files @known, and every primary volume passes qemu-img check
    (the clone c1 with no backing file)."""
    bad = []
    vdir = os.path.join(env.secondary, 'volumes', 'v')
    if os.path.isdir(vdir):
        extra = set(os.listdir(vdir)) - known
        if extra:
            bad.append('files in secondary the catalog does not know: %s' % sorted(extra))
    for img in glob.glob(os.path.join(env.primary, '*.qcow2')):
        if run(['qemu-img', 'check', '-q', '-U', img], check=False).returncode != 0:
            bad.append('%s fails qemu-img check' % os.path.basename(img))
        if 'backing-filename' in qemu_img_info(img, force_share=True) and \
                os.path.basename(img) == 'c1.qcow2':
            bad.append('the clone has a backing file')
    return bad


def repository_violations(env, refs, backed):
    """The end of violations() with repository=on (the daemon unmounted):
    each BackedUp snapshot's index and manifest are sound and every chunk
    they name exists (H.index_problems()), the volume's data rebuilt from
    the chunks is the snapshot's, SECONDARY/volumes/v holds nothing else,
    and the primary volumes pass qemu-img check."""
    bad = []
    known = set()
    for name, uuid in backed:
        known.update({uuid + '.index', uuid + '.json'})
        found = H.index_problems(env, 'v', uuid, name=name)
        bad += ['BackedUp %s: %s' % (name, f) for f in found]
        if not found and name in refs:
            raw = os.path.join(env.scratch, uuid + '.raw')
            H.index_to_raw(env, 'v', uuid, raw)
            proc = run(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'raw', refs[name], raw],
                       check=False, timeout=300)
            os.unlink(raw)
            if proc.returncode != 0:
                bad.append('backup of %s holds other data (%d)' % (name, proc.returncode))
    return bad + unknown_and_primary_problems(env, known)


def mount_refused(env, **options):
    """Mount with @options; True when a failure point refused the mount
    instead.  With repository=on the mount itself writes (the catalog's
    identity, repository.json, .chunks/, the fsync of SECONDARY): a point
    failing there refuses the mount, a clear state, and the recovery
    after it must mount and leave everything sound.  With repository=off
    the mount writes nothing a point can fail: still an error."""
    try:
        env.mount(**options)
    except AssertionError:
        if env.repository_mode() != 'on' or not fired(env):
            raise
        env.proc = None
        return True
    return False


def one_run(n, refs):
    """Run the scenario with point @n failing; (fired point or None, violations)."""
    with snapfs_env('fault%d' % n) as env:
        env.make_volume('v', '16M', A)
        refs = dict(refs, s1=env.make_reference('16M', A),
                    s2=env.make_reference('16M', A + B))
        os.environ['SNAPFS_FAULT_AT'] = str(n)
        try:
            results = {'mount': errno.EIO} if mount_refused(env, workers=1, retries=0) \
                else None
        finally:
            del os.environ['SNAPFS_FAULT_AT']
        if results is None:
            results = scenario(env, refs)
        point = fired(env)
        if point and 'mount' not in results:
            evs = env.read_events()
            failed = [op for op, err in results.items() if err]
            if failed and not any(ev.get('result') == 'error' for ev in evs):
                results['events for %s' % ', '.join(failed)] = errno.EPROTO
        if env.proc is not None:
            env.unmount()
        # recovery, without faults, then let every job end
        env.mount(workers=1, retries=0)
        settle(env, 'jobs after recovery')
        env.unmount()
        return point, violations(env, refs, results)


def test_every_failure_point_leaves_a_clear_state(request):
    runs = faults = 0
    problems = []
    n = START
    while n < MAX_POINTS:
        point, bad = one_run(n, {})
        runs += 1
        if point is None:
            break
        faults += 1
        if bad:
            problems.append('point %d (%s): %s' % (n, point, '; '.join(bad)))
        n += STRIDE
    report_line(request, '\nfaults: %d runs, %d faults injected (points %d, %d, ...), '
                '%d violations' % (runs, faults, START, START + STRIDE, len(problems)))
    assert runs > 1 and faults > 0, 'no failure point fired: is SNAPFS_FAULT_AT read?'
    assert not problems, '\n'.join(problems)


# ---- the repository (-o repository=on) ----------------------------------------------
#
# Backups into the chunk repository, a verify that moves a damaged chunk
# and a delete whose GC removes what only the deleted backup named, with
# one failure point failing.  By default each named point of the
# repository fails once (SNAPFS_FAULT_POINT=<name>: the first call of it;
# about 3 s a run); with SNAPFS_FAULT_STRIDE set (SNAPFS_FAULT_STRIDE=1:
# the long mode) it also walks SNAPFS_FAULT_AT=N over the same work, every
# STRIDE-th point, unless SNAPFS_FAULT_REPO_WALK=0 (the ASan run in CI,
# where the walk would add a minute).  After each run, and
# after a clean remount (recovery): no BackedUp backup names a missing or
# wrong chunk, each restores (its backed-up/ view compares equal to the
# snapshot), a failed backup is BackupFailed with an error event and its
# `retry` succeeds, and GC removed nothing a published backup names.

REPO_POINTS = ['chunk.write', 'chunk.fsync', 'chunk.read_back', 'chunk.rename',
               'chunk.touch', 'index.write', 'index.fsync', 'index.rename',
               'index.fsync_dir', 'rename.manifest',
               'gc.scan', 'gc.index', 'gc.stat', 'gc.unlink', 'verify.move']
W = [(0xd1, '8M', '4M')]
REPO_ALLOWED = ALLOWED | {errno.EINVAL}   # verify of a BackupFailed backup


def repo_scenario(env):
    from test_repository import age_chunks, chunk_path, index_path, read_index
    out = {}
    out['mkdir v/s1'] = attempt(env.take, 'v', 's1')
    out['mkdir w/s1'] = attempt(env.take, 'w', 's1')
    settle(env, 'the first backups')
    env.write_volume('v', B)
    out['mkdir v/s2'] = attempt(env.take, 'v', 's2')
    settle(env, 'the second backup')
    # a damaged chunk: verify moves it to .damaged/
    if env.state('w', 's1') == 'BackedUp':
        victim = [d for d in read_index(index_path(env, 'w', 's1'))[2] if d][0]
        with open(chunk_path(env, victim), 'r+b') as f:
            f.seek(100)
            f.write(b'\xff\x00\xff')
        env.planted = True
        out['verify w/s1'] = attempt(env.control, 'w', 'verify s1')
        if out['verify w/s1'] == errno.EIO:
            out['verify w/s1'] = 0    # the verdict, not a failure
    # GC after a delete, the chunks old enough for it
    age_chunks(env)
    n = len(env.read_events())
    # a GC run whose event the fault kept out of the catalog ("cannot
    # record", logged) still ran: its log lines count too
    gc_lines = ("cannot record 'repository.gc'", ' indexes name ')

    def gc_logged():
        text = env.log_text()
        return sum(text.count(x) for x in gc_lines)
    logged = gc_logged()
    out['rmdir v/s1'] = attempt(os.rmdir, env.snap_dir('v', 's1'))
    # the run the delete asked for (not the one at mount: that one may be
    # among the last events when the machine is slow)
    if out['rmdir v/s1'] == 0:
        env.wait_for(lambda: 'repository.gc' in [e['type'] for e in env.events_since(n)]
                     or gc_logged() > logged, 'a GC run after the delete', timeout=60)
    settle(env, 'jobs to end')
    return out


def repo_violations(env, refs, results):
    """What is wrong, checked on the remounted (recovered) mount."""
    from test_repository import chunk_path, index_path, read_index
    bad = ['%s failed with %s' % (op, errno.errorcode.get(err, err))
           for op, err in results.items() if err not in REPO_ALLOWED]
    if getattr(env, 'planted', False):
        # the damaged chunk of w/s1: the next verify (after one the fault
        # cut, with no verdict) finds it
        err = attempt(env.control, 'w', 'verify s1')
        if err not in (errno.EIO,) or env.state('w', 's1') != 'Damaged':
            bad.append('verify of the damaged w/s1: %s, %s' % (
                errno.errorcode.get(err, err), env.state('w', 's1')))
    for vol in ('v', 'w'):
        for snap in env.snapshots(vol):
            state = env.state(vol, snap)
            if state == 'BackupFailed':
                err = attempt(env.control, vol, 'retry ' + snap)
                if err:
                    bad.append('retry of %s/%s failed with %s' % (vol, snap, errno.errorcode.get(err, err)))
                settle(env, 'the retry')
                state = env.state(vol, snap)
                if state != 'BackedUp':
                    bad.append('%s/%s is %s after its retry' % (vol, snap, state))
            if state == 'Damaged' and (vol, snap) == ('w', 's1'):
                continue
            if state != 'BackedUp':
                bad.append('%s/%s left %s' % (vol, snap, state))
                continue
            try:
                entries = read_index(index_path(env, vol, snap))[2]
            except (OSError, AssertionError) as e:
                bad.append('BackedUp %s/%s: its index: %s' % (vol, snap, e))
                continue
            for d in set(entries) - {None}:
                try:
                    with open(chunk_path(env, d), 'rb') as f:
                        data = f.read()
                except OSError:
                    bad.append('BackedUp %s/%s names missing chunk %s' % (vol, snap, d[:12]))
                    continue
                import hashlib
                if hashlib.sha256(data[16:]).hexdigest() != d:
                    bad.append('BackedUp %s/%s names wrong chunk %s' % (vol, snap, d[:12]))
            ref = refs.get((vol, snap))
            if ref and qemu_img_compare(ref, env.backup_file(vol, snap)) != 0:
                bad.append('the view of %s/%s holds other data' % (vol, snap))
    if env.secondary_tmp_files():
        bad.append('temporary files left in secondary: %s' % env.secondary_tmp_files())
    return bad + stray_backup_files(env)


def stray_backup_files(env):
    """An index or manifest only for a published backup: a failed publish
    leaves none behind (an index whose directory fsync failed, once, did)."""
    published = {s['uuid'] for s in H.catalog_snapshots(env)
                 if s['state'] in (H.SNAP_BACKED_UP, H.SNAP_DAMAGED)}
    return ['%s belongs to no published backup' % os.path.relpath(path, env.secondary)
            for path in glob.glob(os.path.join(env.secondary, 'volumes', '*', '*'))
            if os.path.basename(path).split('.')[0] not in published]


def repo_one_run(how, value):
    """Run the repository work with a fault (@how: SNAPFS_FAULT_POINT or
    SNAPFS_FAULT_AT); (fired point or None, violations)."""
    with snapfs_env('rfault-%s' % value) as env:
        env.make_volume('v', '64M', A)
        env.make_volume('w', '64M', W)
        refs = {('v', 's1'): env.make_reference('64M', A),
                ('v', 's2'): env.make_reference('64M', A + B),
                ('w', 's1'): env.make_reference('64M', W)}
        os.environ[how] = str(value)
        try:
            results = {'mount': errno.EIO} if mount_refused(
                env, workers=1, retries=0, repository='on') else None
        finally:
            del os.environ[how]
        if results is None:
            results = repo_scenario(env)
            # before any retry rewrites it: nothing of a failed publish left
            for problem in stray_backup_files(env):
                results[problem] = errno.EPROTO
        text = env.log_text()
        m = re.search(r'fault: point (?:\d+ \()?([a-z_.]+)\)? fails', text)
        point = m.group(1) if m else None
        if point and 'mount' not in results:
            failed = [op for op, err in results.items() if err]
            evs = env.read_events()
            if failed and not any(ev.get('result') == 'error' for ev in evs):
                results['events for %s' % ', '.join(failed)] = errno.EPROTO
            for vol, snap in (('v', 's1'), ('v', 's2'), ('w', 's1')):
                if env.state(vol, snap) == 'BackupFailed' and not [
                        e for e in evs if e.get('snapshot') == snap and
                        e.get('volume') == vol and e.get('result') == 'error']:
                    results['an event for BackupFailed %s/%s' % (vol, snap)] = errno.EPROTO
        if env.proc is not None:
            env.unmount()
        env.mount(workers=1, retries=0, repository='on')
        settle(env, 'jobs after recovery')
        bad = repo_violations(env, refs, results)
        env.unmount()
        bad += violations_repo_catalog(env)
        return point, bad


def violations_repo_catalog(env):
    bad = []
    db = sqlite3.connect('file:%s?mode=ro' % os.path.join(env.source, 'catalog.db'), uri=True)
    try:
        if db.execute('PRAGMA integrity_check').fetchone()[0] != 'ok':
            bad.append('catalog integrity_check failed')
        for name, state in db.execute('SELECT name, state FROM snapshots'):
            if state in (0, 4):
                bad.append('snapshot %s left in state %d' % (name, state))
    finally:
        db.close()
    return bad


def test_repository_failure_points_leave_a_clear_state(request):
    runs = faults = 0
    problems = []
    plan = [('SNAPFS_FAULT_POINT', p) for p in REPO_POINTS]
    if 'SNAPFS_FAULT_STRIDE' in os.environ and \
            os.environ.get('SNAPFS_FAULT_REPO_WALK') != '0':
        plan += [('SNAPFS_FAULT_AT', n) for n in range(START, MAX_POINTS, STRIDE)]
    for how, value in plan:
        point, bad = repo_one_run(how, value)
        runs += 1
        if point is None:
            if how == 'SNAPFS_FAULT_AT':
                break
            problems.append('point %s never fired' % value)
            continue
        faults += 1
        if bad:
            problems.append('%s=%s (%s): %s' % (how, value, point, '; '.join(bad)))
    report_line(request, '\nrepository faults: %d runs, %d faults injected, %d violations'
                % (runs, faults, len(problems)))
    assert not problems, '\n'.join(problems)
