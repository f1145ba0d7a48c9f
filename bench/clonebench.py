#!/usr/bin/env python3
"""clonebench.py - the clone benchmark of issue 4: 1 clone vs 8 concurrent
clones of one snapshot, against a plain `cp` of the same data, in one run.

The issue's target: "8 take at most 1.5x the time of 1 for clones that
share data, or are bound by disk bandwidth for full copies, stated as bytes
per second vs a plain `cp` of the same data in the same run".  snapfs
clones are full, standalone copies (qemu-img convert, fsync, qemu-img check
and info, rename into PRIMARY/<newvol>.qcow2), so the target judged here is
the second one:

  T1    one `clone <snap> <newvol>` written to volumes/<vol>/control, from
        the write(2) until jobs/ is empty again and volumes/<newvol>/ is
        there (the job is dropped in the transaction that records
        clone.end, after the rename);
  T8    eight clone commands written one after the other, from the first
        write(2) until the eighth clone is done in the same sense;
  cp    `cp` of the snapshot's data as one standalone qcow2 file (its
        layer on primary storage, or its backup on secondary storage) to a
        new file on the same file system, plus fsync of the copy (clones
        fsync too).

  throughput of 1 clone       = allocated bytes of the new volume / T1
  aggregate of 8 clones       = 8 x allocated bytes / T8
  cp                          = allocated bytes of the copy / (cp + fsync)
  target: aggregate 8 / cp >= 0.8x (disk-bound), ratio of the medians.

For information: T8 / T1 beside what 8x the data at cp's rate predicts
(8 x cp time / T1); 1 clone / cp; and the aggregate against a cp whose
source is already in the page cache (read once, untimed, after the drop):
cp reads every byte it writes from disk, while after the first two clones
the eight read their source from the page cache, so "cp, cached" is the
disk's write bandwidth alone.

Cases: the snapshot still on primary storage (a layer; required), and the
same data only on secondary storage (after a second snapshot is backed up,
keep_primary=1 drops the first one's layer: its clones read its backup).
The daemon runs with workers=2 (the default: 2 of the 8 clones run at a
time; the targets are judged here); then it is remounted with workers=8
and every side is measured again, for information.  Sizes: one volume,
4 GiB virtual, 2 GiB written (--quick: 1 GiB); 4 repetitions (--quick: 2)
with workers=2, 2 with workers=8.

The machine is shared and noisy: each side is repeated, the order of the
sides is reversed every other repetition, every timed side starts after
the previous clones' files are removed, `jobs/` is empty, snapfs has no
child process and `sync; echo 3 > drop_caches` has run.  Medians,
min..max and the range of the per-repetition ratios are printed.  Where
the time goes: millisecond stamps of clone.queue/start/end in
SOURCE/snapfs.log; a thread that looks for snapfs's qemu-img children
every 10 ms (convert, then the fsync is the gap until `check`, then
`info`; a scan costs about 0.5 ms of CPU; it runs during every timed
side, the cp sides included); and /proc/diskstats and /proc/stat around
each side (bytes read and written, disk busy time, CPU of the machine).

Normally started by bench/run.sh --clone (which owns the work directory
and cleans up after a crash of this script); by hand:

  python3 bench/clonebench.py --bin build/fs/snapfs [--quick]

Python 3 standard library only (and benchlib.py beside it).  Needs root.
"""

import json
import os
import re
import shutil
import sys
import threading
import time

from benchlib import (FAILURES, BenchError, GiB, LogTail, MiB, Refused, Snapfs,
                      arg_parser, backing_file, drop_caches, end_on_signals, epoch,
                      finish, fmt_gbs, fmt_ms, fmt_s, fs_of, fsync_file, log,
                      make_volume, median, paired, parse_args, quick_or_full,
                      remove_work, run, setup, spread, start_report, version)

POLL = 0.010            # jobs/ poll interval while clones run
CHILD_POLL = 0.010      # /proc scan interval of the child watcher (~0.5 ms each)
TARGET = 0.8            # aggregate 8-clone throughput / cp throughput
VOL = 'cvol'
SIDES = ('one', 'eight', 'cp', 'cpw')   # timed sides; reversed every other time

EVENT = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z \w+: event: (\{.*\})$')
NEWVOL = re.compile(r'volumes/([A-Za-z0-9._-]+)[ ]')
JOBNO = re.compile(r'\(job (\d+)\)')
TMPJOB = re.compile(r'clone-(\d+)\.qcow2')


class Meter:
    """Disk (/proc/diskstats of the work directory's disk) and CPU
    (/proc/stat, all cores, all processes on the machine) over a side."""

    def __init__(self, work):
        dev = fs_of(work)[2]
        self.disk = os.path.basename(os.path.realpath(dev)) if dev.startswith('/dev/') else ''

    def sample(self):
        d = None
        try:
            with open('/proc/diskstats') as f:
                for line in f:
                    x = line.split()
                    if x[2] == self.disk:
                        d = (int(x[5]), int(x[9]), int(x[12]))
            with open('/proc/stat') as f:
                c = [int(v) for v in f.readline().split()[1:]]
        except (OSError, IndexError, ValueError):
            return None
        return time.monotonic(), d, c

    @staticmethod
    def delta(a, b):
        """dict(read_mib, written_mib, busy, cpu, iowait) from a to b."""
        if not a or not b:
            return {}
        out = {}
        wall = b[0] - a[0]
        if a[1] and b[1] and wall > 0:
            out['read_mib'] = (b[1][0] - a[1][0]) * 512 / MiB
            out['written_mib'] = (b[1][1] - a[1][1]) * 512 / MiB
            out['busy'] = (b[1][2] - a[1][2]) / 1e3 / wall
        dc = [y - x for x, y in zip(a[2], b[2])]
        total = sum(dc[:8]) or 1
        out['cpu'] = (total - dc[3] - dc[4]) / total
        out['iowait'] = dc[4] / total
        return out


class CloneLog(LogTail):
    """clone.* events of SOURCE/snapfs.log (ms stamps) since mark()."""

    def clones(self):
        """{newvol: {queue|start|end|fail: epoch, job: id, where: text}}"""
        out = {}
        for line in self.lines():
            m = EVENT.match(line)
            if not m or '"type":"clone.' not in line:
                continue
            try:
                ev = json.loads(m.group(2))
            except ValueError:
                continue
            msg = ev.get('message', '')
            n = NEWVOL.search(msg)
            if not n:
                continue
            rec = out.setdefault(n.group(1), {})
            kind = ev['type'].split('.', 1)[1]
            rec[kind] = epoch(m.group(1))
            if kind == 'queue' and JOBNO.search(msg):
                rec['job'] = int(JOBNO.search(msg).group(1))
            if kind == 'start':
                rec['where'] = 'primary' if 'from primary' in msg else \
                    'secondary' if 'from secondary' in msg else '?'
            if kind == 'fail':
                rec['why'] = msg
        return out


class ChildWatch(threading.Thread):
    """The daemon's qemu-img children: argv, first and last time seen
    (epoch).  A cheap /proc scan: only new pids are read."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.halt = threading.Event()
        self.known = set()
        self.kids = {}          # pid -> [argv, first, last, alive]

    def scan(self):
        now = time.time()
        try:
            pids = set(int(n) for n in os.listdir('/proc') if n.isdigit())
        except OSError:
            return
        for p in pids - self.known:
            try:
                with open('/proc/%d/stat' % p) as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
                if ppid != self.pid:
                    self.known.add(p)
                    continue
                with open('/proc/%d/cmdline' % p, 'rb') as f:
                    argv = f.read().split(b'\0')
            except (OSError, IndexError, ValueError):
                self.known.add(p)
                continue
            if not argv or not argv[0].endswith(b'qemu-img'):
                continue    # forked, not yet exec'd: look again next time
            self.known.add(p)
            self.kids[p] = [[a.decode(errors='replace') for a in argv if a],
                            now, now, True]
        for p, rec in self.kids.items():
            if not rec[3]:
                continue
            try:
                with open('/proc/%d/stat' % p) as f:
                    alive = f.read().rsplit(')', 1)[1].split()[0] != 'Z'
            except OSError:
                alive = False
            if alive:
                rec[2] = now
            else:
                rec[3] = False

    def run(self):
        while not self.halt.is_set():
            self.scan()
            self.halt.wait(CHILD_POLL)

    def stop(self):
        self.halt.set()
        self.join()

    def phases(self):
        """{job id: {convert|check|info: (first, last)}}"""
        out = {}
        for argv, first, last, _ in self.kids.values():
            if len(argv) < 2 or argv[1] not in ('convert', 'check', 'info'):
                continue
            m = TMPJOB.search(' '.join(argv))
            if m:
                out.setdefault(int(m.group(1)), {})[argv[1]] = (first, last)
        return out


class Bench:
    def __init__(self, a, binary, work):
        self.a = a
        self.binary = binary
        self.work = work
        self.fs = None
        self.cpdir = os.path.join(work, 'cp')
        os.makedirs(self.cpdir, exist_ok=True)
        self.logtail = None
        self.meter = Meter(work)
        self.results = dict(rows=[], cases={})

    # ---- the daemon --------------------------------------------------------

    def start(self, workers):
        self.workers = workers
        self.fs = Snapfs(self.binary, self.work,
                         'workers=%d,keep_primary=1,retries=0' % workers)
        self.fs.start()
        self.logtail = CloneLog(os.path.join(self.fs.source, 'snapfs.log'))

    def stop(self):
        if self.fs is not None:
            self.fs.stop()
            self.fs = None

    def snap_info(self, snap):
        with open(os.path.join(self.fs.snap_dir(VOL, snap), 'info')) as f:
            return json.load(f)

    def wait_backed_up(self, snap, timeout=1800):
        deadline = time.monotonic() + timeout
        while True:
            st = self.fs.state(VOL, snap)
            if st == 'BackedUp':
                return
            if st != 'BackingUp':
                raise BenchError('backup of %s/%s ended %s' % (VOL, snap, st))
            if time.monotonic() > deadline:
                raise BenchError('backup of %s/%s takes too long' % (VOL, snap))
            time.sleep(0.05)

    def layer_of_volume(self):
        """The volume file's backing file: the newest snapshot's layer."""
        return backing_file(os.path.join(self.fs.primary, VOL + '.qcow2'))

    def backup_file(self, snap):
        with open(self.fs.p('backed-up', 'volumes', VOL, snap + '.json')) as f:
            uuid = json.load(f)['uuid']
        return os.path.join(self.fs.secondary, 'volumes', VOL, uuid + '.qcow2')

    # ---- one timed side ----------------------------------------------------

    def settle(self, need=0):
        """Start of every timed side: nothing running, enough room, clean
        caches."""
        self.fs.wait_quiet()
        if need:
            free = shutil.disk_usage(self.fs.primary).free
            if free < need:
                raise BenchError('%s has %d MiB free, this side needs about %d MiB'
                                 % (self.fs.primary, free // MiB, need // MiB))
        drop_caches()

    def clone_side(self, snap, names):
        """Write one clone command per name; wait until all are done.
        Returns dict(t, writes, clones, bytes)."""
        self.settle(need=len(names) * self.alloc_bytes * 21 // 20 + GiB)
        self.logtail.mark()
        watch = ChildWatch(self.fs.proc.pid)
        watch.start()
        control = self.fs.p('volumes', VOL, 'control')
        writes = []
        try:
            m0 = self.meter.sample()
            wall0 = time.time()
            t0 = time.perf_counter()
            for n in names:
                t = time.perf_counter()
                fd = os.open(control, os.O_WRONLY)
                try:
                    os.write(fd, ('clone %s %s' % (snap, n)).encode())
                finally:
                    os.close(fd)
                writes.append(time.perf_counter() - t)
            deadline = time.monotonic() + 3600
            while os.listdir(self.fs.p('jobs')):
                if self.fs.proc.poll() is not None:
                    raise BenchError('snapfs died (exit %s)' % self.fs.proc.returncode)
                if time.monotonic() > deadline:
                    raise BenchError('clones of %s still running after an hour' % snap)
                time.sleep(POLL)
            dt = time.perf_counter() - t0
            io = Meter.delta(m0, self.meter.sample())
        finally:
            watch.stop()
        ev = self.logtail.clones()
        missing = [n for n in names if not os.path.isdir(self.fs.p('volumes', n))]
        if missing:
            why = '; '.join('%s: %s' % (n, ev.get(n, {}).get('why', 'no clone.end'))
                            for n in missing)
            raise BenchError('clone failed (see %s): %s' % (self.fs.p('events'), why))
        sizes = []
        for n in names:
            with open(self.fs.p('volumes', n, 'info')) as f:
                sizes.append(json.load(f)['allocated'])
        kids = watch.phases()
        clones = {}
        for n in names:
            e = ev.get(n, {})
            c = dict(queue=e.get('queue'), start=e.get('start'), end=e.get('end'),
                     where=e.get('where'), job=e.get('job'))
            for k, v in kids.get(e.get('job'), {}).items():
                c[k] = v
            clones[n] = {k: (v - wall0 if isinstance(v, float) else
                             tuple(x - wall0 for x in v) if isinstance(v, tuple)
                             else v) for k, v in c.items()}
        wrong = [n for n in names if clones[n]['where'] != self.where]
        if wrong:
            raise BenchError('clone %s read %s storage, expected %s'
                             % (wrong[0], clones[wrong[0]]['where'], self.where))
        # remove the new volumes: they are their files
        for n in names:
            os.unlink(os.path.join(self.fs.primary, n + '.qcow2'))
        return dict(t=dt, writes=writes, clones=clones, bytes=sizes, io=io)

    def cp_side(self, src, warm=False):
        """cp + fsync of @src; @warm: with @src read into the page cache
        first (untimed), so that only the writes are left to the disk."""
        self.settle(need=self.alloc_bytes * 21 // 20 + GiB)
        if warm:
            buf = bytearray(4 * MiB)
            with open(src, 'rb', buffering=0) as f:
                while f.readinto(buf):
                    pass
        dst = os.path.join(self.cpdir, 'copy.img')
        watch = ChildWatch(self.fs.proc.pid)    # the same small load as above
        watch.start()
        try:
            m0 = self.meter.sample()
            t = time.perf_counter()
            run(['cp', '--reflink=never', src, dst], timeout=3600)
            tc = time.perf_counter() - t
            fsync_file(dst)
            dt = time.perf_counter() - t
            io = Meter.delta(m0, self.meter.sample())
        finally:
            watch.stop()
        size = os.stat(dst).st_blocks * 512
        os.unlink(dst)
        return dict(t=dt, cp=tc, fsync=dt - tc, bytes=size, io=io)

    # ---- one case: a snapshot, a number of workers -------------------------

    def case(self, key, title, snap, where, src, samples):
        """Repeat the timed sides (one, eight, cp, cpw) @samples times,
        reversing their order every other time; record rows."""
        self.where = where
        if os.stat(src).st_dev != os.stat(self.fs.primary).st_dev or \
                os.stat(self.cpdir).st_dev != os.stat(self.fs.primary).st_dev:
            raise BenchError('cp source/destination not on the disk of primary')
        log('== %s: snapshot %s/%s (%s), workers=%d, %d repetitions'
            % (title, VOL, snap, where, self.workers, samples))
        log('   cp source: %s (%d MiB)' % (src, os.stat(src).st_size // MiB))
        reps = []
        for i in range(samples):
            order = SIDES if i % 2 == 0 else SIDES[::-1]
            r = {}
            for side in order:
                if side == 'one':
                    r['one'] = self.clone_side(snap, ['%s-r%d-a' % (key, i)])
                elif side == 'eight':
                    r['eight'] = self.clone_side(
                        snap, ['%s-r%d-b%d' % (key, i, k) for k in range(self.a.clones)])
                else:
                    r[side] = self.cp_side(src, warm=side == 'cpw')
            reps.append(r)
            log('   rep %d (%s): %s' % (i, ', '.join(order), ', '.join(
                '%s %.2f s' % ({'one': 'T1', 'eight': 'T%d' % self.a.clones,
                                'cp': 'cp+fsync', 'cpw': 'cp+fsync cached'}[s],
                               r[s]['t']) for s in order)))
        self.report(key, title, where, reps)

    def report(self, key, title, where, reps):
        n8, w = self.a.clones, self.workers
        judged = w == 2         # the default; workers=8 is for information
        res = dict(title=title, where=where, workers=w, reps=reps)
        row = lambda name, base, snap, xs, ys, target, ok=None: \
            self.results['rows'].append(dict(
                name='%s: %s, workers=%d' % (where, name, w), base=base, snap=snap,
                ratio=paired(median(xs) / median(ys),
                             [x / y for x, y in zip(xs, ys)]),
                target=target, ok=ok))
        bps = {}
        for side, label in (('cp', 'cp + fsync'), ('cpw', 'cp + fsync, cached')):
            bps[side] = [r[side]['bytes'] / r[side]['t'] for r in reps]
            log('   %-22s: %s  (cp %s, fsync %s; %s)'
                % (label, spread([r[side]['t'] for r in reps], fmt_s),
                   fmt_s(median([r[side]['cp'] for r in reps])),
                   fmt_s(median([r[side]['fsync'] for r in reps])),
                   spread(bps[side], fmt_gbs)))
        t1 = [r['one']['t'] for r in reps]
        one = [r['one']['bytes'][0] / r['one']['t'] for r in reps]
        t8 = [r['eight']['t'] for r in reps]
        agg = [sum(r['eight']['bytes']) / r['eight']['t'] for r in reps]
        mib = median(reps[0]['eight']['bytes']) // MiB
        log('   %-22s: %s  (%s)' % ('1 clone, T1', spread(t1, fmt_s),
                                    spread(one, fmt_gbs)))
        log('   %-22s: %s  (aggregate %s)' % ('%d clones, T%d' % (n8, n8),
                                              spread(t8, fmt_s), spread(agg, fmt_gbs)))
        ratio = median(agg) / median(bps['cp'])
        tr = [x / y for x, y in zip(t8, t1)]
        pred = n8 * median([r['cp']['t'] for r in reps]) / median(t1)
        log('   aggregate / cp: %.2fx; aggregate / cp cached: %.2fx; 1 clone / cp: '
            '%.2fx; T%d / T1: %.2fx (paired %.2f..%.2f), %dx the data at the cp '
            'rate predicts %.2fx' % (ratio, median(agg) / median(bps['cpw']),
                                     median(one) / median(bps['cp']), n8,
                                     median(t8) / median(t1), min(tr), max(tr),
                                     n8, pred))
        res.update(cp_Bps=bps['cp'], cp_cached_Bps=bps['cpw'], agg_Bps=agg,
                   one_Bps=one, T1_s=t1, T8_s=t8, ratio=ratio, t_ratio_pred=pred)
        row('%d clones aggregate vs cp+fsync, %d MiB each' % (n8, mib),
            fmt_gbs(median(bps['cp'])), fmt_gbs(median(agg)), agg, bps['cp'],
            '>= %.1fx' % TARGET if judged else '- (info)',
            (ratio >= TARGET) if judged else None)
        row('%d clones aggregate vs cp+fsync, source cached' % n8,
            fmt_gbs(median(bps['cpw'])), fmt_gbs(median(agg)), agg, bps['cpw'],
            '- (info)')
        if judged:      # T1 does not depend on the number of workers
            row('1 clone vs cp+fsync', fmt_gbs(median(bps['cp'])),
                fmt_gbs(median(one)), one, bps['cp'], '- (info)')
        row('T%d vs T1' % n8, fmt_s(median(t1)), fmt_s(median(t8)), t8, t1,
            '- (disk-bound: %.2fx)' % pred)
        self.phases(reps)
        self.results['cases'][key] = res

    def phases(self, reps):
        """Where the time goes, from the log stamps and the child watcher
        (seconds from the first write)."""
        def ph(c):
            # a child shorter than the scan interval may be missed: each
            # part is computed only from what was seen
            out = {}
            if c.get('queue') is not None and c.get('start') is not None:
                out['queue wait'] = c['start'] - c['queue']
            if 'convert' in c:
                out['convert'] = c['convert'][1] - c['convert'][0]
                if 'check' in c:
                    out['fsync'] = c['check'][0] - c['convert'][1]
                    if 'info' in c:
                        out['check+info'] = c['info'][1] - c['check'][0]
                if c.get('end') is not None:
                    out['convert end->end'] = c['end'] - c['convert'][1]
            if 'info' in c and c.get('end') is not None:
                out['rename+catalog'] = c['end'] - c['info'][1]
            if c.get('start') is not None and c.get('end') is not None:
                out['start->end'] = c['end'] - c['start']
            return out

        keys = ('queue wait', 'convert', 'fsync', 'check+info', 'rename+catalog',
                'convert end->end', 'start->end')
        log('   where the time goes (medians over repetitions and clones; '
            'from snapfs.log stamps and qemu-img children seen every %d ms):'
            % (CHILD_POLL * 1e3))
        for side in ('one', 'eight'):
            per = [ph(c) for r in reps for c in r[side]['clones'].values()]
            subm = [sum(r[side]['writes']) for r in reps]
            parts = []
            for k in keys:
                xs = [p[k] for p in per if k in p]
                if xs:
                    parts.append('%s %s%s' % (k, fmt_ms(median(xs)), '' if
                                              len(xs) == len(per) else
                                              ' (n=%d of %d)' % (len(xs), len(per))))
            log('     %-6s write(2)s %s; per clone: %s'
                % ('1:' if side == 'one' else '%d:' % self.a.clones,
                   fmt_ms(median(subm)), ', '.join(parts)))
        log('     disk %s and CPU during each side (medians; busy = io_ticks / '
            'wall time; CPU of the whole machine, 2 cores = 100%%):' % self.meter.disk)
        for side in SIDES:
            ios = [r[side]['io'] for r in reps if r[side].get('io')]
            if not ios:
                continue
            g = lambda k: median([x[k] for x in ios]) if all(k in x for x in ios) else None
            log('       %-16s read %s MiB, written %s MiB, disk busy %s, CPU %s '
                '(iowait %s)' % ({'one': '1 clone', 'eight': '%d clones' % self.a.clones,
                                  'cp': 'cp', 'cpw': 'cp, cached'}[side],
                                 '%.0f' % g('read_mib') if g('read_mib') is not None else '?',
                                 '%.0f' % g('written_mib') if g('written_mib') is not None else '?',
                                 '%.0f%%' % (100 * g('busy')) if g('busy') is not None else '?',
                                 '%.0f%%' % (100 * g('cpu')), '%.0f%%' % (100 * g('iowait'))))
        r = reps[0]['eight']
        log('     timeline of the first %d-clone side (s from the first '
            'write; queue, start, convert end, check start, end):'
            % self.a.clones)
        f = lambda v: '%6.2f' % v if isinstance(v, float) else '     ?'
        for n, c in sorted(r['clones'].items(), key=lambda kv: kv[1].get('start') or 0):
            log('       %-14s %s %s %s %s %s' % (
                n, f(c.get('queue')), f(c.get('start')),
                f(c['convert'][1]) if 'convert' in c else f(None),
                f(c['check'][0]) if 'check' in c else f(None), f(c.get('end'))))
        log('       T%d %.2f s' % (self.a.clones, r['t']))

    # ---- the run -----------------------------------------------------------

    def prepare(self):
        a = self.a
        vpath = os.path.join(self.fs.primary, VOL + '.qcow2')
        log('== volume %s: %d GiB virtual, %d MiB written (qemu-io, fsync)'
            % (VOL, a.virtual_gib, a.alloc_mib))
        t = time.perf_counter()
        make_volume(vpath, a.virtual_gib * GiB, a.alloc_mib * MiB, 0x40)
        os.sync()
        self.fs.wait_volume(VOL)
        os.mkdir(self.fs.snap_dir(VOL, 's1'))
        self.wait_backed_up('s1')
        self.fs.wait_quiet()
        log('   written, snapshot s1 taken and backed up in %.0f s'
            % (time.perf_counter() - t))
        info = self.snap_info('s1')
        if not info.get('on_primary'):
            raise BenchError('s1 is not on primary storage after its backup')
        self.alloc_bytes = a.alloc_mib * MiB

    def to_secondary(self):
        """s2, backed up, pushes s1 off primary storage (keep_primary=1)."""
        os.mkdir(self.fs.snap_dir(VOL, 's2'))
        self.wait_backed_up('s2')
        deadline = time.monotonic() + 600
        while self.snap_info('s1').get('on_primary'):
            if time.monotonic() > deadline:
                raise BenchError('s1 still on primary storage after s2 was backed up')
            time.sleep(0.05)
        self.fs.wait_quiet()        # the layer merge
        log('   s2 taken and backed up; s1 now on_primary=false')

    def primary_source(self, snap):
        """A standalone file holding @snap's data on primary: its layer,
        when that is the volume file's backing file and has no backing file
        itself; else None."""
        layer = self.layer_of_volume()
        if layer and not backing_file(layer) and \
                os.stat(layer).st_blocks * 512 >= self.alloc_bytes:
            return layer
        return None


def main():
    ap = arg_parser(__doc__, '1 GiB written, 2 repetitions (full: 2 GiB, 4)')
    ap.add_argument('--alloc-mib', type=int, help='data written to the volume')
    ap.add_argument('--virtual-gib', type=int, default=4)
    ap.add_argument('--samples', type=int, help='repetitions of each side')
    ap.add_argument('--clones', type=int, default=8, help='concurrent clones')
    ap.add_argument('--no-secondary', action='store_true',
                    help='skip the snapshot-on-secondary case')
    ap.add_argument('--no-workers8', action='store_true',
                    help='skip the remount with workers=8')
    ap.add_argument('--w8-samples', type=int, default=2,
                    help='repetitions with workers=8 (default 2)')
    a = parse_args(ap)
    quick_or_full(a, alloc_mib=(1024, 2048), samples=(2, 4))
    if a.alloc_mib > a.virtual_gib * 1024 or a.samples < 1 or a.clones < 1:
        log('clonebench: --alloc-mib exceeds the virtual size, or nothing to do')
        return 2

    try:
        binary, work, own_work = setup('clonebench', a,
                                       ('qemu-img', 'qemu-io', 'fusermount3', 'cp'))
        # the volume's layer, two backups (s1, s2), the clones of one side,
        # the cp copy, 5% for qcow2 metadata, and 2 GiB to spare
        alloc = a.alloc_mib * MiB
        need = (3 + a.clones + 1) * alloc * 21 // 20 + 2 * GiB
        free = shutil.disk_usage(work).free
        if free < need:
            raise Refused('clonebench: %s has %d MiB free, needs about %d MiB; '
                          'refusing to run' % (work, free // MiB, need // MiB))
    except Refused as e:
        log(str(e))
        return 2
    end_on_signals()

    info = start_report(
        'snapfs clone benchmark (issue 4)', a, work, binary,
        [('qemu_img', version('qemu-img'))],
        dict(alloc_mib=a.alloc_mib, virtual_gib=a.virtual_gib, samples=a.samples,
             clones=a.clones, secondary=not a.no_secondary,
             workers8=not a.no_workers8),
        [('work dir', '%s (needs about %d MiB, %d MiB free)'
          % (work, need // MiB, free // MiB)),
         ('mount', '-f -o workers=2,keep_primary=1,retries=0, then workers=8 '
          '(primary, secondary and the cp copy on the same disk)')])
    log()

    b = Bench(a, binary, work)
    results = b.results
    results['machine'] = info
    t_start = time.perf_counter()
    failed = []
    n8 = a.clones
    try:
        b.start(2)
        b.prepare()
        log()
        src = b.primary_source('s1')
        if src is None:
            raise BenchError('no standalone layer of s1 on primary to cp')
        b.case('p2', 'snapshot on primary storage', 's1', 'primary', src,
               a.samples)
        log()
        if not a.no_secondary:
            b.to_secondary()
            b.case('s2', 'snapshot only on secondary storage', 's1', 'secondary',
                   b.backup_file('s1'), a.samples)
            log()
        if not a.no_workers8:
            b.stop()
            b.start(8)
            b.fs.wait_volume(VOL)
            b.fs.wait_quiet()
            # on primary: s2 when s1 was pushed off, else s1 still
            psnap = 's1' if a.no_secondary else 's2'
            if not b.snap_info(psnap).get('on_primary'):
                raise BenchError('%s is not on primary storage' % psnap)
            src = b.primary_source(psnap) or b.backup_file(psnap)
            b.case('p8', 'snapshot on primary storage', psnap, 'primary', src,
                   a.w8_samples)
            log()
            if not a.no_secondary:
                b.case('s8', 'snapshot only on secondary storage', 's1',
                       'secondary', b.backup_file('s1'), a.w8_samples)
                log()
    except FAILURES + (KeyboardInterrupt,) as e:
        failed.append(e)
    except Exception as e:      # a bug here: still clean up, and say where
        import traceback
        traceback.print_exc()
        failed.append(e)
    finally:
        b.stop()
        remove_work(a, work, own_work)
    return finish('clonebench', a, results, t_start, failed,
                  'medians, ratio of medians; %d clones of one snapshot' % n8)


if __name__ == '__main__':
    sys.exit(main())
