#!/usr/bin/env python3
"""snapbench.py - the snapfs benchmarks of issue 2, as ratios against a
baseline measured in the same run.

  1. mkdir latency: a volume with 64 MiB allocated vs one with 8 GiB
     allocated (same virtual size).  Target: large <= 1.5x small, and the
     large one's median under 50 ms.
  2. mkdir -> BackedUp (state file polled every 5 ms) vs a bare
     `qemu-img convert -U -f qcow2 -O qcow2` of the same volume plus fsync
     of the output, both from a cold page cache.  Target: <= 1.15x.
  3. reading a backed-up image through the mount vs reading the same file
     directly on secondary storage, 1 MiB reads, warm and cold.
     Targets: >= 0.9x warm, >= 0.5x cold (throughput).

The machine is shared and noisy: every side is repeated, the two sides of a
comparison alternate in order, the medians are compared and the spread
(min..max of each side, range of the paired ratios) is printed.

Normally started by bench/run.sh (which owns the work directory and cleans
up after a crash of this script); it can also be run by hand:

  python3 bench/snapbench.py --bin build/fs/snapfs [--quick]

Python 3 standard library only (and benchlib.py beside it).  Needs root
(drop_caches, FUSE).
"""

import json
import os
import shutil
import sys
import time

from benchlib import (FAILURES, BenchError, GiB, MiB, Refused, Snapfs, arg_parser,
                      backing_file, children_of, drop_caches, end_on_signals, epoch,
                      finish, fmt_gbs, fmt_ms, fmt_s, fsync_file, log, make_volume,
                      median, paired, parse_args, quick_or_full, remove_work, run,
                      setup, spread, start_report, version)

POLL = 0.005            # state file poll interval for benchmark 2
READ_BUF = 1 * MiB      # read size for benchmark 3


def log_event_times(logpath, vol, snap):
    """{event type: epoch seconds} from the daemon's log (millisecond
    stamps), for the events of one snapshot; {} when the log says nothing."""
    found = {}
    try:
        with open(logpath) as f:
            for line in f:
                if '"snapshot":"%s"' % snap not in line or \
                        '"volume":"%s"' % vol not in line:
                    continue
                stamp = line.split(' ', 1)[0]
                for kind in ('snapshot.take', 'backup.start', 'backup.end'):
                    if '"type":"%s"' % kind in line:
                        found[kind] = epoch(stamp, '%Y-%m-%dT%H:%M:%S.%fZ')
    except (OSError, ValueError):
        return {}
    return found


def read_file(path, buf):
    """Read @path sequentially with len(buf)-byte reads; (bytes, seconds)."""
    mv = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    with open(path, 'rb', buffering=0) as f:
        while True:
            n = f.readinto(mv)
            if not n:
                break
            total += n
    return total, time.perf_counter() - t0


def folio_census(path, limit=64 * MiB):
    """Page-cache folios behind the first @limit bytes of @path (cached).

    Maps the file, touches every page, and reads each page's flags from
    /proc/self/pagemap and /proc/kpageflags (root only): how many pages sit
    in large folios (compound head/tail) and how many in order-0 folios.
    Explains warm-read gaps that come from the kernel, not from snapfs.
    Returns dict(large=, small=) or None where the kernel hides this.
    """
    import mmap
    import struct
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        size = min(st.st_size, limit) // 4096 * 4096
        if size == 0:
            return None
        m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    try:
        for off in range(0, size, 4096):
            m[off]
        base = None
        with open('/proc/self/maps') as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 5 and int(fields[4]) == st.st_ino and \
                        int(fields[3].split(':')[0], 16) == os.major(st.st_dev) and \
                        int(fields[3].split(':')[1], 16) == os.minor(st.st_dev):
                    base = int(fields[0].split('-')[0], 16)
                    break
        if base is None:
            return None
        large = small = 0
        with open('/proc/self/pagemap', 'rb') as pm, open('/proc/kpageflags', 'rb') as kf:
            for off in range(0, size, 4096):
                pm.seek((base + off) // 4096 * 8)
                entry = struct.unpack('Q', pm.read(8))[0]
                pfn = entry & ((1 << 55) - 1)
                if not entry >> 63 & 1 or pfn == 0:
                    continue
                kf.seek(pfn * 8)
                flags = struct.unpack('Q', kf.read(8))[0]
                if flags >> 15 & 3:         # KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL
                    large += 1
                else:
                    small += 1
        return dict(large=large, small=small) if large + small else None
    except (OSError, ValueError):
        return None
    finally:
        m.close()


# ---- the benchmarks -------------------------------------------------------------


def bench_mkdir(fs, a, results):
    """1: mkdir latency, 64 MiB vs LARGE allocated."""
    small, large = 'alloc64m', 'alloc%dg' % a.large_gib
    virtual = max(16, a.large_gib * 2) * GiB
    log('== 1. mkdir latency: %s (64 MiB allocated) vs %s (%d GiB allocated), '
        'virtual %d GiB each' % (small, large, a.large_gib, virtual // GiB))
    t0 = time.perf_counter()
    make_volume(os.path.join(fs.primary, small + '.qcow2'), virtual, 64 * MiB, 0x10)
    make_volume(os.path.join(fs.primary, large + '.qcow2'), virtual,
                a.large_gib * GiB, 0x20)
    os.sync()
    log('   volumes written with qemu-io in %.0f s' % (time.perf_counter() - t0))
    fs.wait_volume(small)
    fs.wait_volume(large)

    samples = {small: [], large: []}
    # one untimed round first (first use of each volume creates its layer dir)
    rounds = [('w', True)] + [(str(i), False) for i in range(a.mkdir_samples)]
    for i, (tag, warmup) in enumerate(rounds):
        order = (small, large) if i % 2 == 0 else (large, small)
        for vol in order:
            fs.wait_quiet()
            os.sync()   # start each sample with no dirty data to write back
            time.sleep(0.05)
            d = fs.snap_dir(vol, 'm' + tag)
            t = time.perf_counter()
            os.mkdir(d)
            dt = time.perf_counter() - t
            st = fs.state(vol, 'm' + tag)
            if st not in ('BackingUp', 'BackedUp'):
                raise BenchError('snapshot %s/%s is %s after mkdir' % (vol, d, st))
            # delete it at once: cancels its queued/running copy, so that no
            # background copy loads the disk during the next sample
            os.rmdir(d)
            if not warmup:
                samples[vol].append(dt)
    fs.wait_quiet()
    leftovers = check_leftovers(fs)

    # for information (no target): mkdir on the small volume while the large
    # volume's backup is being copied by the one worker, on the same disk
    busy = []
    os.mkdir(fs.snap_dir(large, 'busy'))
    deadline = time.monotonic() + 30
    while not children_of(fs.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    for i in range(min(5, a.mkdir_samples)):
        t = time.perf_counter()
        os.mkdir(fs.snap_dir(small, 'busy%d' % i))
        busy.append(time.perf_counter() - t)
        time.sleep(0.2)
    copying = bool(children_of(fs.proc.pid))
    for i in range(len(busy)):
        os.rmdir(fs.snap_dir(small, 'busy%d' % i))
    os.rmdir(fs.snap_dir(large, 'busy'))
    fs.wait_quiet()

    # the floor: what one qemu-img create -u (the one subprocess in a take) costs
    floor = []
    backing = os.path.join(fs.primary, large + '.qcow2')
    for i in range(a.mkdir_samples):
        tmp = os.path.join(fs.work, 'floor.qcow2')
        t = time.perf_counter()
        run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-u',
             '-b', backing, tmp, str(virtual)])
        floor.append(time.perf_counter() - t)
        os.unlink(tmp)

    s, l = samples[small], samples[large]
    pairs = [y / x for x, y in zip(s, l)]
    ratio = median(l) / median(s)
    log('   64 MiB : %s' % spread(s, fmt_ms))
    log('   %d GiB  : %s' % (a.large_gib, spread(l, fmt_ms)))
    log('   ratio %.2fx (paired ratios %.2f..%.2f); target <= 1.5x and < 50 ms'
        % (ratio, min(pairs), max(pairs)))
    log('   for reference, a bare `qemu-img create -u` overlay: %s'
        % spread(floor, fmt_ms))
    log('   for information, mkdir on the 64 MiB volume while the %d GiB one is '
        'being copied: %s%s' % (a.large_gib, spread(busy, fmt_ms),
                                '' if copying else ' (the copy ended before the last sample)'))
    if leftovers:
        log('   WARNING: left behind after %d cancelled copies: %s'
            % (2 * (a.mkdir_samples + 1), ', '.join(leftovers)))
    results['mkdir'] = dict(small_s=s, large_s=l, floor_s=floor, busy_s=busy,
                            leftovers=leftovers,
                            large_gib=a.large_gib, ratio=ratio,
                            pair_min=min(pairs), pair_max=max(pairs))
    results['rows'].append(dict(
        name='1 mkdir, %d GiB vs 64 MiB allocated' % a.large_gib,
        base=fmt_ms(median(s)), snap=fmt_ms(median(l)),
        ratio=paired(ratio, pairs),
        target='<= 1.5x', ok=ratio <= 1.5))
    results['rows'].append(dict(
        name='1 mkdir absolute, %d GiB volume' % a.large_gib,
        base='-', snap='%s (%s..%s)' % (fmt_ms(median(l)), fmt_ms(min(l)),
                                        fmt_ms(max(l))),
        ratio='-', target='< 50 ms', ok=median(l) < 0.050))


def check_leftovers(fs):
    """Files a quiet snapfs should not have: anything in SECONDARY/.tmp, any
    backup of a deleted snapshot, more than two layers of a volume."""
    found = []
    tmp = os.path.join(fs.secondary, '.tmp')
    if os.path.isdir(tmp):
        found += ['.tmp/' + n for n in os.listdir(tmp)]
    vols = os.path.join(fs.secondary, 'volumes')
    for vol in os.listdir(vols) if os.path.isdir(vols) else ():
        names = os.listdir(os.path.join(vols, vol))
        live = len(os.listdir(fs.p('backed-up', 'volumes', vol))) \
            if os.path.isdir(fs.p('backed-up', 'volumes', vol)) else 0
        if len(names) > live:
            found.append('%d files in secondary/volumes/%s, %d under backed-up/'
                         % (len(names), vol, live))
    layers = os.path.join(fs.primary, '.snapfs')
    for vol in os.listdir(layers) if os.path.isdir(layers) else ():
        names = [n for n in os.listdir(os.path.join(layers, vol))]
        if len(names) > 2:
            found.append('%d layers in primary/.snapfs/%s' % (len(names), vol))
    return found


def bench_copy(fs, a, results):
    """2: mkdir -> BackedUp vs bare qemu-img convert + fsync; then 3 on its result."""
    vol = 'copy%dm' % a.copy_mib
    size = a.copy_mib * MiB
    virtual = size + GiB
    log('== 2. mkdir -> BackedUp vs qemu-img convert + fsync, %d MiB allocated '
        '(virtual %d MiB)' % (a.copy_mib, virtual // MiB))
    vpath = os.path.join(fs.primary, vol + '.qcow2')
    make_volume(vpath, virtual, size, 0x60)
    os.sync()
    fs.wait_volume(vol)
    basedir = os.path.join(fs.work, 'baseline')   # same file system as secondary
    os.makedirs(basedir, exist_ok=True)
    out = os.path.join(basedir, 'out.qcow2')

    def snapfs_side(i):
        name = 'c%d' % i
        fs.wait_quiet()
        drop_caches()
        wall0 = time.time()
        t = time.perf_counter()
        os.mkdir(fs.snap_dir(vol, name))
        tm = time.perf_counter() - t
        deadline = t + 120 + 60 * size / GiB
        while True:
            st = fs.state(vol, name)
            if st == 'BackedUp':
                break
            if st != 'BackingUp':
                raise BenchError('backup of %s/%s ended %s; see %s'
                                 % (vol, name, st, fs.p('events')))
            if time.perf_counter() > deadline:
                raise BenchError('backup of %s/%s takes too long' % (vol, name))
            time.sleep(POLL)
        dt = time.perf_counter() - t
        wall1 = wall0 + dt
        if not os.path.exists(fs.p('backed-up', 'volumes', vol, name + '.qcow2')):
            raise BenchError('%s/%s is BackedUp but not under backed-up/' % (vol, name))
        ev = log_event_times(os.path.join(fs.source, 'snapfs.log'), vol, name)
        if 'backup.start' in ev and 'backup.end' in ev:
            phases.append((ev['backup.start'] - wall0,
                           ev['backup.end'] - ev['backup.start'],
                           wall1 - ev['backup.end']))
        return dt, tm

    def baseline_side():
        # the same input snapfs copies: the newest snapshot's layer, which is
        # the backing file of the volume file (same data: nothing writes)
        fs.wait_quiet()
        src = backing_file(vpath)
        if not src:
            raise BenchError('%s has no backing file after a snapshot' % vpath)
        drop_caches()
        t = time.perf_counter()
        run(['qemu-img', 'convert', '-U', '-f', 'qcow2', '-O', 'qcow2', src, out],
            timeout=3600)
        tc = time.perf_counter() - t
        fsync_file(out)
        dt = time.perf_counter() - t
        bare_phases.append((tc, dt - tc))
        os.unlink(out)
        return dt

    # an untimed snapshot first, so that the bare copy always has a layer to
    # read and both sides always read a chain of the same shape
    fs.wait_quiet()
    os.mkdir(fs.snap_dir(vol, 'cw'))
    fs.wait_quiet()
    os.rmdir(fs.snap_dir(vol, 'cw'))
    snap, base, mk = [], [], []
    phases, bare_phases = [], []
    for i in range(a.copy_samples):
        if i % 2 == 0:
            dt, tm = snapfs_side(i)
            b = baseline_side()
        else:
            b = baseline_side()
            dt, tm = snapfs_side(i)
        snap.append(dt)
        base.append(b)
        mk.append(tm)
        log('   pair %d (%s first): snapfs %.2f s, bare %.2f s'
            % (i, 'snapfs' if i % 2 == 0 else 'bare', dt, b))
        if i > 0:   # keep space bounded: only the newest backup stays
            os.rmdir(fs.snap_dir(vol, 'c%d' % (i - 1)))
    fs.wait_quiet()
    pairs = [x / y for x, y in zip(snap, base)]
    ratio = median(snap) / median(base)
    log('   snapfs mkdir->BackedUp : %s (of which mkdir %s)'
        % (spread(snap, fmt_s), fmt_ms(median(mk))))
    log('   bare convert + fsync   : %s' % spread(base, fmt_s))
    log('   ratio %.2fx (paired ratios %.2f..%.2f); target <= 1.15x'
        % (ratio, min(pairs), max(pairs)))
    if phases:
        log('   where the time goes (medians; snapfs from its log, ms stamps):')
        log('     snapfs: mkdir->backup.start %s, backup.start->backup.end %s '
            '(convert, fsync||checksum, check, info, manifest, renames), '
            'backup.end->state seen %s'
            % tuple(fmt_ms(median([p[k] for p in phases])) for k in range(3)))
    log('     bare:   convert %s, fsync %s'
        % tuple(fmt_ms(median([p[k] for p in bare_phases])) for k in range(2)))
    results['copy'] = dict(mib=a.copy_mib, snapfs_s=snap, bare_s=base,
                           mkdir_s=mk, ratio=ratio, pair_min=min(pairs),
                           pair_max=max(pairs), snapfs_phases_s=phases,
                           bare_phases_s=bare_phases)
    results['rows'].append(dict(
        name='2 mkdir->BackedUp vs convert+fsync, %d MiB' % a.copy_mib,
        base=fmt_s(median(base)), snap=fmt_s(median(snap)),
        ratio=paired(ratio, pairs),
        target='<= 1.15x', ok=ratio <= 1.15))
    return vol, 'c%d' % (a.copy_samples - 1)


def bench_read(fs, a, results, vol, snap):
    """3: read the backed-up image through the mount vs directly."""
    via = fs.p('backed-up', 'volumes', vol, snap + '.qcow2')
    with open(fs.p('backed-up', 'volumes', vol, snap + '.json')) as f:
        manifest = json.load(f)
    direct = os.path.join(fs.secondary, 'volumes', vol, manifest['uuid'] + '.qcow2')
    size = os.stat(direct).st_size
    if os.stat(via).st_size != size:
        raise BenchError('size through the mount %d != on secondary %d'
                         % (os.stat(via).st_size, size))
    log('== 3. read %s (%d MiB) through the mount vs directly, %d KiB reads'
        % (snap + '.qcow2', size // MiB, READ_BUF // 1024))
    buf = bytearray(READ_BUF)
    st_dev = os.stat(fs.mnt).st_dev
    bdi = '/sys/class/bdi/%d:%d/read_ahead_kb' % (os.major(st_dev), os.minor(st_dev))
    sec_dev = os.stat(direct).st_dev
    blk = '/sys/dev/block/%d:%d' % (os.major(sec_dev), os.minor(sec_dev))
    disk_ra = blk + ('/queue/read_ahead_kb' if os.path.isdir(blk + '/queue')
                     else '/../queue/read_ahead_kb')   # a partition
    ra = {}
    for k, path in (('mount', bdi), ('disk', disk_ra)):
        try:
            with open(path) as f:
                ra[k] = f.read().strip() + ' KiB'
        except OSError:
            ra[k] = '?'
    log('   kernel readahead: mount %s, secondary disk %s' % (ra['mount'], ra['disk']))
    results['read_ahead'] = ra

    # untimed: both read once side by side and compared (warms both caches)
    b2 = bytearray(READ_BUF)
    with open(via, 'rb', buffering=0) as f1, open(direct, 'rb', buffering=0) as f2:
        while True:
            n1, n2 = f1.readinto(buf), f2.readinto(b2)
            if n1 != n2 or buf[:n1] != b2[:n2]:
                raise BenchError('the mount serves other bytes than secondary storage')
            if not n1:
                break

    # why warm reads differ: the kernel's page cache for each side
    census = {k: folio_census(p) for k, p in (('mount', via), ('direct', direct))}
    for k, c in census.items():
        log('   page cache, %s: %s' % (k, 'unknown' if not c else
            '%d pages in large folios, %d in order-0 folios' % (c['large'], c['small'])))
    results['folios'] = census

    res = {}
    for mode in ('warm', 'cold'):
        m, d = [], []
        for i in range(a.read_samples):
            sides = (('mount', via), ('direct', direct))
            if i % 2:
                sides = sides[::-1]
            for side, path in sides:
                if mode == 'cold':
                    drop_caches()
                n, dt = read_file(path, buf)
                if n != size:
                    raise BenchError('read %d bytes of %s, expected %d' % (n, path, size))
                (m if side == 'mount' else d).append(size / dt)
        pairs = [x / y for x, y in zip(m, d)]
        ratio = median(m) / median(d)
        target = 0.9 if mode == 'warm' else 0.5
        log('   %s: mount %s | direct %s | ratio %.2fx (paired %.2f..%.2f); '
            'target >= %.1fx' % (mode, spread(m, fmt_gbs), spread(d, fmt_gbs),
                                  ratio, min(pairs), max(pairs), target))
        res[mode] = dict(mount_Bps=m, direct_Bps=d, ratio=ratio,
                         pair_min=min(pairs), pair_max=max(pairs))
        results['rows'].append(dict(
            name='3 read %s, mount vs direct, %d MiB' % (mode, size // MiB),
            base=fmt_gbs(median(d)), snap=fmt_gbs(median(m)),
            ratio=paired(ratio, pairs),
            target='>= %.1fx' % target, ok=ratio >= target))
    results['read'] = res


# ---- the run ------------------------------------------------------------------


def main():
    ap = arg_parser(__doc__, 'smaller sizes and fewer samples (2 GiB, 1 GiB)')
    ap.add_argument('--large-gib', type=int)
    ap.add_argument('--copy-mib', type=int)
    ap.add_argument('--mkdir-samples', type=int)
    ap.add_argument('--copy-samples', type=int)
    ap.add_argument('--read-samples', type=int)
    ap.add_argument('--only', default='1,2,3',
                    help='which benchmarks (3 needs 2): e.g. 1 or 2,3')
    a = parse_args(ap)
    quick_or_full(a, large_gib=(2, 8), copy_mib=(1024, 2048), mkdir_samples=(6, 20),
                  copy_samples=(2, 6), read_samples=(2, 6))
    only = set(a.only.split(','))
    if '3' in only:
        only.add('2')

    try:
        binary, work, own_work = setup('snapbench', a,
                                       ('qemu-img', 'qemu-io', 'fusermount3'))
        need = (('1' in only) * (a.large_gib * GiB + 64 * MiB)
                + ('2' in only) * 4 * a.copy_mib * MiB + GiB)
        free = shutil.disk_usage(work).free
        if free < need:
            raise Refused('snapbench: %s has %d MiB free, needs about %d MiB'
                          % (work, free // MiB, need // MiB))
    except Refused as e:
        sys.exit(str(e))
    end_on_signals()

    info = start_report(
        'snapfs benchmarks', a, work, binary,
        [('qemu_img', version('qemu-img'))],
        dict(large_gib=a.large_gib, copy_mib=a.copy_mib,
             mkdir_samples=a.mkdir_samples, copy_samples=a.copy_samples,
             read_samples=a.read_samples),
        [('work dir', work),
         ('mount', '-f -o workers=1,keep_primary=1,retries=0 (secondary on the '
          'same disk as primary)')])
    log()

    results = dict(machine=info, rows=[])
    fs = Snapfs(binary, work, 'workers=1,keep_primary=1,retries=0')
    t_start = time.perf_counter()
    failed = []
    try:
        fs.start()
        if '1' in only:
            bench_mkdir(fs, a, results)
            log()
        if '2' in only:
            vol, snap = bench_copy(fs, a, results)
            log()
            if '3' in only:
                bench_read(fs, a, results, vol, snap)
                log()
    except FAILURES + (KeyboardInterrupt,) as e:
        failed.append(e)
    finally:
        fs.stop()
        remove_work(a, work, own_work)
    return finish('snapbench', a, results, t_start, failed)


if __name__ == '__main__':
    sys.exit(main())
