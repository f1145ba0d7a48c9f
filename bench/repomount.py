#!/usr/bin/env python3
"""repomount.py - issue 13's "Done when" targets, measured on a mount.

One snapfs daemon with -o repository=on (workers=2, keep_primary=64,
retries=0: no layer is released or folded while the benchmark reads
layers), primary and secondary storage and every baseline's copy on the
same local disk.  One volume of GIB GiB virtual with WRITTEN GiB of mixed
data (16 pieces, one every GIB/16 GiB; per 4 MiB: 50% random, 30% unique
text-like, 20% zero bytes) written with qemu-io (`write -s FILE`: the data
comes from a file, so no two chunks are equal unless they are zeros).

  2. First full backup: snapshot f<k> taken with `mkdir`, its backup timed
     from the backup.start to the backup.end line of SOURCE/snapfs.log
     (millisecond stamps), against `qemu-img convert -U -f qcow2 -O qcow2`
     of the same snapshot's layer (standalone: it holds all the data) to a
     file on the same disk plus fsync of the copy.  Page cache dropped
     before each side; sides alternate; FULL repetitions.  Each repetition
     but the first starts from an empty repository: the previous f<k> is
     deleted (rmdir) with every chunk file aged by an hour first (as
     tests/fs/test_repository.py's age_chunks(); GC keeps chunks younger
     than REPO_GC_MARGIN, 5 minutes), and the GC run the delete triggers
     empties .chunks.  Target: backup / convert <= 1.15x.  For
     information (2b, no target): the same convert with -T none, its
     source read with O_DIRECT as the backup reads the layer; on this
     project's VMs a buffered read of the disk is slower than an O_DIRECT
     one, so convert with its defaults is the slower baseline.  Each
     repetition runs backup, convert, convert -T none, the next one the
     other way round.
  1. Incremental second backup, over the last f<k>: 64 writes of 1 MiB of
     random data at 64 distinct random 1 MiB-aligned offsets of the volume
     (one qemu-io run on PRIMARY/<vol>.qcow2, as a guest would write; no
     VM), snapshot s<k>, wait BackedUp.  Measured: bytes written to
     secondary = growth of the sizes of SECONDARY/.chunks/*/* plus the new
     index file; bytes read from primary = the backup's own count ("read N
     bytes" of its backup.end event: what repo_backup_image() read over
     NBD; disk sectors read machine-wide from /proc/diskstats during the
     backup are printed beside it, for information); time as in 2.
     Reference for bytes: the distinct chunks the 64 writes touched
     x chunk size, plus the index's size.  Time baseline: a bare
     `qemu-img convert -U -O qcow2` of s<k>'s own layer opened without its
     backing file (json:{"driver":"qcow2","backing":null,...}) plus
     fsync.  INC repetitions (each incremental over the previous one),
     sides alternating (in odd repetitions the convert of the previous
     layer runs before the backup: a backup starts when its snapshot is
     taken).  Targets: writes <= 1.2x, reads <= 1.2x, time <= 1.5x.
  3. Dedup: CLONES clones of the newest s<k> (`clone` in
     volumes/<vol>/control), each snapshotted and backed up (full backups:
     no base).  Repository growth (chunk files plus index files) over the
     clones' backups; target: (one backup + growth) / one backup <= 1.1x,
     one backup being the chunk files its index names plus its index.
  4. GC: every chunk file aged by an hour, every backup but the newest
     deleted (rmdir of its snapshot), then a remount (GC runs at every
     start; the deletes also trigger runs), wait for its repository.gc
     event.  Target: repository (chunk files plus index files) <= 1.05x
     the newest backup's chunk files plus index.

Cold reads of the views: bench/run.sh --views (viewbench.py).  No time is
asserted: each target prints PASS or MISS.  Normally started by
bench/run.sh --repo (--mount-only for this part alone); by hand:

  python3 bench/repomount.py --bin build/fs/snapfs [--quick] [--gib=N] [--written=N]

Python 3 standard library only (and benchlib.py beside it).  Needs root.
"""

import glob
import json
import os
import random
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (FAILURES, BenchError, GiB, MiB, Refused,  # noqa: E402
                      Snapfs, arg_parser, backing_file, drop_caches, end_on_signals,
                      epoch, finish, fmt_s, fs_of, fsync_file, loadavg, log, median,
                      parse_args, quick_or_full, remove_work, run, setup, spread,
                      start_report, version)

VOL = 'rvol'
PIECES = 16
WRITES = 64             # 1 MiB writes before each incremental backup
T_INC_BYTES = 1.2
T_INC_TIME = 1.5
T_FULL = 1.15
T_DEDUP = 1.1
T_GC = 1.05
STAMP = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z ')
STATS = re.compile(r'read (\d+) bytes, (\d+) chunks; (\d+) chunks written, (\d+) reused, '
                   r'(\d+) copied from the base, (\d+) holes')


def fmt_mib(b):
    if abs(b) < MiB:
        return '%.1f KiB' % (b / 1024)
    return '%.1f MiB' % (b / MiB)


def fmt_tail(t):
    return 'not seen' if t is None else fmt_s(t)


def mixed_piece(path, size, seed):
    """@size bytes (a multiple of 4 MiB): per 4 MiB, 50% random, 30%
    text-like (unique: each line numbered), 20% zero bytes."""
    with open(path, 'wb') as f:
        for k in range(size // (4 * MiB)):
            kind = (seed + k) % 10
            if kind < 5:
                f.write(os.urandom(4 * MiB))
            elif kind < 8:
                lines = []
                n = 0
                base = (seed << 20) + k * 65536
                while n < 4 * MiB:
                    ln = ('%08d Lorem ipsum dolor sit amet, consectetur adipiscing '
                          'elit; /usr/lib/x86_64-linux-gnu/libc.so.6 0x%08x\n'
                          % (base, base * 2654435761 & 0xffffffff)).encode()
                    lines.append(ln)
                    n += len(ln)
                    base += 1
                f.write(b''.join(lines)[:4 * MiB])
            else:
                f.write(bytes(4 * MiB))
    fsync_file(path)


class Disk:
    """Sectors read and written of the work directory's disk
    (/proc/diskstats: the whole machine's I/O to it)."""

    def __init__(self, work):
        dev = fs_of(work)[2]
        self.name = os.path.basename(os.path.realpath(dev)) if dev.startswith('/dev/') else ''

    def sample(self):
        try:
            with open('/proc/diskstats') as f:
                for line in f:
                    x = line.split()
                    if x[2] == self.name:
                        return int(x[5]) * 512, int(x[9]) * 512
        except (OSError, IndexError, ValueError):
            pass
        return None

    @staticmethod
    def delta(a, b):
        if not a or not b:
            return None, None
        return b[0] - a[0], b[1] - a[1]


class Bench:
    def __init__(self, a, binary, work):
        self.a = a
        self.fs = Snapfs(binary, work, 'workers=2,keep_primary=64,retries=0,repository=on')
        self.sec = self.fs.secondary
        self.tmp = os.path.join(work, 'tmp')
        self.conv = os.path.join(work, 'convert')
        os.makedirs(self.tmp, exist_ok=True)
        os.makedirs(self.conv, exist_ok=True)
        self.disk = Disk(work)
        self.logpath = os.path.join(self.fs.source, 'snapfs.log')
        self.rows = []
        self.res = {}
        self.vpath = os.path.join(self.fs.primary, VOL + '.qcow2')
        self.chunk = None
        self.rng = random.Random(a.seed)
        self.tail = None

    # ---- the repository --------------------------------------------------------

    def chunk_size(self):
        if self.chunk is None:
            with open(os.path.join(self.sec, 'repository.json')) as f:
                self.chunk = json.load(f)['chunk_size']
        return self.chunk

    def chunk_path(self, name):
        return os.path.join(self.sec, '.chunks', name[:2], name)

    def repo_bytes(self):
        """(bytes of chunk files, their count, bytes of index files)"""
        cb = cn = 0
        for p in glob.glob(os.path.join(self.sec, '.chunks', '*', '*')):
            try:
                cb += os.lstat(p).st_size
                cn += 1
            except FileNotFoundError:
                pass
        ib = sum(os.lstat(p).st_size for p in
                 glob.glob(os.path.join(self.sec, 'volumes', '*', '*.index')))
        return cb, cn, ib

    def index_of(self, vol, snap):
        return os.path.join(self.sec, 'volumes', vol, self.info(vol, snap)['uuid'] + '.index')

    def index_chunks(self, path):
        with open(path, 'rb') as f:
            data = f.read()
        if data[:8] != b'SNAPIDX1':
            raise BenchError('%s is not an index' % path)
        count = int.from_bytes(data[24:32], 'little')
        names = set()
        for i in range(count):
            d = data[32 + 32 * i:64 + 32 * i]
            if d != bytes(32):
                names.add(d.hex())
        return names, len(data)

    def backup_cost(self, vol, snap):
        """(bytes of the distinct chunk files @vol/@snap's index names,
        their count, the index's size)"""
        names, isize = self.index_chunks(self.index_of(vol, snap))
        return sum(os.lstat(self.chunk_path(n)).st_size for n in names), len(names), isize

    def age_chunks(self, seconds=3600):
        past = time.time() - seconds
        for p in glob.glob(os.path.join(self.sec, '.chunks', '*', '*')):
            os.utime(p, (past, past))

    # ---- the mount -------------------------------------------------------------

    def info(self, vol, snap):
        with open(os.path.join(self.fs.snap_dir(vol, snap), 'info')) as f:
            return json.load(f)

    def events(self):
        out = []
        with open(self.fs.p('events')) as f:
            for line in f:
                if line.strip():
                    out.append(json.loads(line))
        return out

    def wait_event(self, pred, since, what, timeout=600):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.events()[since:]:
                if pred(ev):
                    return ev
            time.sleep(0.1)
        raise BenchError('no %s within %d s' % (what, timeout))

    def backup_event(self, vol, snap):
        for ev in reversed(self.events()):
            if ev.get('type') == 'backup.end' and ev.get('volume') == vol and \
                    ev.get('snapshot') == snap:
                m = STATS.search(ev.get('message', ''))
                if not m:
                    raise BenchError('backup.end of %s/%s: %s' % (vol, snap, ev))
                keys = ('read', 'chunks_read', 'written', 'reused', 'copied', 'holes')
                out = dict(zip(keys, map(int, m.groups())))
                out['incremental'] = 'incremental over' in ev['message']
                out['message'] = ev['message']
                return out
        raise BenchError('no backup.end event for %s/%s' % (vol, snap))

    def log_times(self, vol, snap):
        """backup.start and backup.end of @vol/@snap in snapfs.log (epoch,
        millisecond stamps; the last of each)."""
        found = {}
        with open(self.logpath) as f:
            for line in f:
                if '"snapshot":"%s"' % snap not in line or '"volume":"%s"' % vol not in line:
                    continue
                m = STAMP.match(line)
                if not m:
                    continue
                for kind in ('backup.start', 'backup.end'):
                    if '"type":"%s"' % kind in line:
                        found[kind] = epoch(m.group(1))
        if 'backup.start' not in found or 'backup.end' not in found:
            raise BenchError('no backup.start/end lines for %s/%s in %s'
                             % (vol, snap, self.logpath))
        return found['backup.end'] - found['backup.start']

    def job_all_done(self, target):
        """Does the backup job of @target show bytes_done >= bytes_total
        (every planned chunk read, hashed and staged)?"""
        for name in os.listdir(self.fs.p('jobs')):
            try:
                with open(self.fs.p('jobs', name)) as f:
                    j = json.loads(f.read() or '{}')
            except (OSError, ValueError):
                continue
            if j.get('kind') == 'backup' and j.get('target') == target and \
                    0 < j.get('bytes_total', 0) <= j.get('bytes_done', 0):
                return True
        return False

    def wait_backed_up(self, vol, snap, timeout=1800):
        """Returns the perf_counter() time at which its job's progress was
        first seen complete (None if never seen)."""
        deadline = time.monotonic() + timeout
        target = 'volumes/%s/snapshots/%s' % (vol, snap)
        seen = None
        while True:
            st = self.fs.state(vol, snap)
            if st == 'BackedUp':
                return seen
            if seen is None and self.job_all_done(target):
                seen = time.perf_counter()
            if st not in ('BackingUp', 'Taken', 'Creating'):
                raise BenchError('backup of %s/%s ended %s' % (vol, snap, st))
            if time.monotonic() > deadline:
                raise BenchError('backup of %s/%s takes too long' % (vol, snap))
            time.sleep(0.02)

    def take(self, vol, snap):
        """mkdir, wait BackedUp and quiet; returns (wall s from mkdir to
        BackedUp seen, backup s from the log, disk (read, written) bytes
        over the wall time)."""
        d0 = self.disk.sample()
        t = time.perf_counter()
        os.mkdir(self.fs.snap_dir(vol, snap))
        seen = self.wait_backed_up(vol, snap)
        t1 = time.perf_counter()
        wall = t1 - t
        d1 = self.disk.sample()
        self.fs.wait_quiet()
        # the tail: from the job's progress complete to BackedUp (the last
        # batch commit, touches, the read-back of every new chunk, index,
        # manifest, catalog)
        self.tail = t1 - seen if seen is not None else None
        return wall, self.log_times(vol, snap), Disk.delta(d0, d1)

    def delete(self, vol, snap):
        os.rmdir(self.fs.snap_dir(vol, snap))

    # ---- baselines -------------------------------------------------------------

    def convert(self, src, bare, direct=False):
        """Seconds of qemu-img convert of @src (qcow2; @bare: opened without
        its backing file; @direct: read with O_DIRECT, -T none) into a new
        qcow2 on the same disk, plus fsync."""
        dst = os.path.join(self.conv, 'copy.qcow2')
        opts = ['-T', 'none'] if direct else []
        if bare:
            src = 'json:' + json.dumps({'driver': 'qcow2', 'backing': None,
                                        'file': {'driver': 'file', 'filename': src}})
            argv = ['qemu-img', 'convert', '-U'] + opts + ['-O', 'qcow2', src, dst]
        else:
            argv = ['qemu-img', 'convert', '-U'] + opts + ['-f', 'qcow2', '-O', 'qcow2', src, dst]
        drop_caches()
        t = time.perf_counter()
        run(argv, timeout=3600)
        fsync_file(dst)
        dt = time.perf_counter() - t
        size = os.stat(dst).st_size
        os.unlink(dst)
        return dt, size

    # ---- the volume ------------------------------------------------------------

    def prepare(self):
        a = self.a
        virtual = int(a.gib * GiB)
        written = int(a.written * GiB)
        piece = written // PIECES // (4 * MiB) * (4 * MiB)
        stride = virtual // PIECES // MiB * MiB
        if piece <= 0 or piece > stride:
            raise BenchError('--written must be at least 64 MiB and at most --gib')
        log('== [load %s] ' % loadavg() + 'volume %s: %s GiB virtual, %d pieces of %d MiB every %d MiB '
            '(qemu-io write -s, fsync)' % (VOL, a.gib, PIECES, piece // MiB, stride // MiB))
        t = time.perf_counter()
        run(['qemu-img', 'create', '-q', '-f', 'qcow2', self.vpath, str(virtual)])
        src = os.path.join(self.tmp, 'piece.raw')
        for i in range(PIECES):
            mixed_piece(src, piece, i * 7)
            run(['qemu-io', '-f', 'qcow2', '-c',
                 'write -q -s %s %d %d' % (src, i * stride, piece), self.vpath], timeout=1800)
        os.unlink(src)
        fsync_file(self.vpath)
        self.written = PIECES * piece
        log('   written in %.0f s' % (time.perf_counter() - t))

    def write_random(self):
        """64 writes of 1 MiB of random data at distinct random 1 MiB-aligned
        offsets; returns the offsets."""
        slots = self.rng.sample(range(int(self.a.gib * 1024)), WRITES)
        cmds = []
        files = []
        for i, s in enumerate(slots):
            p = os.path.join(self.tmp, 'w%02d' % i)
            with open(p, 'wb') as f:
                f.write(os.urandom(MiB))
            files.append(p)
            cmds += ['-c', 'write -q -s %s %d %d' % (p, s * MiB, MiB)]
        run(['qemu-io', '-f', 'qcow2'] + cmds + [self.vpath], timeout=600)
        fsync_file(self.vpath)
        for p in files:
            os.unlink(p)
        return [s * MiB for s in slots]

    def layer(self):
        """The volume file's backing file: the newest snapshot's layer."""
        layer = backing_file(self.vpath)
        if not layer:
            raise BenchError('the volume file has no backing layer')
        return layer

    # ---- 2. the first full backup ----------------------------------------------------

    def full(self):
        a = self.a
        log('== [load %s] ' % loadavg() + '2. first full backup vs qemu-img convert + fsync (%d repetitions)' % a.full)
        snaps, backup, wall, conv, reads, writes, tails = [], [], [], [], [], [], []
        direct = []
        cur = None
        for k in range(a.full):
            # the judged baseline next to the backup, the O_DIRECT one
            # (information) on the far side of it
            order = ('snap', 'conv', 'direct') if k % 2 == 0 else ('direct', 'conv', 'snap')
            for side in order:
                if side in ('conv', 'direct'):
                    dt, size = self.convert(self.layer(), bare=False,
                                            direct=side == 'direct')
                    (conv if side == 'conv' else direct).append(dt)
                    log('   rep %d: convert%s + fsync of %s layer: %s (%s)'
                        % (k, ' -T none' if side == 'direct' else '', cur,
                           fmt_s(dt), fmt_mib(size)))
                    continue
                if cur:
                    # back to an empty repository: delete, GC (chunks aged)
                    self.age_chunks()
                    n = len(self.events())
                    self.delete(VOL, cur)
                    ev = self.wait_event(lambda e: e.get('type') == 'repository.gc', n,
                                         'repository.gc after deleting ' + cur)
                    self.fs.wait_quiet()
                    cb, cn, ib = self.repo_bytes()
                    if cn:
                        log('   warning: %d chunk files left after GC: %s' % (cn, ev.get('message')))
                cur = 'f%d' % k
                cb0, _, ib0 = self.repo_bytes()
                drop_caches()
                w, b, (dr, dw) = self.take(VOL, cur)
                cb1, cn1, ib1 = self.repo_bytes()
                ev = self.backup_event(VOL, cur)
                if ev['incremental']:
                    raise BenchError('%s was backed up incrementally: %s' % (cur, ev['message']))
                backup.append(b)
                wall.append(w)
                tails.append(self.tail)
                reads.append(ev['read'])
                writes.append(cb1 - cb0 + ib1 - ib0)
                snaps.append(cur)
                log('   rep %d: backup of %s: %s (mkdir to BackedUp %s; of it after the '
                    'progress was complete: %s); read %s, '
                    '%d chunks written (%s), %d holes; disk: %s read, %s written'
                    % (k, cur, fmt_s(b), fmt_s(w), fmt_tail(self.tail), fmt_mib(ev['read']),
                       ev['written'],
                       fmt_mib(cb1 - cb0), ev['holes'], fmt_mib(dr or 0), fmt_mib(dw or 0)))
        self.base = cur
        pairs = [b / c for b, c in zip(backup, conv)]
        ratio = median(backup) / median(conv)
        self.res['full'] = dict(backup=backup, wall=wall, convert=conv, read=reads, tail=tails,
                                written=writes, ratio=ratio, pairs=pairs)
        log('   backup %s; convert + fsync %s; ratio %.2fx (pairs %.2f..%.2f)'
            % (spread(backup, fmt_s), spread(conv, fmt_s), ratio, min(pairs), max(pairs)))
        self.rows.append(dict(
            name='2. first full backup (%.1f GiB data) vs convert + fsync' % (self.written / GiB),
            base=spread(conv, fmt_s), snap=spread(backup, fmt_s),
            ratio='%.2fx (%.2f..%.2f)' % (ratio, min(pairs), max(pairs)),
            target='<= %.2fx' % T_FULL, ok=ratio <= T_FULL))
        dpairs = [b / c for b, c in zip(backup, direct)]
        dratio = median(backup) / median(direct)
        self.res['full'].update(convert_direct=direct, ratio_direct=dratio)
        log('   convert -T none + fsync %s; ratio %.2fx (pairs %.2f..%.2f), information only'
            % (spread(direct, fmt_s), dratio, min(dpairs), max(dpairs)))
        self.rows.append(dict(
            name='2b. the same vs convert -T none (source read O_DIRECT) + fsync',
            base=spread(direct, fmt_s), snap=spread(backup, fmt_s),
            ratio='%.2fx (%.2f..%.2f)' % (dratio, min(dpairs), max(dpairs)),
            target='-', ok=None))

    # ---- 1. the incremental backup ----------------------------------------------------

    def incremental(self):
        a = self.a
        cs = self.chunk_size()
        log('== [load %s] ' % loadavg() + '1. incremental backup after %d x 1 MiB random writes (%d repetitions, '
            'chunk %d MiB)' % (WRITES, a.inc, cs // MiB))
        backup, conv, wr, rd, ref, disk_rd = [], [], [], [], [], []
        self.inc_snaps = []
        prev_layer = None
        for k in range(a.inc):
            offsets = self.write_random()
            touched = len({o // cs for o in offsets})
            order = ('snap', 'conv') if k % 2 == 0 or not prev_layer else ('conv', 'snap')
            for side in order:
                if side == 'conv':
                    layer = prev_layer
                    dt, size = self.convert(layer, bare=True)
                    conv.append(dt)
                    log('   rep %d: bare convert + fsync of %s: %s (%s)'
                        % (k, os.path.basename(layer), fmt_s(dt), fmt_mib(size)))
                    continue
                snap = 's%d' % k
                cb0, _, ib0 = self.repo_bytes()
                drop_caches()
                w, b, (dr, dw) = self.take(VOL, snap)
                cb1, cn1, ib1 = self.repo_bytes()
                ev = self.backup_event(VOL, snap)
                if not ev['incremental']:
                    raise BenchError('%s was not incremental: %s' % (snap, ev['message']))
                isize = os.stat(self.index_of(VOL, snap)).st_size
                r = touched * cs + isize
                backup.append(b)
                wr.append(cb1 - cb0 + ib1 - ib0)
                rd.append(ev['read'])
                ref.append(r)
                disk_rd.append(dr or 0)
                self.inc_snaps.append(snap)
                prev_layer = self.layer()
                log('   rep %d: backup of %s: %s (mkdir to BackedUp %s; after the progress '
                    'was complete: %s); %d chunks touched '
                    '-> reference %s; written %s (%d chunks, index %s); read %s (%d chunks); '
                    'disk, machine-wide: %s read, %s written'
                    % (k, snap, fmt_s(b), fmt_s(w), fmt_tail(self.tail), touched, fmt_mib(r), fmt_mib(cb1 - cb0 + ib1 - ib0),
                       ev['written'], fmt_mib(ib1 - ib0), fmt_mib(ev['read']), ev['chunks_read'],
                       fmt_mib(dr or 0), fmt_mib(dw or 0)))
        wq = [x / y for x, y in zip(wr, ref)]
        rq = [x / y for x, y in zip(rd, ref)]
        tq = [b / c for b, c in zip(backup, conv)]
        tr = median(backup) / median(conv)
        self.res['incremental'] = dict(backup=backup, convert=conv, written=wr, read=rd,
                                       reference=ref, disk_read=disk_rd, time_ratio=tr)
        log('   written/reference %s; read/reference %s; backup %s; bare convert %s; '
            'time ratio %.2fx' % (spread(wq, lambda x: '%.3fx' % x), spread(rq, lambda x: '%.3fx' % x),
                                  spread(backup, fmt_s), spread(conv, fmt_s), tr))
        self.rows.append(dict(
            name='1a. incremental: bytes written to secondary vs changed chunks + index',
            base=spread(ref, fmt_mib), snap=spread(wr, fmt_mib),
            ratio='%.3fx (%.3f..%.3f)' % (median(wq), min(wq), max(wq)),
            target='<= %.1fx' % T_INC_BYTES, ok=max(wq) <= T_INC_BYTES))
        self.rows.append(dict(
            name='1b. incremental: bytes read from primary (backup.end) vs the same',
            base=spread(ref, fmt_mib), snap=spread(rd, fmt_mib),
            ratio='%.3fx (%.3f..%.3f)' % (median(rq), min(rq), max(rq)),
            target='<= %.1fx' % T_INC_BYTES, ok=max(rq) <= T_INC_BYTES))
        self.rows.append(dict(
            name='1c. incremental: time vs bare convert of its layer + fsync',
            base=spread(conv, fmt_s), snap=spread(backup, fmt_s),
            ratio='%.2fx (%.2f..%.2f)' % (tr, min(tq), max(tq)),
            target='<= %.1fx' % T_INC_TIME, ok=tr <= T_INC_TIME))

    # ---- 3. dedup --------------------------------------------------------------------

    def dedup(self):
        a = self.a
        if a.clones < 1:
            log('== 3. dedup: skipped (--clones=0)')
            return
        src = self.inc_snaps[-1] if self.inc_snaps else self.base
        need = a.clones * int(self.written * 1.1)     # each clone: a full copy
        free = shutil.disk_usage(self.fs.primary).free
        log('== [load %s] ' % loadavg() + '3. dedup: %d clones of %s/%s, each snapshotted and backed up' % (a.clones, VOL, src))
        if free < need + 4 * GiB:
            raise BenchError('%d clones need about %d GiB free on %s, %d GiB are'
                             % (a.clones, need // GiB, self.fs.primary, free // GiB))
        one_c, one_n, one_i = self.backup_cost(VOL, src)
        one = one_c + one_i
        n = len(self.events())
        t = time.perf_counter()
        clones = ['c%d' % i for i in range(a.clones)]
        for c in clones:
            with open(self.fs.p('volumes', VOL, 'control'), 'w') as f:
                f.write('clone %s %s\n' % (src, c))
        deadline = time.monotonic() + 3600
        while True:
            evs = self.events()[n:]
            fails = [e for e in evs if e.get('type') == 'clone.fail']
            if fails:
                raise BenchError('clone failed: %s' % fails[0])
            if len([e for e in evs if e.get('type') == 'clone.end']) >= len(clones):
                break
            if time.monotonic() > deadline:
                raise BenchError('clones take too long')
            time.sleep(0.2)
        self.fs.wait_quiet()
        for c in clones:
            self.fs.wait_volume(c)
        log('   %d clones made in %.0f s' % (len(clones), time.perf_counter() - t))
        cb0, cn0, ib0 = self.repo_bytes()
        t = time.perf_counter()
        for c in clones:
            os.mkdir(self.fs.snap_dir(c, 'b'))
        for c in clones:
            self.wait_backed_up(c, 'b')
        self.tail = None
        self.fs.wait_quiet()
        cb1, cn1, ib1 = self.repo_bytes()
        written = sum(self.backup_event(c, 'b')['written'] for c in clones)
        growth = cb1 - cb0 + ib1 - ib0
        ratio = (one + growth) / one
        self.clones = clones
        log('   backed up in %.0f s; one backup (%s): %d chunks, %s + index %s; growth over '
            '%d clone backups: %s (%d chunk files, %s of indexes); %d chunks written'
            % (time.perf_counter() - t, src, one_n, fmt_mib(one_c), fmt_mib(one_i), len(clones),
               fmt_mib(growth), cn1 - cn0, fmt_mib(ib1 - ib0), written))
        self.res['dedup'] = dict(one=one, growth=growth, ratio=ratio, chunks_written=written)
        self.rows.append(dict(
            name='3. dedup: 1 backup + %d clones\' backups vs 1 backup' % len(clones),
            base=fmt_mib(one), snap='%s (+%s)' % (fmt_mib(one + growth), fmt_mib(growth)),
            ratio='%.4fx' % ratio, target='<= %.2fx' % T_DEDUP, ok=ratio <= T_DEDUP))

    # ---- 4. GC -----------------------------------------------------------------------

    def gc(self):
        log('== [load %s] ' % loadavg() + '4. GC: every backup but the newest deleted, chunks aged, remount')
        backups = []
        for vol in [VOL] + getattr(self, 'clones', []):
            for snap in os.listdir(self.fs.p('volumes', vol, 'snapshots')):
                i = self.info(vol, snap)
                if self.fs.state(vol, snap) == 'BackedUp':
                    backups.append((i.get('backed_up_at') or '', vol, snap))
        backups.sort()
        newest = backups[-1]
        cb0, cn0, ib0 = self.repo_bytes()
        self.age_chunks()
        n = len(self.events())
        t = time.perf_counter()
        for _, vol, snap in backups[:-1]:
            self.delete(vol, snap)
        self.fs.wait_quiet()
        runs = [e for e in self.events()[n:] if e.get('type') == 'repository.gc']
        cbd, cnd, ibd = self.repo_bytes()
        log('   %d backups deleted in %.0f s (%d GC runs meanwhile); repository before: '
            '%s in %d chunk files + %s of indexes'
            % (len(backups) - 1, time.perf_counter() - t, len(runs), fmt_mib(cb0), cn0,
               fmt_mib(ib0)))
        log('   after the deletes\' GC runs: %s in %d chunk files + %s of indexes'
            % (fmt_mib(cbd), cnd, fmt_mib(ibd)))
        n = len(self.events())
        self.fs.stop()
        self.age_chunks()   # what the deletes' runs left young (their cutoff)
        self.fs.start()
        if len(self.events()) < n:
            n = 0
        last = self.wait_event(lambda e: e.get('type') == 'repository.gc', n,
                               'repository.gc at start')
        self.fs.wait_quiet()
        log('   GC at start: %s' % last.get('message'))
        cb, cn, ib = self.repo_bytes()
        keep_c, keep_n, keep_i = self.backup_cost(newest[1], newest[2])
        ratio = (cb + ib) / (keep_c + keep_i)
        log('   after: %s in %d chunk files + %s of indexes; the newest backup %s/%s: %d chunks, '
            '%s + index %s' % (fmt_mib(cb), cn, fmt_mib(ib), newest[1], newest[2], keep_n,
                               fmt_mib(keep_c), fmt_mib(keep_i)))
        self.res['gc'] = dict(repo=cb + ib, keep=keep_c + keep_i, ratio=ratio,
                              before=cb0 + ib0, after_deletes=cbd + ibd)
        self.rows.append(dict(
            name='4. GC: repository vs the one backup left (chunks + index)',
            base=fmt_mib(keep_c + keep_i), snap=fmt_mib(cb + ib), ratio='%.4fx' % ratio,
            target='<= %.2fx' % T_GC, ok=ratio <= T_GC))


def main():
    ap = arg_parser(__doc__, 'a 2 GiB volume with 0.5 GiB written, 2 repetitions, 2 clones')
    ap.add_argument('--gib', type=float, default=None, help='virtual size, GiB (16; quick 2)')
    ap.add_argument('--written', type=float, default=None, help='data written, GiB (4; quick 0.5)')
    ap.add_argument('--full', type=int, default=None, help='full backup repetitions (3; quick 2)')
    ap.add_argument('--inc', type=int, default=None,
                    help='incremental backup repetitions (5; quick 2)')
    ap.add_argument('--clones', type=int, default=None, help='clones for the dedup (8; quick 2)')
    ap.add_argument('--seed', type=int, default=13, help='of the random write offsets')
    a = parse_args(ap)
    quick_or_full(a, gib=(2, 16), written=(0.5, 4), full=(2, 3), inc=(2, 5), clones=(2, 8))
    try:
        binary, work, own_work = setup('repomount', a, ('qemu-img', 'qemu-io', 'fusermount3'))
    except Refused as e:
        log(str(e))
        return 2
    end_on_signals()
    t_start = time.perf_counter()
    params = ('%s GiB virtual, %s GiB written, %d full and %d incremental repetitions, %d clones'
              % (a.gib, a.written, a.full, a.inc, a.clones))
    info = start_report('snapfs repository mount benchmark (issue 13, Done when)', a, work,
                        binary, [('qemu-img', version('qemu-img'))], params,
                        [('workdir', work),
                         ('mount', '-f -o workers=2,keep_primary=64,retries=0,repository=on '
                          '(primary, secondary and the baselines\' copies on one disk)')])
    results = {'machine': info, 'rows': []}
    failed = []
    b = Bench(a, binary, work)
    try:
        b.prepare()
        b.fs.start()
        b.fs.wait_volume(VOL)
        log('   chunk size %d MiB' % (b.chunk_size() // MiB))
        b.full()
        b.incremental()
        b.dedup()
        b.gc()
    except FAILURES as e:
        failed.append(e)
    except KeyboardInterrupt:
        log('repomount: interrupted')
        failed.append(BenchError('interrupted'))
    finally:
        b.fs.stop()
    results['rows'] = b.rows
    results['detail'] = b.res
    rc = finish('repomount', a, results, t_start, failed,
                medians='medians [min..max] n, ratio of medians (paired range); '
                        'bytes: worst repetition judged')
    log('cold reads of the views: bash bench/run.sh --views (viewbench.py)')
    remove_work(a, work, own_work, parts=['mnt', 'source', 'primary', 'secondary', 'tmp',
                                           'convert'] if not own_work else None)
    return rc


if __name__ == '__main__':
    sys.exit(main())
