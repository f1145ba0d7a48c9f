#!/usr/bin/env python3
"""viewbench.py - reading the synthesized views of issue 13, cold.

A volume of GIB GiB of mixed data (random, text-like, zero chunks) is
backed up twice: by a daemon with -o repository=on (into a chunk
repository) and by one with repository=off (today's full qcow2 file).  Then,
each after `sync; drop_caches`, cold sequential reads of:

  (a) direct: an equal raw file on the same disk (the baseline)
  (b) raw:    MOUNT/images/volumes/<vol>/<snap>.raw      (repository=on)
  (c) qcow2:  MOUNT/backed-up/volumes/<vol>/<snap>.qcow2 (repository=on)
  (d) file:   MOUNT/backed-up/volumes/<vol>/<snap>.qcow2 (repository=off)

with `dd bs=1M`, `cat` and 128 KiB reads (rsync's block size; in Python,
readinto of a 128 KiB buffer).  Samples alternate across the targets;
printed are the median GB/s, min..max and the ratio of medians to (a).
With --before OLD, a third daemon running the snapfs binary OLD (also
repository=on) backs up the same volume and its views (b') and (c') are
read in the same alternation: a before/after in one run.
No target: this measures (docs/benchmarks.md, "Reading the views").
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (GiB, MiB, BenchError, Refused, Snapfs, arg_parser,  # noqa: E402
                      drop_caches, end_on_signals, fsync_file, log, median,
                      parse_args, remove_work, run, setup, start_report)

VOL, SNAP = 'views', 's1'


def mixed_data(path, size):
    """@size bytes: per 4 MiB, 50% random, 30% text-like, 20% zero."""
    text = (b'Lorem ipsum dolor sit amet, consectetur adipiscing elit; '
            b'/usr/lib/x86_64-linux-gnu/libc.so.6 0x%08x\n' * 64)
    with open(path, 'wb') as f:
        for k in range(size // (4 * MiB)):
            kind = k % 10
            if kind < 5:
                f.write(os.urandom(4 * MiB))
            elif kind < 8:
                blk = (text * (4 * MiB // len(text) + 1))[:4 * MiB - 8]
                f.write(blk + k.to_bytes(8, 'little'))
            else:
                f.seek(4 * MiB, os.SEEK_CUR)
        f.truncate(size)
    fsync_file(path)


def backup(fs, vol, snap):
    fs.wait_volume(vol)
    os.mkdir(fs.snap_dir(vol, snap))
    deadline = time.monotonic() + 600
    while fs.state(vol, snap) != 'BackedUp':
        if time.monotonic() > deadline or fs.state(vol, snap) not in ('BackingUp', 'Taken'):
            raise BenchError('backup of %s/%s: %s' % (vol, snap, fs.state(vol, snap)))
        time.sleep(0.05)
    fs.wait_quiet()


def read_dd(path):
    run(['dd', 'if=' + path, 'of=/dev/null', 'bs=1M'])


def read_cat(path):
    with open(os.devnull, 'wb') as null:
        subprocess.run(['cat', path], stdout=null, check=True)


def read_128k(path):
    buf = bytearray(128 * 1024)
    with open(path, 'rb', buffering=0) as f:
        while f.readinto(buf):
            pass


READERS = [('dd bs=1M', read_dd), ('cat', read_cat), ('128 KiB reads', read_128k)]


def main():
    ap = arg_parser(__doc__, 'a 1 GiB volume, 2 samples')
    ap.add_argument('--gib', type=int, default=None, help='volume data, GiB (2)')
    ap.add_argument('--samples', type=int, default=None, help='per target and reader (3)')
    ap.add_argument('--readers', default='dd,cat,128k',
                    help='which readers, comma-separated: dd,cat,128k')
    ap.add_argument('--opts', default='', help='extra -o options for the daemons')
    ap.add_argument('--before', help='an older snapfs binary: read its views too')
    a = parse_args(ap)
    gib = a.gib or (1 if a.quick else 2)
    samples = a.samples or (2 if a.quick else 3)
    pick = {'dd': 'dd bs=1M', 'cat': 'cat', '128k': '128 KiB reads'}
    readers = [r for r in READERS if r[0] in [pick[x] for x in a.readers.split(',')]]
    try:
        binary, work, own_work = setup('viewbench', a, ['qemu-img', 'dd', 'fusermount3'])
    except Refused as e:
        log(str(e))
        return 2
    end_on_signals()
    start_report('viewbench (issue 13: reading the views)', a, work, binary,
                 [('qemu-img', run(['qemu-img', '--version']).stdout.splitlines()[0])],
                 '%d GiB mixed data, %d samples' % (gib, samples), [('workdir', work)])
    extra = (',' + a.opts) if a.opts else ''
    on = Snapfs(binary, os.path.join(work, 'on'),
                'workers=1,keep_primary=1,retries=0,repository=on' + extra)
    off = Snapfs(binary, os.path.join(work, 'off'),
                 'workers=1,keep_primary=1,retries=0,repository=off' + extra)
    old = None
    if a.before:
        old = Snapfs(os.path.realpath(a.before), os.path.join(work, 'old'),
                     'workers=1,keep_primary=1,retries=0,repository=on' + extra)
    daemons = [on, off] + ([old] if old else [])
    try:
        raw = os.path.join(work, 'direct.raw')
        t = time.perf_counter()
        mixed_data(raw, gib * GiB)
        for fs in daemons:
            run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw,
                 os.path.join(fs.primary, VOL + '.qcow2')], timeout=1800)
            fsync_file(os.path.join(fs.primary, VOL + '.qcow2'))
        log('  data written in %.0f s' % (time.perf_counter() - t))
        for fs in daemons:
            fs.start()
        t = time.perf_counter()
        for fs in daemons:
            backup(fs, VOL, SNAP)
        log('  backed up (%d daemons) in %.0f s' % (len(daemons), time.perf_counter() - t))
        targets = [
            ('(a) direct file', raw),
            ('(b) raw view', on.p('images', 'volumes', VOL, SNAP + '.raw')),
            ('(c) qcow2 view', on.p('backed-up', 'volumes', VOL, SNAP + '.qcow2')),
            ('(d) qcow2 file (repository=off)',
             off.p('backed-up', 'volumes', VOL, SNAP + '.qcow2')),
        ]
        if old:
            targets += [
                ("(b') raw view, --before binary", old.p('images', 'volumes', VOL, SNAP + '.raw')),
                ("(c') qcow2 view, --before binary",
                 old.p('backed-up', 'volumes', VOL, SNAP + '.qcow2')),
            ]
        for name, path in targets:
            log('  %-34s %6.0f MiB  %s' % (name, os.path.getsize(path) / MiB, path))
        res = {}
        for rname, fn in readers:
            for i in range(samples):
                order = targets if i % 2 == 0 else targets[::-1]
                for name, path in order:
                    os.sync()
                    drop_caches()
                    t = time.perf_counter()
                    fn(path)
                    dt = time.perf_counter() - t
                    res.setdefault((rname, name), []).append(os.path.getsize(path) / dt)
        log('')
        log('  cold sequential reads, GB/s (median, min..max), ratio to (a) of medians')
        for rname, _ in readers:
            base = median(res[(rname, targets[0][0])])
            log('  %s:' % rname)
            for name, _ in targets:
                xs = res[(rname, name)]
                log('    %-34s %5.2f GB/s (%4.2f..%4.2f)  %.2fx'
                    % (name, median(xs) / 1e9, min(xs) / 1e9, max(xs) / 1e9,
                       median(xs) / base))
        log('  load average at the end: %s' % open('/proc/loadavg').read().split()[:3])
        return 0
    except BenchError as e:
        log('viewbench: %s' % e)
        return 2
    finally:
        for fs in daemons:
            fs.stop()
        remove_work(a, work, own_work, parts=['on', 'off', 'old'])


if __name__ == '__main__':
    sys.exit(main())
