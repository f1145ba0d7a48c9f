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

from snapfs_harness import (qemu_img_compare, qemu_img_info, report_line, run,
                            snapfs_env)

A = [(0xa1, 0, '4M'), (0xa2, '8M', '2M')]
B = [(0xb1, '2M', '4M')]
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


def one_run(n, refs):
    """Run the scenario with point @n failing; (fired point or None, violations)."""
    with snapfs_env('fault%d' % n) as env:
        env.make_volume('v', '16M', A)
        refs = dict(refs, s1=env.make_reference('16M', A),
                    s2=env.make_reference('16M', A + B))
        os.environ['SNAPFS_FAULT_AT'] = str(n)
        try:
            env.mount(workers=1, retries=0)
        finally:
            del os.environ['SNAPFS_FAULT_AT']
        results = scenario(env, refs)
        point = fired(env)
        if point:
            evs = env.read_events()
            failed = [op for op, err in results.items() if err]
            if failed and not any(ev.get('result') == 'error' for ev in evs):
                results['events for %s' % ', '.join(failed)] = errno.EPROTO
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
