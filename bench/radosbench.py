#!/usr/bin/env python3
"""radosbench.py - issue 14's targets: the repository on RADOS against RBD.

One run, one freshly started one-host Ceph cluster (tools/ceph-cluster.sh in
WORK/ceph, on a free 127.x.y.z; stopped at the end, also after a failure or
Ctrl-C): one ceph-mon, one ceph-mgr, one ceph-osd on a BlueStore file of
8 GiB, pools of one replica.  Two pools on that OSD: `snapfs` (application
rados) holds the repository, `rbdbench` (application rbd) the baseline's
images.  One snapfs daemon mounted with
-o secondary=rados:snapfs,ceph_conf=WORK/ceph/ceph.conf (workers=2,
keep_primary=64, retries=0); PRIMARY and SOURCE on the local disk.

Volumes: FULL volumes v0..v<FULL-1> of GIB GiB virtual, each with WRITTEN
GiB of mixed data (16 pieces, one every GIB/16 GiB; per 4 MiB: 50% random,
30% unique text-like, 20% zero bytes; as bench/repomount.py, each volume
with its own seed so that no chunk of one equals a chunk of another).

  a. Full backup: snapshot f of v<k> (`mkdir`), its backup timed from the
     backup.start to the backup.end line of SOURCE/snapfs.log, against
     `qemu-img convert -U -f qcow2 -O raw SRC rbd:rbdbench/v<k>:conf=CONF`
     of the same data (SRC: the snapshot's layer, or the volume file
     itself when the convert runs first; both hold all of v<k>'s data),
     then `rbd rm`.  Page cache dropped before each side; sides alternate
     (even k: backup first); one volume per repetition, so every full
     backup goes into a repository that holds none of its chunks.
     Target: median backup / median convert <= 1.3x.
  b. Incremental backup, INC repetitions over v0 (each over the previous
     backup): INC_MIB writes of 1 MiB of random data at distinct random
     1 MiB-aligned offsets (one qemu-io run on PRIMARY/v0.qcow2), snapshot
     s<k>, wait BackedUp.  The pool is listed before and after (with each
     object's size and `snapfs.t` xattr) and its statistics read once they
     settle (`rados df`: write ops, bytes written).  Objects written = the
     new objects (chunks, index, manifest, anything else) plus the
     pre-existing objects other than chunks whose size or `snapfs.t`
     changed (a lease, repository.json); pre-existing chunks whose
     `snapfs.t` changed are touches (a setxattr, no data) and are counted
     apart.  Reference: the distinct chunks the writes overlap.  Targets,
     on the worst repetition: objects written / chunks changed <= 1.2x;
     bytes written to the pool (its statistics) / (chunks changed x chunk
     size + the index) <= 1.2x.  The guest's bytes (INC_MIB MiB) are
     printed beside them.

Normally started by `bash bench/run.sh --rados`; by hand, as root:

  /usr/bin/python3 bench/radosbench.py --bin build/fs/snapfs [--gib=N] [--written=N]
      [--full=N] [--inc=N] [--inc-mib=N] [--seed=N] [--json=FILE]

Python 3 standard library, benchlib.py and repomount.py beside it, and
Debian's python3-rados (the `rados` module; ceph-common depends on it: it
is /usr/bin/python3's, not a virtualenv's).  Needs root.
"""

import json
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (FAILURES, BenchError, GiB, MiB, Refused, Snapfs,  # noqa: E402
                      arg_parser, backing_file, drop_caches, end_on_signals, finish,
                      fmt_s, fsync_file, loadavg, log, median, parse_args, quick_or_full,
                      remove_work, run, setup, spread, start_report, version)
import repomount  # noqa: E402
from repomount import fmt_mib, mixed_piece  # noqa: E402

try:
    import rados
except ImportError:         # refused in main(), with the reason
    rados = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CEPH_CLUSTER_SH = os.path.join(ROOT, 'tools', 'ceph-cluster.sh')
POOL = 'snapfs'
RBD_POOL = 'rbdbench'
MON_PORT = 3300
PIECES = 16
T_FULL = 1.3
T_INC_OBJECTS = 1.2
T_INC_BYTES = 1.2
XATTR = 'snapfs.t'
# BlueStore's file is 8 GiB (tools/ceph-cluster.sh); the OSD stops writes
# at 95% (full ratio): stay well below
POOL_BUDGET = 6 * GiB
# written and removed before the first measurement (--warm-gib): see
# Cluster.warm_osd()
WARM_GIB = 5


def free_loopback_addr():
    """An address 127.x.y.z on which nothing listens on MON_PORT (the tests'
    clusters and another run's use others)."""
    rng = random.SystemRandom()
    for _ in range(50):
        addr = '127.%d.%d.%d' % (rng.randrange(1, 255), rng.randrange(0, 256),
                                 rng.randrange(1, 255))
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex((addr, MON_PORT)) != 0:
                return addr
    raise BenchError('no free 127.x.y.z address for a Ceph monitor')


class Cluster:
    """tools/ceph-cluster.sh's one-host cluster in @dir, and a librados
    connection to it (the benchmark's own: listings, xattrs, statistics)."""

    def __init__(self, dir):
        self.dir = dir
        self.conf = os.path.join(dir, 'ceph.conf')
        self.started = False
        self.conn = None
        self.io = None

    def start(self):
        addr = free_loopback_addr()
        t = time.perf_counter()
        self.started = True
        out = run(['bash', CEPH_CLUSTER_SH, 'start', self.dir, '--addr', addr,
                   '--pool', POOL], timeout=300, check=False)
        if out.returncode != 0 or out.stdout.strip().splitlines()[-1:] != [self.conf]:
            raise BenchError('tools/ceph-cluster.sh start exited %d:\n%s%s'
                             % (out.returncode, out.stdout, out.stderr[-3000:]))
        self.ceph('osd', 'pool', 'create', RBD_POOL, '8', '8')
        self.ceph('osd', 'pool', 'application', 'enable', RBD_POOL, 'rbd')
        self.conn = rados.Rados(conffile=self.conf)
        self.conn.conf_set('rados_mon_op_timeout', '30')
        self.conn.conf_set('rados_osd_op_timeout', '60')
        self.conn.connect(timeout=30)
        self.io = self.conn.open_ioctx(POOL)
        # the new pool's placement groups active (a write waits for them),
        # and RBD's own objects of the pool (rbd_directory, rbd_info) made
        # before the first timed convert
        with self.conn.open_ioctx(RBD_POOL) as io:
            io.write_full('.radosbench-probe', b'')
            io.remove_object('.radosbench-probe')
        self.rbd('create', '--size', '4M', '%s/warm-up' % RBD_POOL)
        self.rbd('rm', '%s/warm-up' % RBD_POOL)
        log('   cluster up on %s:%d in %.1f s (%s)' % (addr, MON_PORT, time.perf_counter() - t,
                                                      self.conf))

    def warm_osd(self, gib):
        """Write @gib GiB of 4 MiB objects (3 writers) and remove them.

        The OSD's BlueStore is a sparse file on the work disk: the first
        write to a region of it makes ext4 allocate the blocks, which the
        OSD pays as system time (about 3 CPU s per 800 MiB here, against
        0.4 s for a rewrite of space BlueStore had freed), whoever writes.
        A production OSD on a block device never pays it.  Without this
        step the two sides of part a pay it unevenly (a convert's image is
        removed after it, so later converts reuse its space, while every
        full backup writes where nothing was) and part a measures the
        file system under the OSD.  BlueStore reuses the freed space for
        the writes that follow."""
        if gib <= 0:
            return
        t = time.perf_counter()
        osd = self.osd_pid()
        c0 = cpu_seconds(osd)
        n = int(gib * GiB) // (4 * MiB)
        data = os.urandom(4 * MiB)
        names = iter(range(n))
        lock = threading.Lock()
        errors = []

        def writer(io):
            while True:
                with lock:
                    i = next(names, None)
                if i is None or errors:
                    return
                try:
                    io.write_full('.warm.%d' % i, data)
                except rados.Error as e:
                    errors.append(e)

        with self.conn.open_ioctx(RBD_POOL) as io:
            threads = [threading.Thread(target=writer, args=(io,)) for _ in range(3)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            for i in range(n):
                try:
                    io.remove_object('.warm.%d' % i)
                except rados.ObjectNotFound:
                    pass
        if errors:
            raise errors[0]
        c1 = cpu_seconds(osd)
        log('   OSD warmed: %d objects of 4 MiB (%.1f GiB) written and removed in %.1f s, '
            'OSD CPU %s' % (n, n * 4 * MiB / GiB, time.perf_counter() - t,
                            '%.1f s' % (c1 - c0) if c0 is not None and c1 is not None
                            else 'unknown'))

    def osd_pid(self):
        try:
            with open(os.path.join(self.dir, 'run', 'osd.0.pid')) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        if self.io is not None:
            self.io.close()
            self.io = None
        if self.conn is not None:
            self.conn.shutdown()
            self.conn = None
        if not self.started:
            return
        self.started = False
        out = run(['bash', CEPH_CLUSTER_SH, 'stop', self.dir], timeout=120, check=False)
        if out.returncode != 0:
            log('radosbench: tools/ceph-cluster.sh stop exited %d: %s'
                % (out.returncode, out.stderr[-1500:]))

    def ceph(self, *args):
        return run(['ceph', '-c', self.conf, '--connect-timeout', '10'] + list(args),
                   timeout=120).stdout

    def rbd(self, *args):
        return run(['rbd', '-c', self.conf, '--no-progress'] + list(args), timeout=600).stdout

    def objects(self, pool=POOL):
        """Names of @pool's objects (default namespace)."""
        if pool == POOL:
            return [o.key for o in self.io.list_objects()]
        with self.conn.open_ioctx(pool) as io:
            return [o.key for o in io.list_objects()]

    def snapshot(self):
        """{name: (size, snapfs.t or None)} of every object of the pool."""
        out = {}
        for name in self.objects():
            try:
                size, _ = self.io.stat(name)
            except rados.ObjectNotFound:
                continue
            try:
                t = self.io.get_xattr(name, XATTR).decode()
            except (rados.ObjectNotFound, rados.NoData):
                t = None
            out[name] = (size, t)
        return out

    def read(self, name):
        size, _ = self.io.stat(name)
        return self.io.read(name, size)

    def stats(self, pool=POOL):
        """Pool statistics as `rados df` reads them (the manager's digest,
        a second or two behind): num_objects, num_wr, num_wr_kb."""
        if pool == POOL:
            return self.io.get_stats()
        with self.conn.open_ioctx(pool) as io:
            return io.get_stats()

    def settled_stats(self, objects, pool=POOL, timeout=60):
        """The statistics once they count @objects objects and have not
        moved for three reads a second apart."""
        deadline = time.monotonic() + timeout
        last, same = None, 0
        while time.monotonic() < deadline:
            s = self.stats(pool)
            key = (s['num_objects'], s['num_wr'], s['num_wr_kb'])
            same = same + 1 if key == last and s['num_objects'] == objects else 0
            if same >= 2:
                return s
            last = key
            time.sleep(1)
        raise BenchError('the statistics of pool %s did not settle at %d objects within %d s '
                         '(last: %s)' % (pool, objects, timeout, last))


def cpu_seconds(pid):
    """User + system CPU seconds of process @pid and of its children it
    has waited for (/proc/PID/stat), None when it is gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, TypeError):
        return None
    # utime, stime, cutime, cstime: fields 14-17 of stat(5), 12-15 here
    return sum(int(x) for x in fields[11:15]) / os.sysconf('SC_CLK_TCK')


def rss_kib(pid, key):
    """VmRSS or VmHWM (peak) of process @pid in KiB, None when gone."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except (OSError, TypeError, ValueError):
        pass
    return None


class RadosSnapfs(Snapfs):
    """The daemon with its repository in pool POOL of @conf."""

    def __init__(self, binary, work, opts, conf):
        super().__init__(binary, work, opts)
        self.conf = conf
        os.rmdir(self.secondary)        # not used: the repository is in RADOS

    def command(self):
        o = 'primary=%s,secondary=rados:%s,ceph_conf=%s,%s' % (self.primary, POOL, self.conf,
                                                               self.opts)
        return [self.binary, '-f', '-o', o, self.source, self.mnt]


class Bench(repomount.Bench):
    """repomount.Bench's ways with the mount (events, the log's times,
    waiting for BackedUp), on a RADOS repository."""

    def __init__(self, a, binary, work):     # pylint: disable=super-init-not-called
        self.a = a
        self.work = work
        self.cluster = Cluster(os.path.join(work, 'ceph'))
        self.fs = RadosSnapfs(binary, work, 'workers=2,keep_primary=64,retries=0',
                              self.cluster.conf)
        self.tmp = os.path.join(work, 'tmp')
        os.makedirs(self.tmp, exist_ok=True)
        self.disk = repomount.Disk(work)
        self.logpath = os.path.join(self.fs.source, 'snapfs.log')
        self.rows = []
        self.res = {}
        self.chunk = None
        self.rng = random.Random(a.seed)
        self.tail = None
        self.vols = ['v%d' % k for k in range(a.full)]

    def vpath(self, vol):
        return os.path.join(self.fs.primary, vol + '.qcow2')

    def chunk_size(self):
        if self.chunk is None:
            self.chunk = json.loads(self.cluster.read('repository.json'))['chunk_size']
        return self.chunk

    # ---- the volumes -----------------------------------------------------------------

    def prepare(self):
        a = self.a
        virtual = int(a.gib * GiB)
        piece = int(a.written * GiB) // PIECES // (4 * MiB) * (4 * MiB)
        stride = virtual // PIECES // MiB * MiB
        if piece <= 0 or piece > stride:
            raise BenchError('--written must be at least 64 MiB and at most --gib')
        log('== [load %s] volumes %s: %s GiB virtual, %d pieces of %d MiB every %d MiB each '
            '(qemu-io write -s, fsync)' % (loadavg(), ', '.join(self.vols), a.gib, PIECES,
                                           piece // MiB, stride // MiB))
        t = time.perf_counter()
        src = os.path.join(self.tmp, 'piece.raw')
        for k, vol in enumerate(self.vols):
            path = self.vpath(vol)
            run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, str(virtual)])
            for i in range(PIECES):
                # seeds 1000 apart: the text-like chunks of two volumes differ
                mixed_piece(src, piece, 1000 * (k + 1) + i * 7)
                run(['qemu-io', '-f', 'qcow2', '-c',
                     'write -q -s %s %d %d' % (src, i * stride, piece), path], timeout=1800)
            fsync_file(path)
        os.unlink(src)
        self.written = PIECES * piece
        log('   written in %.0f s' % (time.perf_counter() - t))

    def write_random(self, vol, mib):
        """@mib writes of 1 MiB of random data at distinct random 1 MiB-aligned
        offsets of @vol; returns the offsets."""
        slots = self.rng.sample(range(int(self.a.gib * 1024)), mib)
        cmds, files = [], []
        for i, s in enumerate(slots):
            p = os.path.join(self.tmp, 'w%04d' % i)
            with open(p, 'wb') as f:
                f.write(os.urandom(MiB))
            files.append(p)
            cmds += ['-c', 'write -q -s %s %d %d' % (p, s * MiB, MiB)]
        run(['qemu-io', '-f', 'qcow2'] + cmds + [self.vpath(vol)], timeout=1200)
        fsync_file(self.vpath(vol))
        for p in files:
            os.unlink(p)
        return [s * MiB for s in slots]

    # ---- a. the full backup -------------------------------------------------------------

    def convert_rbd(self, vol):
        """Seconds of `qemu-img convert` of @vol's data (its newest layer
        if it has one, else the volume file) to a new RBD image, the
        image's objects, then the image removed."""
        src = backing_file(self.vpath(vol)) or self.vpath(vol)
        dst = 'rbd:%s/%s:conf=%s' % (RBD_POOL, vol, self.cluster.conf)
        drop_caches()
        osd0 = cpu_seconds(self.cluster.osd_pid())
        kids0 = os.times()
        t = time.perf_counter()
        run(['qemu-img', 'convert', '-U', '-f', 'qcow2', '-O', 'raw', src, dst], timeout=3600)
        dt = time.perf_counter() - t
        kids1 = os.times()
        cpu = dict(client=kids1.children_user + kids1.children_system - kids0.children_user -
                   kids0.children_system, osd=cpu_seconds(self.cluster.osd_pid()) - osd0)
        n = sum(1 for o in self.cluster.objects(RBD_POOL) if o.startswith('rbd_data.'))
        self.cluster.rbd('rm', '%s/%s' % (RBD_POOL, vol))
        return dt, n, os.path.basename(src), cpu

    def full(self):
        a = self.a
        log('== [load %s] a. full backup to RADOS vs qemu-img convert to RBD (%d repetitions, '
            'one volume each)' % (loadavg(), a.full))
        backup, wall, conv, pairs_b, pairs_c, objs, rbd_objs, stored = [], [], [], [], [], [], [], []
        cpu_b, cpu_c = [], []
        for k, vol in enumerate(self.vols):
            order = ('snap', 'conv') if k % 2 == 0 else ('conv', 'snap')
            for side in order:
                if side == 'conv':
                    dt, n, src, cpu = self.convert_rbd(vol)
                    conv.append(dt)
                    rbd_objs.append(n)
                    cpu_c.append(cpu)
                    log('   rep %d: qemu-img convert of %s to rbd:%s/%s: %s (%d data objects); '
                        'CPU: qemu-img %s, ceph-osd %s'
                        % (k, src, RBD_POOL, vol, fmt_s(dt), n, fmt_s(cpu['client']),
                           fmt_s(cpu['osd'])))
                    continue
                before = set(self.cluster.objects())
                drop_caches()
                fs0, osd0 = cpu_seconds(self.fs.pid), cpu_seconds(self.cluster.osd_pid())
                w, b, _ = self.take(vol, 'f')
                cpu = dict(client=cpu_seconds(self.fs.pid) - fs0,
                           osd=cpu_seconds(self.cluster.osd_pid()) - osd0)
                cpu_b.append(cpu)
                new = set(self.cluster.objects()) - before
                ev = self.backup_event(vol, 'f')
                if ev['incremental']:
                    raise BenchError('%s/f was backed up incrementally: %s' % (vol, ev['message']))
                size = sum(self.cluster.io.stat(o)[0] for o in new)
                backup.append(b)
                wall.append(w)
                objs.append(len(new))
                stored.append(size)
                log('   rep %d: backup of %s/f: %s (mkdir to BackedUp %s); read %s, %d chunks '
                    'written, %d holes; %d new objects, %s; CPU from mkdir to quiet: snapfs '
                    '%s, ceph-osd %s'
                    % (k, vol, fmt_s(b), fmt_s(w), fmt_mib(ev['read']), ev['written'],
                       ev['holes'], len(new), fmt_mib(size), fmt_s(cpu['client']),
                       fmt_s(cpu['osd'])))
            pairs_b.append(backup[-1])
            pairs_c.append(conv[-1])
        pairs = [x / y for x, y in zip(pairs_b, pairs_c)]
        ratio = median(backup) / median(conv)
        self.res['full'] = dict(backup=backup, wall=wall, convert=conv, ratio=ratio, pairs=pairs,
                                objects=objs, stored=stored, rbd_objects=rbd_objs,
                                cpu_backup=cpu_b, cpu_convert=cpu_c)
        log('   backup %s; convert %s; ratio %.2fx (pairs %.2f..%.2f)'
            % (spread(backup, fmt_s), spread(conv, fmt_s), ratio, min(pairs), max(pairs)))
        hwm, rss = rss_kib(self.fs.pid, 'VmHWM'), rss_kib(self.fs.pid, 'VmRSS')
        osd = rss_kib(self.cluster.osd_pid(), 'VmRSS')
        if hwm and rss and osd:
            log('   memory: snapfs peak RSS %.0f MiB (now %.0f MiB); ceph-osd RSS %.0f MiB'
                % (hwm / 1024, rss / 1024, osd / 1024))
            self.res['memory_mib'] = dict(snapfs_peak=hwm / 1024, snapfs=rss / 1024,
                                          osd=osd / 1024)
        self.rows.append(dict(
            name='a. full backup to RADOS (%.1f GiB data) vs qemu-img convert to RBD'
            % (self.written / GiB),
            base=spread(conv, fmt_s), snap=spread(backup, fmt_s),
            ratio='%.2fx (%.2f..%.2f)' % (ratio, min(pairs), max(pairs)),
            target='<= %.1fx' % T_FULL, ok=ratio <= T_FULL))

    # ---- b. the incremental backup --------------------------------------------------------

    def incremental(self):
        a = self.a
        cs = self.chunk_size()
        vol = self.vols[0]
        log('== [load %s] b. incremental backup of %s after %d x 1 MiB random writes '
            '(%d repetitions, chunk %d MiB)' % (loadavg(), vol, a.inc_mib, a.inc, cs // MiB))
        oq, bq, times, rows = [], [], [], []
        for k in range(a.inc):
            snap = 's%d' % k
            offsets = self.write_random(vol, a.inc_mib)
            changed = len({o // cs for o in offsets})
            before = self.cluster.snapshot()
            s0 = self.cluster.settled_stats(len(before))
            drop_caches()
            w, b, _ = self.take(vol, snap)
            after = self.cluster.snapshot()
            s1 = self.cluster.settled_stats(len(after))
            ev = self.backup_event(vol, snap)
            if not ev['incremental']:
                raise BenchError('%s/%s was not incremental: %s' % (vol, snap, ev['message']))
            new = {n: after[n] for n in after.keys() - before.keys()}
            kinds = {'chunk': 0, 'index': 0, 'manifest': 0, 'other': 0}
            index_size = 0
            for n, (size, _) in new.items():
                if n.startswith('.chunks/'):
                    kinds['chunk'] += 1
                elif n.endswith('.index'):
                    kinds['index'] += 1
                    index_size += size
                elif n.endswith('.json') and n.startswith('volumes/'):
                    kinds['manifest'] += 1
                else:
                    kinds['other'] += 1
            rewritten = sorted(n for n in after.keys() & before.keys()
                               if after[n] != before[n] and not n.startswith('.chunks/'))
            touched = sum(1 for n in after.keys() & before.keys()
                          if after[n] != before[n] and n.startswith('.chunks/'))
            gone = len(before.keys() - after.keys())
            written = len(new) + len(rewritten)
            wr_bytes = (s1['num_wr_kb'] - s0['num_wr_kb']) * 1024
            wr_ops = s1['num_wr'] - s0['num_wr']
            ref_bytes = changed * cs + index_size
            oq.append(written / changed)
            bq.append(wr_bytes / ref_bytes)
            times.append(b)
            rows.append(dict(changed=changed, new=kinds, rewritten=rewritten, touched=touched,
                             removed=gone, objects_written=written, bytes_written=wr_bytes,
                             write_ops=wr_ops, reference_bytes=ref_bytes, seconds=b, wall=w,
                             chunks_written=ev['written'], read=ev['read']))
            log('   rep %d: backup of %s/%s: %s (mkdir to BackedUp %s); %d chunks changed; '
                'objects: %d new (%d chunks, %d index, %d manifest, %d other), %d rewritten%s, '
                '%d chunks touched, %d removed; pool: %d write ops, %s written (reference %s: '
                'changed chunks + index %s; the guest wrote %d MiB); read %s'
                % (k, vol, snap, fmt_s(b), fmt_s(w), changed, len(new), kinds['chunk'],
                   kinds['index'], kinds['manifest'], kinds['other'], len(rewritten),
                   ' (%s)' % ', '.join(rewritten) if rewritten else '', touched, gone, wr_ops,
                   fmt_mib(wr_bytes), fmt_mib(ref_bytes), fmt_mib(index_size), a.inc_mib,
                   fmt_mib(ev['read'])))
        self.res['incremental'] = dict(reps=rows, objects_ratio=oq, bytes_ratio=bq)
        ch = [r['changed'] for r in rows]
        self.rows.append(dict(
            name='b1. incremental: objects written vs chunks changed (%d MiB written)' % a.inc_mib,
            base=spread(ch, str), snap=spread([r['objects_written'] for r in rows], str),
            ratio='%.3fx (%.3f..%.3f)' % (median(oq), min(oq), max(oq)),
            target='<= %.1fx' % T_INC_OBJECTS, ok=max(oq) <= T_INC_OBJECTS))
        self.rows.append(dict(
            name='b2. incremental: bytes written to the pool vs changed chunks + index',
            base=spread([r['reference_bytes'] for r in rows], fmt_mib),
            snap=spread([r['bytes_written'] for r in rows], fmt_mib),
            ratio='%.3fx (%.3f..%.3f)' % (median(bq), min(bq), max(bq)),
            target='<= %.1fx' % T_INC_BYTES, ok=max(bq) <= T_INC_BYTES))
        self.rows.append(dict(
            name='b3. incremental: time (information)', base='-', snap=spread(times, fmt_s),
            ratio='-', target='-', ok=None))


def main():
    ap = arg_parser(__doc__, 'a 1 GiB volume with 0.25 GiB written, 2 repetitions, 32 MiB '
                    'written before each incremental')
    ap.add_argument('--gib', type=float, default=None, help='virtual size, GiB (2; quick 1)')
    ap.add_argument('--written', type=float, default=None,
                    help='data written in each volume, GiB (1; quick 0.25)')
    ap.add_argument('--full', type=int, default=None,
                    help='full backup repetitions, one volume each (3; quick 2)')
    ap.add_argument('--inc', type=int, default=None, help='incremental repetitions (3; quick 2)')
    ap.add_argument('--inc-mib', type=int, default=None,
                    help='MiB written at random 1 MiB offsets before each incremental '
                    '(128; quick 32)')
    ap.add_argument('--seed', type=int, default=14, help='of the random write offsets')
    ap.add_argument('--warm-gib', type=float, default=WARM_GIB,
                    help='GiB written to the OSD and removed before measuring (%(default)s; '
                    '0: none): the first write to its sparse BlueStore file costs ext4 '
                    'allocations')
    a = parse_args(ap)
    quick_or_full(a, gib=(1, 2), written=(0.25, 1), full=(2, 3), inc=(2, 3), inc_mib=(32, 128))
    if rados is None:
        log('radosbench: no python3-rados for %s (run it with /usr/bin/python3; the package '
            'comes with ceph-common, tools/packages.txt)' % sys.executable)
        return 2
    if a.inc_mib > a.gib * 1024:
        log('radosbench: --inc-mib is more than the volume')
        return 2
    # what the pool and the baseline's image hold at most at once
    budget = a.full * a.written * GiB * 0.8 + a.inc * min(4 * a.inc_mib * MiB, a.gib * GiB) + \
        a.written * GiB
    if budget > POOL_BUDGET:
        log('radosbench: about %.1f GiB would be stored; the cluster\'s OSD has 8 GiB: '
            'use smaller --full, --written, --inc or --inc-mib' % (budget / GiB))
        return 2
    try:
        binary, work, own_work = setup('radosbench', a, ('qemu-img', 'qemu-io', 'rbd', 'ceph',
                                                         'fusermount3'))
    except Refused as e:
        log(str(e))
        return 2
    with open(binary, 'rb') as f:
        if b'ceph_conf=' not in f.read():
            log('radosbench: %s knows no ceph_conf= option: a snapfs without the RADOS '
                'backend' % binary)
            return 2
    if 'rbd' not in run(['qemu-img', '--help'], check=False).stdout.split():
        log('radosbench: qemu-img has no rbd driver (Debian: qemu-block-extra, '
            'tools/packages.txt)')
        return 2
    end_on_signals()
    t_start = time.perf_counter()
    params = ('%s GiB virtual, %s GiB written per volume, %d full repetitions, %d incremental '
              'of %d MiB' % (a.gib, a.written, a.full, a.inc, a.inc_mib))
    info = start_report('snapfs RADOS repository benchmark (issue 14)', a, work, binary,
                        [('qemu-img', version('qemu-img')),
                         ('ceph', run(['ceph', '--version']).stdout.strip())], params,
                        [('workdir', work),
                         ('cluster', 'tools/ceph-cluster.sh: 1 mon, 1 mgr, 1 OSD (BlueStore '
                          'file of 8 GiB on the work disk), size 1; pools %s (rados) and %s '
                          '(rbd), pg_num 8' % (POOL, RBD_POOL)),
                         ('mount', '-f -o secondary=rados:%s,ceph_conf=...,workers=2,'
                          'keep_primary=64,retries=0' % POOL)])
    results = {'machine': info, 'rows': []}
    failed = []
    b = Bench(a, binary, work)
    try:
        b.prepare()
        b.cluster.start()
        b.cluster.warm_osd(a.warm_gib)
        b.fs.start()
        for vol in b.vols:
            b.fs.wait_volume(vol)
        b.full()
        b.incremental()
    except FAILURES as e:
        failed.append(e)
    except rados.Error as e:
        failed.append(e)
    except KeyboardInterrupt:
        log('radosbench: interrupted')
        failed.append(BenchError('interrupted'))
    finally:
        try:
            b.fs.stop()
        finally:
            b.cluster.stop()
    results['rows'] = b.rows
    results['detail'] = b.res
    rc = finish('radosbench', a, results, t_start, failed,
                medians='medians [min..max] n, ratio of medians (paired range); '
                        'objects and bytes: worst repetition judged')
    remove_work(a, work, own_work, parts=['mnt', 'source', 'primary', 'tmp', 'ceph']
                if not own_work else None)
    return rc


if __name__ == '__main__':
    sys.exit(main())
