"""Concurrency storm (issue 6): many clients at once on the same few
objects, for a bounded time, then the invariants of the crash loop.

Twelve client threads (SNAPFS_STORM_CLIENTS) run random requests for
SNAPFS_STORM_SECONDS (default 18, in three rounds) on the same two volumes,
the same six snapshot names and the same six clone names: mkdir, rmdir,
mv, revert, clone, ls, cat of info and state, reads of jobs/ and events.
Between rounds the volumes get new data (every MiB rewritten with qemu-io,
nothing else running), so that each snapshot holds one of a few known
contents.  Checked:

- no deadlock: every request returns within 60 s (a watchdog thread
  watches the requests in flight; on a hang it records the daemon's
  thread stacks and kills it) and the daemon stays alive;
- only errnos docs/errors.md lists for that request (EEXIST, ENOENT,
  EBUSY); never EIO or anything else;
- no lost update, name by name: the successful requests that create a
  snapshot name (mkdir, mv to it) and those that remove it (rmdir, mv from
  it) alternate, and at the end the name exists exactly when one more
  create than remove succeeded; a request that succeeded or failed while
  no other successful request on its name overlapped it must agree with
  the state the earlier ones left (mkdir EEXIST while the name was surely
  absent, rmdir ENOENT while it was surely present, ... are lost updates);
  every successful clone makes its volume once the jobs end, and a clone
  name is made at most once;
- afterwards (each round): the catalog's integrity (at the end, unmounted),
  nothing transitional once the jobs end, every snapshot BackedUp, every
  backup verifies (qemu-img check, no backing file, manifest and checksum)
  and holds exactly one of the contents the volume had, the volumes and
  clones as well, no orphan or partial file on either storage, no alert.

The kernel may keep names for a second (docs/design.md, "What the kernel
caches"); here every change goes through the mount, which the kernel
follows at once, so no check needs to allow for that lag.

    SNAPFS_BIN=build/fs/snapfs python3 -m pytest -s -q tests/fs/test_storm.py

SNAPFS_STORM_SEED=S repeats the random choices (printed first; thread
interleavings differ).
"""

import errno
import json
import os
import random
import re
import threading
import time
import traceback

import snapfs_harness as H

SEED = int(os.environ.get('SNAPFS_STORM_SEED') or random.SystemRandom().randrange(1 << 31))
CLIENTS = int(os.environ.get('SNAPFS_STORM_CLIENTS') or 12)
SECONDS = float(os.environ.get('SNAPFS_STORM_SECONDS') or 18)
ROUNDS = 3
OP_BOUND = 60
SIZE_MIB = 16
VOLS = ('v1', 'v2')
NAMES = tuple('s%d' % i for i in range(6))
CLONES = tuple('c%d' % i for i in range(6))
WORKERS = 2

# errnos docs/errors.md lists for each request in this storm
ALLOWED = {
    'mkdir': {errno.EEXIST},                      # racing mkdirs: the loser
    'rmdir': {errno.ENOENT, errno.EBUSY},         # EBUSY: a clone or revert reads it
    'mv': {errno.ENOENT, errno.EEXIST},
    'revert': {errno.ENOENT, errno.EBUSY},        # EBUSY: another process writes the volume
    'clone': {errno.ENOENT, errno.EEXIST},
    'read': {errno.ENOENT},                       # the snapshot went meanwhile
}


def content_of(vol, rnd):
    """The data of @vol in round @rnd: every MiB its own pattern."""
    rng = random.Random('%s-%d' % (vol, rnd))
    return tuple(rng.randrange(1, 256) for _ in range(SIZE_MIB))


class Storm:
    def __init__(self, env):
        self.env = env
        self.refs = H.ContentRefs(env, SIZE_MIB)
        self.records = []               # every request: dict
        self.mu = threading.Lock()
        self.inflight = {}              # thread -> (start, what)
        self.violations = []
        self.candidates = {v: [] for v in VOLS}     # contents each volume has had
        self.clone_source = {}          # clone name -> source volume
        self.event_cursor = 0
        self.hung = False
        self.clone_fail = {}            # clone name -> message of its clone.fail
        self.round_start = 0            # clones are checked round by round
        self.known = {}                 # known bug -> distinct occurrences

    def violation(self, text):
        with self.mu:
            self.violations.append(text)

    # -- the clients -------------------------------------------------------------------------

    def request(self, tid, kind, what, keys, fn):
        """Run one request and record it: keys are the (vol, name) it reads
        or changes, for the lost-update checks."""
        t0 = time.monotonic()
        with self.mu:
            self.inflight[tid] = (t0, what)
        err = 0
        try:
            fn()
        except OSError as e:
            err = e.errno
        except Exception:   # noqa: BLE001 - a broken check of ours
            self.violation('%s: %s' % (what, traceback.format_exc()))
            err = -1
        t1 = time.monotonic()
        with self.mu:
            del self.inflight[tid]
            self.records.append({'tid': tid, 'kind': kind, 'what': what, 'keys': keys,
                                 't0': t0, 't1': t1, 'errno': err})
        if err > 0 and err not in ALLOWED[kind]:
            self.violation('%s: %s (not an errno docs/errors.md gives for it)' % (
                what, H.errno_name(err)))
        return err

    def client(self, tid, rng, deadline):
        env = self.env
        kinds = ['mkdir'] * 25 + ['rmdir'] * 20 + ['mv'] * 12 + ['revert'] * 8 + \
            ['clone'] * 5 + ['ls'] * 10 + ['cat'] * 15 + ['misc'] * 5
        while time.monotonic() < deadline and not self.hung and env.alive():
            kind = rng.choice(kinds)
            vol = rng.choice(VOLS)
            name = rng.choice(NAMES)
            if kind == 'mkdir':
                self.request(tid, 'mkdir', 'mkdir %s/%s' % (vol, name), [(vol, name)],
                             lambda: os.mkdir(env.snap_dir(vol, name)))
            elif kind == 'rmdir':
                self.request(tid, 'rmdir', 'rmdir %s/%s' % (vol, name), [(vol, name)],
                             lambda: os.rmdir(env.snap_dir(vol, name)))
            elif kind == 'mv':
                to = rng.choice([n for n in NAMES if n != name])
                self.request(tid, 'mv', 'mv %s/%s %s' % (vol, name, to),
                             [(vol, name), (vol, to)],
                             lambda: os.rename(env.snap_dir(vol, name), env.snap_dir(vol, to)))
            elif kind == 'revert':
                self.request(tid, 'revert', 'revert %s to %s' % (vol, name), [(vol, name)],
                             lambda: env.control(vol, 'revert ' + name))
            elif kind == 'clone':
                new = rng.choice(CLONES)
                self.request(tid, 'clone', 'clone %s/%s %s' % (vol, name, new),
                             [(vol, name), ('', new)],
                             lambda: env.control(vol, 'clone %s %s' % (name, new)))
            elif kind == 'ls':
                self.request(tid, 'read', 'ls %s/snapshots' % vol, [],
                             lambda: self.check_listing(vol))
            elif kind == 'cat':
                self.request(tid, 'read', 'cat %s/%s' % (vol, name), [],
                             lambda: self.check_files(vol, name))
            else:
                self.request(tid, 'read', 'ls jobs, volumes; cat events', [],
                             lambda: self.check_misc())

    def check_listing(self, vol):
        names = os.listdir(self.env.vol_dir(vol, 'snapshots'))
        odd = [n for n in names if n not in NAMES]
        if odd:
            self.violation('volumes/%s/snapshots lists %s' % (vol, odd))

    def check_files(self, vol, name):
        with open(self.env.snap_dir(vol, name, 'state')) as f:
            state = f.read().strip()
        if state not in H.STATES:
            self.violation('%s/%s/state reads %r' % (vol, name, state))
        with open(self.env.snap_dir(vol, name, 'info')) as f:
            text = f.read()
        try:
            info = json.loads(text)
        except ValueError:
            self.violation('%s/%s/info is not JSON: %r' % (vol, name, text[:200]))
            return
        if info.get('volume') != vol or info.get('state') not in H.STATES:
            self.violation('%s/%s/info: %s' % (vol, name, text[:300]))

    def check_misc(self):
        env = self.env
        for job in os.listdir(env.p('jobs')):
            try:
                with open(env.p('jobs', job)) as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            if text.strip():
                json.loads(text)
        names = os.listdir(env.p('volumes'))
        odd = [n for n in names if n not in VOLS + CLONES]
        if odd:
            self.violation('volumes/ lists %s' % odd)
        with open(env.p('events')) as f:
            f.seek(0, os.SEEK_END)

    # -- the watchdog ------------------------------------------------------------------------

    def watchdog(self, stop):
        env = self.env
        while not stop.wait(0.5):
            now = time.monotonic()
            with self.mu:
                late = [(tid, what, now - t0) for tid, (t0, what) in self.inflight.items()
                        if now - t0 > OP_BOUND]
            if not env.alive():
                self.violation('snapfs died during the storm (status %s)' % (
                    env.proc.returncode if env.proc else '?'))
                self.hung = True
                return
            if late:
                self.violation('requests got no answer within %d s (a deadlock?): %s\n%s' % (
                    OP_BOUND, late, self.thread_stacks()))
                self.hung = True
                env.proc.kill()      # ends the requests (ENOTCONN) so the test can go on
                return

    def thread_stacks(self):
        """The kernel stacks and wait channels of the daemon's threads."""
        pid = self.env.proc.pid
        out = []
        for tid in sorted(os.listdir('/proc/%d/task' % pid), key=int):
            base = '/proc/%d/task/%s/' % (pid, tid)
            try:
                comm = open(base + 'comm').read().strip()
                wchan = open(base + 'wchan').read().strip()
                stack = open(base + 'stack').read().strip().replace('\n', ' | ')
            except OSError:
                continue
            out.append('  %s %s wchan=%s %s' % (tid, comm, wchan, stack[:300]))
        return '\n'.join(out)

    def run_round(self, rnd, seconds):
        deadline = time.monotonic() + seconds
        stop = threading.Event()
        dog = threading.Thread(target=self.watchdog, args=(stop,), daemon=True)
        dog.start()
        clients = [threading.Thread(target=self.client, daemon=True,
                                    args=(tid, random.Random('%d-%d-%d' % (SEED, rnd, tid)),
                                          deadline))
                   for tid in range(CLIENTS)]
        for th in clients:
            th.start()
        for th in clients:
            th.join(seconds + OP_BOUND + 30)
        stop.set()
        dog.join(5)
        stuck = [th for th in clients if th.is_alive()]
        assert not stuck, '%d clients never returned\n%s' % (len(stuck), self.violations)

    # -- between rounds ----------------------------------------------------------------------

    def remove_clones(self):
        """Remove the clone volumes (as an administrator would: rm of the
        file; the storm takes no snapshot of them), so that the next round
        can make them again."""
        for new in CLONES:
            if os.path.exists(self.env.volume_path(new)):
                os.unlink(self.env.volume_path(new))
        self.env.wait_for(lambda: not set(CLONES) & set(self.env.listdir('volumes')),
                          'the removed clones to leave volumes/', timeout=10)
        self.clone_source, self.clone_fail = {}, {}
        self.round_start = len(self.records)

    def write_round_data(self, rnd):
        """Rewrite every MiB of each volume (nothing else runs)."""
        for vol in VOLS:
            content = content_of(vol, rnd)
            for attempt in range(20):
                proc = H.run(['qemu-io', '-f', 'qcow2'] +
                             H.qemu_io_args(self.refs.writes(content)) +
                             [self.env.volume_path(vol)], check=False, timeout=120)
                if proc.returncode == 0:
                    break
                assert 'lock' in proc.stderr, proc.stderr
                self.violations.extend(H.settle(self.env))    # a fold holds it: wait
                time.sleep(0.1)
            else:
                raise AssertionError('cannot write %s: %s' % (vol, proc.stderr))
            self.candidates[vol].append(content)

    # -- checks --------------------------------------------------------------------------------

    def lost_updates(self):
        """Name by name, the successful creates and removes against the
        final listing, and every result against the state the other
        requests surely left."""
        env = self.env
        problems = []
        effects = {}    # key -> [(t0, t1, delta, record)]
        for j, r in enumerate(self.records):
            if r['errno'] != 0:
                continue
            if r['kind'] == 'mkdir':
                effects.setdefault(r['keys'][0], []).append((r['t0'], r['t1'], +1, r))
            elif r['kind'] == 'rmdir':
                effects.setdefault(r['keys'][0], []).append((r['t0'], r['t1'], -1, r))
            elif r['kind'] == 'mv':
                effects.setdefault(r['keys'][0], []).append((r['t0'], r['t1'], -1, r))
                effects.setdefault(r['keys'][1], []).append((r['t0'], r['t1'], +1, r))
            elif r['kind'] == 'clone' and j >= self.round_start:
                effects.setdefault(r['keys'][1], []).append((r['t0'], r['t1'], +1, r))

        def surely(key, a, b, exclude=None):
            """The state of @key throughout [a, b] when no other successful
            request on it overlaps; None when it is not known."""
            n = 0
            for t0, t1, delta, r in effects.get(key, []):
                if r is exclude:
                    continue
                if t1 < a:
                    n += delta
                elif t0 <= b:
                    return None
            return n

        # final state of each name against its successes
        for vol in VOLS:
            listed = set(env.snapshots(vol))
            for name in NAMES:
                key = (vol, name)
                n = sum(d for _, _, d, _ in effects.get(key, []))
                if n not in (0, 1) or (name in listed) != (n == 1):
                    problems.append(
                        'lost update on %s/%s: %d successful creates, %d removes, and it %s'
                        % (vol, name, sum(1 for e in effects.get(key, []) if e[2] > 0),
                           sum(1 for e in effects.get(key, []) if e[2] < 0),
                           'exists' if name in listed else 'does not exist'))
        volumes = set(env.listdir('volumes'))
        for new in CLONES:
            made = effects.get(('', new), [])
            failed = self.clone_fail.get(new)
            if made and new not in volumes:
                problems.append('the clone %s was accepted (%s) but never appeared%s' % (
                    new, made[0][3]['what'], ': ' + failed if failed else ''))
            if failed:
                effects.pop(('', new), None)    # a failed clone frees its name again
                continue
            if len(made) > 1:
                problems.append('clone %s was accepted %d times: %s' % (
                    new, len(made), [e[3]['what'] for e in made]))
            if not made and new in volumes:
                problems.append('volume %s appeared, but no clone of it was accepted' % new)

        # each result against the state the others surely left
        want_before = {('mkdir', 0): 0, ('rmdir', 0): 1, ('mv', 0): 1, ('mv', 1): 0,
                       ('revert', 0): 1, ('clone', 0): 1}
        for j, r in enumerate(self.records):
            kind, err = r['kind'], r['errno']
            if kind == 'clone' and j < self.round_start:
                continue
            for i, key in enumerate(r['keys']):
                if kind == 'clone' and i == 1:
                    if key[1] in self.clone_fail:
                        continue
                    n = surely(key, r['t0'], r['t1'], exclude=r)
                    if err == 0 and n == 1:
                        problems.append('%s succeeded though %s was made before' % (
                            r['what'], key[1]))
                    if err == errno.EEXIST and n == 0 and key[1] not in VOLS:
                        problems.append('%s: EEXIST, yet no clone %s was accepted before' % (
                            r['what'], key[1]))
                    continue
                need = want_before.get((kind, i))
                if need is None:
                    continue
                n = surely(key, r['t0'], r['t1'], exclude=r if err == 0 else None)
                if n is None:
                    continue
                if err == 0 and n != need:
                    problems.append('%s succeeded though %s/%s surely %s' % (
                        r['what'], key[0], key[1], 'existed' if n else 'did not exist'))
                wrong = {('mkdir', errno.EEXIST): 0, ('rmdir', errno.ENOENT): 1,
                         ('revert', errno.ENOENT): 1, ('clone', errno.ENOENT): 1}
                if i == 0 and wrong.get((kind, err)) == n:
                    problems.append('%s: %s though %s/%s surely %s' % (
                        r['what'], H.errno_name(err), key[0], key[1],
                        'existed' if n else 'did not exist'))
                if kind == 'mv' and err == errno.ENOENT and i == 0 and n == 1:
                    problems.append('%s: ENOENT though %s/%s surely existed' % (
                        r['what'], key[0], key[1]))
                if kind == 'mv' and err == errno.EEXIST and i == 1 and n == 0:
                    problems.append('%s: EEXIST though %s/%s surely did not exist' % (
                        r['what'], key[0], key[1]))
        return problems

    def holds_one(self, path, vol, what):
        for content in self.candidates[vol]:
            if self.refs.holds(path, content):
                return []
        return ['%s holds none of the contents %s had: %s' % (
            what, vol, self.refs.describe(path))]

    def audit(self, rnd):
        env = self.env
        problems = H.settle(env)
        events, self.event_cursor = H.catalog_events_since(env, self.event_cursor)
        for ev in events:
            m = re.search(r'volumes/(c\d+)\b', ev.get('message', ''))
            if ev.get('type') == 'clone.fail' and m:
                self.clone_fail[m.group(1)] = ev.get('message', '')
        problems += H.event_problems(events)
        problems += H.quiet_problems(env)
        problems += H.transitional_problems(env, WORKERS)
        problems += H.orphan_problems(env)
        problems += self.lost_updates()
        rows = {(s['volume'], s['name']): s for s in H.catalog_snapshots(env)}
        volumes = set(env.listdir('volumes'))
        for vol in VOLS:
            path = env.volume_path(vol)
            problems += H.qemu_img_check_problems(path, 'volume ' + vol)
            problems += self.holds_one(path, vol, 'volume ' + vol)
            for name in env.snapshots(vol):
                row = rows.get((vol, name))
                if row is None:
                    problems.append('%s/%s is listed but not in the catalog' % (vol, name))
                    continue
                if row['state'] != H.SNAP_BACKED_UP:
                    continue    # reported by quiet_problems()
                found = H.verify_backup(env, row)
                problems += found
                if not found:
                    if env.repository_mode() == 'on':
                        # no image on SECONDARY: the synthesized view is the backup
                        img = env.backup_file(vol, name)
                    else:
                        img = os.path.join(env.secondary, 'volumes', vol, row['uuid'] + '.qcow2')
                    problems += self.holds_one(img, vol, 'the backup of %s/%s' % (vol, name))
                if row['layer']:
                    layer = os.path.join(env.primary, '.snapfs', vol, row['layer'] + '.qcow2')
                    problems += self.holds_one(layer, vol, '%s/%s on primary' % (vol, name))
        for r in self.records[self.round_start:]:
            if r['kind'] == 'clone' and r['errno'] == 0:
                self.clone_source[r['keys'][1][1]] = r['keys'][0][0]
        for new, src in sorted(self.clone_source.items()):
            if new in volumes:
                path = env.volume_path(new)
                problems += H.qemu_img_check_problems(path, 'clone ' + new)
                problems += self.holds_one(path, src, 'clone %s (of %s)' % (new, src))
        if not env.alive():
            problems.append('snapfs is not alive after round %d' % rnd)
        return problems


def test_storm(env, request, record_property):
    for vol in VOLS:
        env.make_volume(vol, '%dM' % SIZE_MIB)
    storm = Storm(env)
    storm.write_round_data(0)
    env.mount(workers=WORKERS, keep_primary=1)
    print('\nstorm: seed %d (SNAPFS_STORM_SEED=%d repeats it), %d clients, %d s' % (
        SEED, SEED, CLIENTS, SECONDS), flush=True)
    t_start = time.monotonic()
    for rnd in range(ROUNDS):
        if rnd:
            storm.remove_clones()
            storm.write_round_data(rnd)
        n = len(storm.records)
        storm.run_round(rnd, SECONDS / ROUNDS)
        mine = storm.records[n:]
        done = sum(1 for r in mine if r['errno'] == 0)
        slowest = max((r['t1'] - r['t0'] for r in mine), default=0)
        problems = storm.violations + ([] if storm.hung else storm.audit(rnd))
        storm.violations = []
        known = [(H.known_bug(p), p) for p in problems if H.known_bug(p)]
        problems = [p for p in problems if not H.known_bug(p)]
        by_kind = {}
        for r in mine:
            k = '%s %s' % (r['kind'], H.errno_name(r['errno']) if r['errno'] else 'ok')
            by_kind[k] = by_kind.get(k, 0) + 1
        print('round %d: %d requests (%d succeeded), slowest %.2f s, %d violations; %s' % (
            rnd, len(mine), done, slowest, len(problems),
            ', '.join('%s %d' % kv for kv in sorted(by_kind.items()))), flush=True)
        for key, p in known:
            storm.known.setdefault(key, set()).add(re.sub(r'"time": "[^"]*"|alert \d+', '', p))
            print('  known bug (%s): %s' % (key, p[:600]), flush=True)
        for p in problems:
            print('  violation: %s' % p, flush=True)
        assert not problems, '%d violations in round %d (seed %d), listed above' % (
            len(problems), rnd, SEED)
    snaps = {vol: env.snapshots(vol) for vol in VOLS}
    env.unmount()
    problems = H.catalog_integrity(env)
    env.mount(workers=WORKERS)
    if {vol: env.snapshots(vol) for vol in VOLS} != snaps:
        problems.append('a remount changed the snapshots: %s -> %s' % (
            snaps, {vol: env.snapshots(vol) for vol in VOLS}))
    problems += H.transitional_problems(env, WORKERS) + H.settle(env) + H.quiet_problems(env)
    known = ', '.join('%s %d' % (k, len(v)) for k, v in sorted(storm.known.items()))
    print('storm: %d requests in %.0f s, %d violations%s' % (
        len(storm.records), time.monotonic() - t_start, len(problems),
        '; known bugs not counted: ' + known if known else ''), flush=True)
    summary = 'storm: %d clients, %d requests, %d violations' % (
        CLIENTS, len(storm.records), len(problems))
    record_property('storm', summary + ('; known bugs: ' + known if known else ''))
    line = '\n%s (seed %d%s)' % (summary, SEED, '; known bugs not counted: ' + known
                                  if known else '')
    H.report_line(request, line)
    assert not problems, problems
