#!/usr/bin/env python3
"""policybench.py - the snapfs benchmarks of issue 5 (policies, big listings).

  1. Scheduler cost with 1,000 policies: snapfs mounted with
     `-o testclock,libvirt=none,workers=2`, tiny volumes, 1,000 policy files
     (one per target and interval: volumes x {hourly, daily, weekly,
     monthly}).  One simulated day is stepped hour by hour (24 writes to
     MOUNT/.clock, each just after that hour's slots) and each step waits
     until that hour's runs are done; reported: runs per simulated day, CPU
     of the snapfs process (utime+stime, and of its thread snapfs-policy),
     of its children (cutime+cstime: qemu-img) and per run.  A second day is
     stepped in 5-minute steps, 11 of every 12 of which have nothing due:
     CPU per wake with nothing due.  No target: a "report" row.
  2. `ls -l` of a snapshots directory holding 10,000 snapshots vs `ls -l` of
     a plain directory of 10,000 entries on the same disk, warm, alternating,
     back to back (the kernel keeps names and attributes for 1 s).  Target:
     snapfs <= 2x the plain directory.  The 10,000 snapshots are SYNTHETIC:
     rows inserted into the catalog (snapshots table) while snapfs is
     unmounted, because 10,000 real takes (each a take plus a backup) take
     too long, and the listing reads only the catalog.  A cold-ish first run
     after the remount is printed for information.

The machine is shared and noisy: sides alternate, medians are compared, the
spread (min..max, range of the paired ratios) is printed.  CPU is read from
/proc (clock ticks of utime/stime; nanoseconds of schedstat for per-wake
numbers).  Step progress is read from SOURCE/snapfs.log (the daemon's own
log of every event), so that polling costs the daemon nothing; each day's
run count is then checked against MOUNT/events.

Two snapfs bugs met while writing this (commits 1d20551..a0168c2), kept
visible rather than hidden: (a) writing policy files back to back can
deadlock the daemon (snap_policy_write waits for eng->lock inside a catalog
transaction while the policy thread holds eng->lock and waits for the
catalog), so the files are written one at a time, each after snapfs-policy
went back to sleep (--unpaced-writes writes them back to back); (b) under
this workload a job can hang, or the daemon abort, inside GLib 2.74's
g_subprocess_communicate_utf8() called with a GCancellable (engine/proc.c):
a job left with no child process and a silent log for 60 s, a call into the
mount blocked for --watchdog seconds, or the daemon's death end the run
(exit 2) with snapfs's threads printed (gdb) and what day 1 completed.

Normally started by bench/run.sh --policy (which owns the work directory
and cleans up after a crash of this script); by hand:

  python3 bench/policybench.py --bin build/fs/snapfs [--quick]

Python 3 standard library only (and benchlib.py beside it).  Needs root.
"""

import calendar
import datetime
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

from benchlib import (FAILURES, BenchError, LogTail, MiB, Refused, Snapfs,
                      arg_parser, children_of, drop_caches, end_on_signals, finish,
                      fmt_ms, log, median, paired, parse_args, quick_or_full,
                      remove_work, run, setup, spread, start_report, version)

TICK = os.sysconf('SC_CLK_TCK')
HOUR = 3600
DAY = 86400
INTERVALS = ('hourly', 'daily', 'weekly', 'monthly')
WEEKDAYS = ('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')
LS_TARGET = 2.0
STUCK = 60              # seconds a job may sit with no child and no log line
# engine/include/snap.h, enum snap_state: CREATING 0, BACKING_UP 1,
# BACKED_UP 2, BACKUP_FAILED 3.  BackupFailed rows without a job: recovery
# queues nothing for them and checks no file (a BackedUp row would make
# recovery look for its backup and raise an alert for each).
STATE_BACKUP_FAILED = 3


def fmt_us(s):
    return '%.0f us' % (s * 1e6)


def fmt_cpu(s):
    return '%.2f s' % s if s >= 1 else '%.1f ms' % (s * 1e3)


# ---- CPU from /proc ----------------------------------------------------------------


def proc_stat(pid):
    """(utime+stime, cutime+cstime) of process @pid, in seconds."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return ((int(fields[11]) + int(fields[12])) / TICK,
            (int(fields[13]) + int(fields[14])) / TICK)


def threads(pid):
    """{tid: dict(comm, ticks (s), ns (schedstat run time, s), vcs)}."""
    out = {}
    base = '/proc/%d/task' % pid
    for tid in os.listdir(base):
        try:
            with open('%s/%s/stat' % (base, tid)) as f:
                stat = f.read()
            with open('%s/%s/schedstat' % (base, tid)) as f:
                ns = int(f.read().split()[0])
            vcs = 0
            with open('%s/%s/status' % (base, tid)) as f:
                for line in f:
                    if line.startswith('voluntary_ctxt_switches:'):
                        vcs = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue        # the thread ended meanwhile
        comm = stat.split('(', 1)[1].rsplit(')', 1)[0]
        fields = stat.rsplit(')', 1)[1].split()
        out[int(tid)] = dict(comm=comm, ticks=(int(fields[11]) + int(fields[12])) / TICK,
                             ns=ns / 1e9, vcs=vcs)
    return out


class Cpu:
    """One reading of everything: process, children, each thread."""

    def __init__(self, pid):
        self.t = time.perf_counter()
        self.own, self.kids = proc_stat(pid)
        self.threads = threads(pid)

    def thread(self, comm):
        return [v for v in self.threads.values() if v['comm'] == comm]

    def delta(self, before):
        """What happened since @before: dict of seconds and counts."""
        d = dict(wall=self.t - before.t, own=self.own - before.own,
                 kids=self.kids - before.kids)
        # per thread name, over the threads alive at both readings (schedstat)
        by = {}
        for tid, v in self.threads.items():
            b = before.threads.get(tid)
            if b is None or b['comm'] != v['comm']:
                continue
            e = by.setdefault(v['comm'], dict(ticks=0.0, ns=0.0, vcs=0))
            e['ticks'] += v['ticks'] - b['ticks']
            e['ns'] += v['ns'] - b['ns']
            e['vcs'] += v['vcs'] - b['vcs']
        d['threads'] = by
        d['ns_all'] = sum(e['ns'] for e in by.values())
        return d


def policy_thread(cpu, what):
    t = cpu.thread('snapfs-policy')
    if len(t) != 1:
        raise BenchError('found %d threads named snapfs-policy' % len(t))
    return t[0][what]


# ---- benchmark 1: policies ---------------------------------------------------------


def plan(n_policies, n_hourly):
    """The policies: [(name, volume, interval, schedule)] and the volume
    count.  The n_hourly hourly ones fire at minute 00 (the default); the
    rest are split evenly over daily, weekly, monthly, each spread over the
    hours of the day, weekly ones over the 7 weekdays and monthly ones over
    days 1-28: a day sees every daily policy, about 1/7 of the weekly ones
    and 1/28 of the monthly ones, all at minute 00."""
    rest = n_policies - n_hourly
    per = [n_hourly, rest // 3 + (rest % 3 > 0), rest // 3 + (rest % 3 > 1),
           rest // 3]
    nvol = max(per)
    out = []
    for interval, count in zip(INTERVALS, per):
        for i in range(count):
            if interval == 'hourly':
                sched = 'hourly'
            elif interval == 'daily':
                sched = 'daily@%02d:00' % (i % 24)
            elif interval == 'weekly':
                sched = 'weekly@%s-%02d:00' % (WEEKDAYS[i % 7], (i // 7) % 24)
            else:
                sched = 'monthly@%d-%02d:00' % (1 + i % 28, (i // 28) % 24)
            out.append(('p%04d' % len(out), 'v%03d' % i, interval, sched))
    return out, nvol


def slots(sched, t0, t1):
    """Slot times (epoch, UTC) of @sched in (t0, t1]."""
    kind, _, at = sched.partition('@')
    out = []
    day = t0 - t0 % DAY
    while day <= t1:
        d = datetime.datetime.fromtimestamp(day, datetime.timezone.utc)
        if kind == 'hourly':
            cands = [day + h * HOUR for h in range(24)]
        elif kind == 'daily':
            hh = int(at.split(':')[0])
            cands = [day + hh * HOUR]
        elif kind == 'weekly':
            wd, hm = at.split('-')
            cands = [day + int(hm.split(':')[0]) * HOUR] \
                if WEEKDAYS.index(wd) == d.weekday() else []
        else:
            dd, hm = at.split('-')
            cands = [day + int(hm.split(':')[0]) * HOUR] \
                if int(dd) == d.day else []
        out += [c for c in cands if t0 < c <= t1]
        day += DAY
    return out


def due(policies, t0, t1):
    """How many policies run when the clock moves from @t0 to @t1 (a policy
    that missed several slots runs once)."""
    return sum(1 for p in policies if slots(p[3], t0, t1))


class EventTail(LogTail):
    """policy.run / policy.fail lines the daemon logged since the start
    (SOURCE/snapfs.log: 'event: {json}'); reading it costs snapfs nothing."""

    def __init__(self, path):
        super().__init__(path)
        self.part = b''
        self.runs = 0
        self.fails = []

    def poll(self):
        data = self.read()
        self.offset += len(data)
        data = self.part + data
        lines = data.split(b'\n')
        self.part = lines.pop()
        for line in lines:
            if b'"policy.run"' not in line and b'"policy.fail"' not in line:
                continue
            _, _, js = line.decode('utf-8', 'replace').partition(' event: ')
            try:
                ev = json.loads(js)
            except ValueError:
                continue
            if ev.get('type') == 'policy.run':
                self.runs += 1
            elif ev.get('type') == 'policy.fail':
                self.fails.append(ev)

    def done(self):
        return self.runs + len(self.fails)


class Watchdog:
    """If the benchmark's own thread is stuck in one call into the mount
    for @seconds (no kick()), print where snapfs's threads are (gdb, else
    their wchan) and kill the daemon, which makes the stuck call fail."""

    def __init__(self, fs, seconds=120):
        import threading
        self.fs = fs
        self.seconds = seconds
        self.last = time.monotonic()
        self.what = ''
        self.fired = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def kick(self, what=None):
        self.last = time.monotonic()
        if what is not None:
            self.what = what

    def watch(self):
        while not self.done.wait(1.0):
            if time.monotonic() - self.last < self.seconds or self.fs.proc is None:
                continue
            pid = self.fs.proc.pid
            self.fired = '%s: no answer from snapfs for %d s' % (self.what, self.seconds)
            log('   WATCHDOG: %s; its threads:' % self.fired)
            for line in thread_report(pid):
                log('     ' + line)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return

    def stop(self):
        self.done.set()


def thread_report(pid):
    """Each thread of @pid: gdb's backtrace when gdb is there, else wchan."""
    if shutil.which('gdb'):
        p = subprocess.run(['gdb', '-p', str(pid), '-batch', '-ex', 'thread apply all bt'],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        return [l for l in p.stdout.splitlines()
                if l.startswith('Thread ') or l.startswith('#')]
    out = []
    for tid in sorted(os.listdir('/proc/%d/task' % pid)):
        try:
            with open('/proc/%d/task/%s/comm' % (pid, tid)) as f:
                comm = f.read().strip()
            with open('/proc/%d/task/%s/wchan' % (pid, tid)) as f:
                out.append('%s %s %s' % (tid, comm, f.read().strip()))
        except OSError:
            pass
    return out


def wait_policy_thread_asleep(pid, vcs_before, limit=1.0):
    """Until the thread snapfs-policy has gone to sleep again after the wake
    a policy write causes (its voluntary context switches grew, and stay
    put for 5 ms); see --unpaced-writes."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        v = policy_thread(Cpu(pid), 'vcs')
        if v > vcs_before:
            time.sleep(0.005)
            if policy_thread(Cpu(pid), 'vcs') == v:
                return
        else:
            time.sleep(0.001)


def set_clock(fs, t):
    fd = os.open(fs.p('.clock'), os.O_WRONLY)
    try:
        os.write(fd, b'%d\n' % t)
    finally:
        os.close(fd)


class Poller:
    """wait until @n policy runs are logged, jobs/ is empty and snapfs has
    no child; counts its own listings of jobs/ (they cost snapfs CPU)."""

    def __init__(self, fs, tail, dog):
        self.fs = fs
        self.tail = tail
        self.dog = dog
        self.listings = 0

    def wait(self, n, timeout):
        deadline = time.monotonic() + timeout
        calm = 0
        last_offset, last_change = self.tail.offset, time.monotonic()
        while True:
            self.dog.kick()
            if self.fs.proc.poll() is not None:
                died(self.fs)
            self.tail.poll()
            if self.tail.done() > n:
                raise BenchError('%d policy runs logged, expected %d'
                                 % (self.tail.done(), n))
            busy = self.tail.done() < n
            if not busy:
                self.listings += 1
                jobs = os.listdir(self.fs.p('jobs'))
                kids = children_of(self.fs.proc.pid)
                busy = bool(jobs or kids)
                # a job left with no child process and a silent log: stuck
                if jobs and not kids and self.tail.offset == last_offset and \
                        time.monotonic() - last_change > STUCK:
                    self.stuck(jobs)
            if self.tail.offset != last_offset:
                last_offset, last_change = self.tail.offset, time.monotonic()
            calm = 0 if busy else calm + 1
            if calm >= 2:
                return
            if time.monotonic() > deadline:
                raise BenchError('after %d s: %d of %d policy runs logged, jobs: %s'
                                 % (timeout, self.tail.done(), n,
                                    os.listdir(self.fs.p('jobs'))[:5]))
            time.sleep(0.05)


    def stuck(self, jobs):
        texts = []
        for j in jobs[:4]:
            try:
                with open(self.fs.p('jobs', j)) as f:
                    texts.append(' '.join(f.read().split()))
            except OSError:
                pass
        log('   STUCK: for %d s jobs/ has %d job(s), snapfs has no child process '
            'and logs nothing: %s' % (STUCK, len(jobs), '; '.join(texts)))
        log('   its threads:')
        for line in thread_report(self.fs.proc.pid):
            log('     ' + line)
        raise BenchError('snapfs left %d job(s) running with no child process '
                         'for %d s (a hang; threads above)' % (len(jobs), STUCK))


def died(fs):
    """snapfs ended by itself: show the end of its stderr and raise."""
    rc = fs.proc.returncode
    log('   snapfs DIED (exit status %s%s); the end of its output:'
        % (rc, ', signal %d' % -rc if rc < 0 else ''))
    try:
        with open(os.path.join(fs.work, 'snapfs.out'), 'rb') as f:
            f.seek(max(0, os.path.getsize(f.name) - 3000))
            for line in f.read().decode('utf-8', 'replace').splitlines()[-12:]:
                log('     ' + line[:400])
    except OSError:
        pass
    raise BenchError('snapfs died (exit status %s)' % rc)


def events_count(fs):
    """policy.run and policy.fail lines in MOUNT/events."""
    runs = fails = 0
    with open(fs.p('events'), 'rb') as f:
        for line in f:
            if b'"policy.run"' in line or b'"policy.fail"' in line:
                t = json.loads(line).get('type')
                runs += t == 'policy.run'
                fails += t == 'policy.fail'
    return runs, fails


def pick_day(now):
    """Midnight UTC of a day at least two days after @now whose day of the
    month is 1-28 (so that monthly policies can fall on it)."""
    d = (now - now % DAY) + 2 * DAY
    while datetime.datetime.fromtimestamp(d, datetime.timezone.utc).day > 28:
        d += DAY
    return d


def bench_policies(binary, work, a, results):
    pols, nvol = plan(a.policies, a.hourly)
    counts = {k: sum(1 for p in pols if p[2] == k) for k in INTERVALS}
    log('== 1. scheduler cost: %d policies (%s) on %d volumes, keep=2, tz=UTC'
        % (len(pols), ', '.join('%d %s' % (counts[k], k) for k in INTERVALS), nvol))
    log('   hourly at minute 00; daily spread over the 24 hours; weekly over '
        'the 7 weekdays x hours; monthly over days 1-28 x hours')
    fs = Snapfs(binary, work, 'testclock,libvirt=none,workers=2')
    # tiny volumes: 16 MiB virtual, 256 KiB written; copies of one file
    tmpl = os.path.join(work, 'template.qcow2')
    run(['qemu-img', 'create', '-q', '-f', 'qcow2', tmpl, str(16 * MiB)])
    run(['qemu-io', '-f', 'qcow2', '-c', 'write -q -P 0x5a 0 256k', tmpl])
    for i in range(nvol):
        shutil.copyfile(tmpl, os.path.join(fs.primary, 'v%03d.qcow2' % i))
    os.unlink(tmpl)
    os.sync()
    res = dict(policies=len(pols), volumes=nvol, counts=counts)
    results['policies'] = res
    dog = None
    try:
        fs.start()
        dog = Watchdog(fs, a.watchdog)
        deadline = time.monotonic() + 60
        while len(os.listdir(fs.p('volumes'))) < nvol:
            if time.monotonic() > deadline:
                raise BenchError('only %d of %d volumes showed up'
                                 % (len(os.listdir(fs.p('volumes'))), nvol))
            time.sleep(0.1)
        with open(fs.p('.clock')) as f:
            now = int(f.read())
        day1 = pick_day(now)
        t0 = day1 - 1800
        set_clock(fs, t0)
        t = time.perf_counter()
        if not a.unpaced_writes:
            log('   policy files written one at a time, each after snapfs-policy went '
                'back to sleep: back-to-back writes can deadlock snapfs (a write '
                'holds the catalog and waits for eng->lock, the woken policy thread '
                'holds eng->lock and waits for the catalog; --unpaced-writes shows it)')
        for name, vol, _, sched in pols:
            dog.kick('writing policies/%s' % name)
            vcs = policy_thread(Cpu(fs.proc.pid), 'vcs')
            fd = os.open(fs.p('policies', name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o600)
            try:
                os.write(fd, ('target=volume:%s schedule=%s keep=2 tz=UTC\n'
                              % (vol, sched)).encode())
            finally:
                os.close(fd)
            if not a.unpaced_writes:
                wait_policy_thread_asleep(fs.proc.pid, vcs)
        dog.kick('after the policy writes')
        log('   %d policy files written in %.1f s; clock at %s'
            % (len(pols), time.perf_counter() - t, iso(t0)))
        if len(os.listdir(fs.p('policies'))) != len(pols):
            raise BenchError('policies/ lists %d files, expected %d'
                             % (len(os.listdir(fs.p('policies'))), len(pols)))
        with open(fs.p('policies', pols[0][0])) as f:
            log('   policies/%s reads: %s' % (pols[0][0], f.read().strip().replace('\n', ' | ')))

        tail = EventTail(os.path.join(fs.source, 'snapfs.log'))
        tail.poll()
        poller = Poller(fs, tail, dog)
        fs.wait_quiet()

        # --- day 1: 24 steps of an hour ---
        d1 = datetime.datetime.fromtimestamp(day1, datetime.timezone.utc)
        log('   day 1: %s (%s), 24 steps of 1 h, each to HH:00:30'
            % (d1.strftime('%Y-%m-%d'), d1.strftime('%A')))
        prev = t0
        steps1 = []
        c_start = Cpu(fs.proc.pid)
        runs0 = tail.done()
        for h in range(24):
            t = day1 + h * HOUR + 30
            n = due(pols, prev, t)
            want = tail.done() + n
            c0 = Cpu(fs.proc.pid)
            dog.kick('day 1, step %02d:00' % h)
            try:
                set_clock(fs, t)
                poller.wait(want, timeout=120 + 10 * n)
            except (BenchError, OSError) as e:
                partial_rows(results, steps1, len(pols))
                if isinstance(e, OSError) and fs.proc.poll() is not None:
                    died(fs)
                raise
            c1 = Cpu(fs.proc.pid)
            d = c1.delta(c0)
            d['runs'] = n
            steps1.append(d)
            prev = t
            log('     %02d:00 %4d runs in %6.1f s; CPU: snapfs %s (policy thread %s), '
                'children %s' % (h, n, d['wall'], fmt_cpu(d['own']),
                                 fmt_cpu(d['threads'].get('snapfs-policy', {}).get('ticks', 0)),
                                 fmt_cpu(d['kids'])))
        c_end = Cpu(fs.proc.pid)
        day = c_end.delta(c_start)
        runs1 = tail.done() - runs0
        pol_ticks1 = policy_thread(c_end, 'ticks') - policy_thread(c_start, 'ticks')
        pol_ns1 = policy_thread(c_end, 'ns') - policy_thread(c_start, 'ns')
        pol_wakes1 = policy_thread(c_end, 'vcs') - policy_thread(c_start, 'vcs')
        ev_runs, ev_fails = events_count(fs)
        if tail.fails or ev_fails:
            log('   WARNING: %d policy runs failed; first: %s'
                % (max(len(tail.fails), ev_fails),
                   tail.fails[0].get('message') if tail.fails else '?'))
        if ev_runs + ev_fails != tail.done():
            raise BenchError('MOUNT/events has %d policy runs, snapfs.log %d'
                             % (ev_runs + ev_fails, tail.done()))
        log('   day 1: %d runs (MOUNT/events agrees: %d policy.run, %d policy.fail) '
            'in %.0f s of wall time' % (runs1, ev_runs, ev_fails, day['wall']))
        log('     CPU: snapfs process %s (of which thread snapfs-policy %s, '
            'schedstat %s, %d voluntary context switches: wakes and waits '
            'inside runs); children (qemu-img) %s'
            % (fmt_cpu(day['own']), fmt_cpu(pol_ticks1), fmt_cpu(pol_ns1),
               pol_wakes1, fmt_cpu(day['kids'])))
        top = sorted(day['threads'].items(), key=lambda kv: -kv[1]['ns'])[:6]
        log('     by thread (schedstat, threads alive all day): ' +
            ', '.join('%s %s' % (k, fmt_cpu(v['ns'])) for k, v in top))
        res['day1'] = dict(runs=runs1, fails=ev_fails, wall_s=day['wall'],
                           own_s=day['own'], kids_s=day['kids'],
                           policy_thread_s=pol_ticks1, policy_thread_ns_s=pol_ns1,
                           policy_wakes=pol_wakes1,
                           threads={k: v['ns'] for k, v in day['threads'].items()},
                           steps=[dict(runs=s['runs'], wall_s=s['wall'], own_s=s['own'],
                                       kids_s=s['kids']) for s in steps1])

        d1r = res['day1']
        per_run = (d1r['own_s'] + d1r['kids_s']) / max(1, runs1)
        report = dict(target='none set', result='report', base='-', ratio='-')
        rows = results['rows']
        rows.append(dict(report, name='1 policy runs per simulated day, %d policies'
                         % len(pols),
                         snap='%d runs (%s)' % (runs1, ', '.join(
                             '%d %s' % (sum(len(slots(p[3], t0, day1 + DAY - 1))
                                            for p in pols if p[2] == k), k)
                             for k in INTERVALS))))
        rows.append(dict(report, name='1 CPU/day, snapfs process (utime+stime)',
                         snap='%s (thread snapfs-policy %s)'
                         % (fmt_cpu(d1r['own_s']), fmt_cpu(d1r['policy_thread_s']))))
        rows.append(dict(report, name='1 CPU/day, children (qemu-img; cutime+cstime)',
                         snap=fmt_cpu(d1r['kids_s'])))
        rows.append(dict(report, name='1 CPU per policy run (process + children)',
                         snap='%s (process %s + children %s)'
                         % (fmt_ms(per_run), fmt_ms(d1r['own_s'] / max(1, runs1)),
                            fmt_ms(d1r['kids_s'] / max(1, runs1)))))

        # --- day 2: 288 steps of 5 minutes ---
        day2 = day1 + DAY
        nsteps = DAY // a.step
        log('   day 2: %d steps of %d min, each to HH:MM:30; CPU of the steps '
            'with nothing due measured from the clock write until both the '
            'policy and the scheduler thread slept again'
            % (nsteps, a.step // 60))
        empty, busy = [], []
        c_start = Cpu(fs.proc.pid)
        runs0 = tail.done()
        listings0 = poller.listings
        for k in range(nsteps):
            t = day2 + k * a.step + 30
            n = due(pols, prev, t)
            want = tail.done() + n
            c0 = Cpu(fs.proc.pid)
            dog.kick('day 2, step %d' % k)
            set_clock(fs, t)
            if n == 0:
                # until both threads went back to sleep (they were woken by
                # the write), then a little more; max 1 s
                v0 = {c: sum(x['vcs'] for x in c0.thread(c))
                      for c in ('snapfs-policy', 'snapfs-sched')}
                limit = time.monotonic() + 1.0
                while time.monotonic() < limit:
                    c1 = Cpu(fs.proc.pid)
                    if all(sum(x['vcs'] for x in c1.thread(c)) > v0[c] for c in v0):
                        break
                    time.sleep(0.005)
                time.sleep(0.02)
                c1 = Cpu(fs.proc.pid)
                empty.append(c1.delta(c0))
            poller.wait(want, timeout=120 + 10 * n)
            if n:
                busy.append(Cpu(fs.proc.pid).delta(c0))
                busy[-1]['runs'] = n
            prev = t
        c_end = Cpu(fs.proc.pid)
        dday = c_end.delta(c_start)
        runs2 = tail.done() - runs0
        ev_runs2, ev_fails2 = events_count(fs)
        if ev_runs2 + ev_fails2 != tail.done():
            raise BenchError('MOUNT/events has %d policy runs, snapfs.log %d'
                             % (ev_runs2 + ev_fails2, tail.done()))
        if not empty:
            raise BenchError('day 2 had no step with nothing due')
        pw = [e['threads'].get('snapfs-policy', {}).get('ns', 0) for e in empty]
        sw = [e['threads'].get('snapfs-sched', {}).get('ns', 0) for e in empty]
        allw = [e['ns_all'] for e in empty]
        wakes = [e['threads'].get('snapfs-policy', {}).get('vcs', 0) for e in empty]
        other = [x - y - z for x, y, z in zip(allw, pw, sw)]
        own_ticks = sum(e['own'] for e in empty)
        # what our own polling cost: listings of jobs/ between and after steps
        c0 = Cpu(fs.proc.pid)
        for _ in range(200):
            os.listdir(fs.p('jobs'))
        per_listing = Cpu(fs.proc.pid).delta(c0)['ns_all'] / 200
        listings = poller.listings - listings0
        log('   day 2: %d runs in %d steps (%d with nothing due) in %.0f s; '
            'CPU: snapfs %s, children %s; MOUNT/events agrees (%d policy.run, '
            '%d policy.fail in all)' % (runs2, nsteps, len(empty), dday['wall'],
                                        fmt_cpu(dday['own']), fmt_cpu(dday['kids']),
                                        ev_runs2, ev_fails2))
        log('     per step with nothing due (schedstat, median [min..max]): '
            'thread snapfs-policy %s, its wakes %s; snapfs-sched %s; other '
            'threads (the FUSE write of .clock) %s; whole process %s'
            % (spread(pw, fmt_us), '%g' % median(wakes), spread(sw, fmt_us),
               spread(other, fmt_us), spread(allw, fmt_us)))
        log('     the same from utime+stime ticks: %s over %d steps = %s a step'
            % (fmt_cpu(own_ticks), len(empty), fmt_us(own_ticks / len(empty))))
        log('     the benchmark\'s own polling: %d listings of jobs/ on day 2 at '
            '%s each (%s); on day 1 %d' % (listings, fmt_us(per_listing),
                                          fmt_cpu(listings * per_listing),
                                          listings0))
        res['day2'] = dict(runs=runs2, steps=nsteps, empty_steps=len(empty),
                           wall_s=dday['wall'], own_s=dday['own'], kids_s=dday['kids'],
                           empty_policy_s=pw, empty_sched_s=sw, empty_other_s=other,
                           empty_all_s=allw, empty_wakes=wakes,
                           empty_own_ticks_s=own_ticks, poll_listing_s=per_listing,
                           listings_day1=listings0, listings_day2=listings)

        rows.append(dict(report, name='1 CPU per wake with nothing due (%d steps)'
                         % len(empty),
                         snap='snapfs-policy %s, process %s'
                         % (fmt_us(median(pw)), fmt_us(median(allw)))))
        if d1r['fails'] or ev_fails2:
            raise BenchError('%d policy runs failed (see MOUNT/events)'
                             % (ev_fails2))
    except OSError:
        if dog and dog.fired:
            raise BenchError('snapfs hung (%s); killed' % dog.fired)
        if fs.proc is not None and fs.proc.poll() is not None:
            died(fs)
        raise
    finally:
        if dog:
            dog.stop()
        fs.stop()


def partial_rows(results, steps, npol):
    """Day 1 cut short (snapfs hung or died): the hours it completed."""
    if not steps:
        return
    runs = sum(x['runs'] for x in steps)
    own = sum(x['own'] for x in steps)
    kids = sum(x['kids'] for x in steps)
    pol = sum(x['threads'].get('snapfs-policy', {}).get('ticks', 0) for x in steps)
    note = ' [PARTIAL: first %d of 24 h]' % len(steps)
    report = dict(target='none set', result='report', base='-', ratio='-')
    results['rows'] += [
        dict(report, name='1 policy runs, %d policies%s' % (npol, note),
             snap='%d runs' % runs),
        dict(report, name='1 CPU, snapfs process (utime+stime)%s' % note,
             snap='%s (thread snapfs-policy %s)' % (fmt_cpu(own), fmt_cpu(pol))),
        dict(report, name='1 CPU, children (qemu-img)%s' % note, snap=fmt_cpu(kids)),
        dict(report, name='1 CPU per policy run (process + children)%s' % note,
             snap='%s (process %s + children %s)' % (
                 fmt_ms((own + kids) / runs), fmt_ms(own / runs), fmt_ms(kids / runs))),
    ]


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        '%Y-%m-%dT%H:%M:%SZ')


# ---- benchmark 2: ls -l of 10,000 snapshots ----------------------------------------


def ls(path):
    """Run `ls -l @path` (output to /dev/null); (start, seconds, pid)."""
    t = time.perf_counter()
    p = subprocess.Popen(['ls', '-l', path], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=dict(os.environ, LC_ALL='C'))
    try:
        err = p.communicate(timeout=300)[1]
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise BenchError('ls -l %s did not finish in 300 s' % path)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise BenchError('ls -l %s exited %d: %s' % (path, p.returncode, err[-500:]))
    return t, dt, p.pid


FUSE_OPS = {1: 'LOOKUP', 2: 'FORGET', 3: 'GETATTR', 4: 'SETATTR', 5: 'READLINK',
            14: 'OPEN', 15: 'READ', 16: 'WRITE', 17: 'STATFS', 18: 'RELEASE',
            22: 'GETXATTR', 23: 'LISTXATTR', 25: 'FLUSH', 27: 'OPENDIR',
            28: 'READDIR', 29: 'RELEASEDIR', 34: 'ACCESS', 42: 'BATCH_FORGET',
            44: 'READDIRPLUS'}


class FuseTrace:
    """FUSE requests the kernel sends to one mount, by the pid that caused
    them: the tracepoint fuse:fuse_request_send, recorded with perf
    (a few microseconds a request, and nothing in snapfs)."""

    def __init__(self, mnt):
        st = os.stat(mnt).st_dev
        self.conn = os.minor(st) if os.major(st) == 0 else None
        self.out = tempfile.mktemp(prefix='policybench-perf.')
        self.proc = None

    def start(self):
        if self.conn is None or not shutil.which('perf'):
            return False
        self.proc = subprocess.Popen(
            ['perf', 'record', '-q', '-a', '-e', 'fuse:fuse_request_send',
             '--filter', 'connection == %d' % self.conn, '-o', self.out],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        if self.proc.poll() is not None:
            self.proc = None
            return False
        return True

    def stop(self):
        """{pid: {opcode name: count}}."""
        if self.proc is None:
            return {}
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        by = {}
        try:
            p = run(['perf', 'script', '-i', self.out, '-F', 'pid,trace'], check=False)
            for line in p.stdout.splitlines():
                f = line.split()
                if len(f) < 7 or f[5] != 'opcode':
                    continue
                name = f[7].strip('()').replace('FUSE_', '') if len(f) > 7 else f[6]
                c = by.setdefault(int(f[0]), {})
                c[name] = c.get(name, 0) + 1
        finally:
            for path in (self.out, self.out + '.old'):
                if os.path.exists(path):
                    os.unlink(path)
        return by


def strace_c(argv, top=6):
    """strace -c -f of a command: the top lines of its summary."""
    out = tempfile.mktemp(prefix='policybench-strace.')
    subprocess.run(['strace', '-c', '-f', '-o', out] + argv,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, LC_ALL='C'))
    try:
        with open(out) as f:
            lines = f.read().splitlines()
    finally:
        os.unlink(out)
    body = [l for l in lines if l and not l.startswith('-') and '% time' not in l]
    return body[:top] + [l for l in body[top:] if 'total' in l]


def bench_ls(binary, work, a, results):
    n = a.snapshots
    log('== 2. ls -l of a snapshots directory of %d snapshots vs a plain directory '
        'of %d entries, warm' % (n, n))
    log('   the %d snapshots are SYNTHETIC: rows inserted into SOURCE/catalog.db '
        '(snapshots table, state BackupFailed, no layer, no backup) while snapfs '
        'is unmounted, because %d real takes and backups would take too long; '
        'listing and stat of snapshots read only the catalog' % (n, n))
    fs = Snapfs(binary, work, 'libvirt=none,workers=1,retries=0')
    vol = 'lsvol'
    run(['qemu-img', 'create', '-q', '-f', 'qcow2', os.path.join(fs.primary, vol + '.qcow2'),
         str(16 * MiB)])
    # names like a policy's, one an hour back from a fixed date
    t_last = calendar.timegm((2026, 11, 1, 0, 0, 0))
    names = ['hourly-%s' % time.strftime('%Y%m%dT%H%MZ', time.gmtime(t_last - i * HOUR))
             for i in range(n)]
    plain = os.path.join(work, 'plain')
    os.mkdir(plain)
    for name in names:
        os.mkdir(os.path.join(plain, name))
    snaps = None
    res = dict(snapshots=n, synthetic=True)
    results['ls'] = res
    try:
        fs.start()
        fs.wait_volume(vol)
        fs.stop()
        db = sqlite3.connect(os.path.join(fs.source, 'catalog.db'))
        try:
            (vid,) = db.execute('SELECT id FROM volumes WHERE name = ?', (vol,)).fetchone()
            with db:
                db.executemany(
                    'INSERT INTO snapshots (volume_id, name, uuid, layer, state, '
                    'created_at, virtual_size) VALUES (?, ?, ?, \'\', ?, ?, ?)',
                    [(vid, name, str(uuid.uuid4()), STATE_BACKUP_FAILED,
                      t_last - i * HOUR, 16 * MiB) for i, name in enumerate(names)])
        finally:
            db.close()
        fs.start()
        snaps = fs.p('volumes', vol, 'snapshots')
        os.sync()
        # cold-ish: first run after the remount, page and dentry caches dropped
        drop_caches()
        cold_s = ls(snaps)[1]
        cold_p = ls(plain)[1]
        log('   cold-ish (first run after the remount and drop_caches, for '
            'information): snapfs %s, plain %s (%.2fx)'
            % (fmt_ms(cold_s), fmt_ms(cold_p), cold_s / cold_p))
        got = os.listdir(snaps)
        if len(got) != n:
            raise BenchError('snapshots/ lists %d entries, expected %d' % (len(got), n))
        if fs.state(vol, names[0]) != 'BackupFailed':
            raise BenchError('synthetic snapshot %s reads %s, not BackupFailed'
                             % (names[0], fs.state(vol, names[0])))
        if os.listdir(fs.p('jobs')):
            raise BenchError('recovery queued jobs for the synthetic rows')

        def alternate(samples):
            """One untimed run each, then @samples pairs back to back,
            alternating which side goes first.  Returns the snapfs runs
            [(seconds, pid, seconds since the previous snapfs run started)]
            and the plain runs' seconds."""
            ls(snaps)
            ls(plain)
            sruns, pruns = [], []
            last = None
            for i in range(samples):
                for side in (('s', 'p') if i % 2 == 0 else ('p', 's')):
                    if side == 's':
                        start, dt, pid = ls(snaps)
                        sruns.append((dt, pid, start - last if last else None))
                        last = start
                    else:
                        pruns.append(ls(plain)[1])
            return sruns, pruns

        c0 = Cpu(fs.proc.pid)
        sruns, p_t = alternate(a.ls_samples)
        cd = Cpu(fs.proc.pid).delta(c0)
        s_t = [r[0] for r in sruns]
        gaps = [r[2] for r in sruns if r[2] is not None]
        pairs = [x / y for x, y in zip(s_t, p_t)]
        ratio = median(s_t) / median(p_t)
        stale = sum(1 for g in gaps if g >= 1.0)
        log('   warm: snapfs %s | plain %s | ratio %.2fx (paired %.2f..%.2f); '
            'target <= %.1fx' % (spread(s_t, fmt_ms), spread(p_t, fmt_ms), ratio,
                                 min(pairs), max(pairs), LS_TARGET))
        log('   time between the starts of consecutive snapfs runs: %s; %d of %d '
            'over 1 s' % (spread(gaps, fmt_ms) if gaps else '-', stale, len(gaps)))
        log('   snapfs CPU during the %d timed snapfs runs: %s, %s per ls -l '
            '(schedstat)' % (len(s_t), fmt_cpu(cd['own']),
                             fmt_ms(cd['ns_all'] / len(s_t))))
        res.update(snapfs_s=s_t, plain_s=p_t, ratio=ratio, pair_min=min(pairs),
                   pair_max=max(pairs), gaps_s=gaps, cold_snapfs_s=cold_s,
                   cold_plain_s=cold_p, daemon_cpu_s=cd['own'])
        results['rows'].append(dict(
            name='2 ls -l, %d snapshots (synthetic rows) vs plain dir, warm' % n,
            base=fmt_ms(median(p_t)), snap=fmt_ms(median(s_t)),
            ratio=paired(ratio, pairs),
            target='<= %.0fx' % LS_TARGET, result='PASS' if ratio <= LS_TARGET else 'MISS',
            ok=ratio <= LS_TARGET))
        results['rows'].append(dict(
            name='2 ls -l, same, cold-ish first run after remount',
            base=fmt_ms(cold_p), snap=fmt_ms(cold_s), ratio='%.2fx' % (cold_s / cold_p),
            target='-', result='info'))

        # where the time goes: the same pattern again (untimed for the
        # target), with the FUSE requests of each snapfs run counted
        trace = FuseTrace(fs.mnt)
        if trace.start():
            try:
                truns, tp = alternate(a.ls_samples)
            finally:
                by = trace.stop()
            log('   where the time goes: the same runs again with the FUSE '
                'requests of each snapfs ls -l counted (tracepoint '
                'fuse:fuse_request_send, perf):')
            census = []
            for dt, pid, gap in truns:
                c = by.get(pid, {})
                census.append(dict(s=dt, gap_s=gap, requests=c))
                log('     %8s  %s since the previous start  %s'
                    % (fmt_ms(dt), fmt_ms(gap) if gap is not None else '      -',
                       ', '.join('%s %d' % kv for kv in
                                 sorted(c.items(), key=lambda kv: -kv[1])) or 'none'))
            warm = [r['s'] for r in census if r['requests'].get('LOOKUP', 0) < n // 100]
            relook = [r['s'] for r in census if r['requests'].get('LOOKUP', 0) >= n // 100]
            log('     runs with (almost) no LOOKUP: %s; runs that looked names up '
                'again: %s; plain in this pass: %s'
                % (spread(warm, fmt_ms) if warm else 'none',
                   spread(relook, fmt_ms) if relook else 'none', spread(tp, fmt_ms)))
            res['census'] = dict(runs=census, plain_s=tp)
        else:
            log('   (no request census: perf or the fuse tracepoints are missing)')
        if (ratio > LS_TARGET or a.diagnose) and shutil.which('strace'):
            log('   strace -c of ls -l itself (each side, after a warm-up run):')
            for side, path in (('snapfs', snaps), ('plain', plain)):
                ls(path)
                log('     %s:' % side)
                for line in strace_c(['ls', '-l', path]):
                    log('       ' + line)
    finally:
        fs.stop()


# ---- the run -----------------------------------------------------------------------


def main():
    ap = arg_parser(__doc__, '100 policies and 5 ls samples (full: 1,000 and 15)')
    ap.add_argument('--policies', type=int, help='how many policies (full: 1000)')
    ap.add_argument('--hourly', type=int,
                    help='how many of them hourly (default: a quarter)')
    ap.add_argument('--step', type=int, default=300,
                    help='seconds per step of the second day (default 300)')
    ap.add_argument('--snapshots', type=int, default=10000,
                    help='snapshots in the listed directory (default 10000)')
    ap.add_argument('--ls-samples', type=int, help='timed ls -l per side (5 / 15)')
    ap.add_argument('--unpaced-writes', action='store_true',
                    help='write the policy files back to back (snapfs at '
                    'commits 1d20551..a0168c2 can deadlock; see the output)')
    ap.add_argument('--watchdog', type=int, default=120,
                    help='seconds one call into the mount may block before '
                    'snapfs is declared hung (default 120)')
    ap.add_argument('--diagnose', action='store_true',
                    help='strace the listing even when its target is met')
    ap.add_argument('--only', default='1,2', help='which benchmarks: 1, 2 or 1,2')
    ap.add_argument('--label', help='what the binary is built from, for the '
                    'header (e.g. a commit)')
    a = parse_args(ap)
    quick_or_full(a, policies=(100, 1000), ls_samples=(5, 15))
    if a.hourly is None:
        a.hourly = a.policies // 4
    only = set(a.only.split(','))
    if a.hourly > a.policies or a.policies < 4 or DAY % a.step or a.step % 60 \
            or a.step >= HOUR or a.ls_samples < 1 or a.snapshots < 1:
        log('policybench: bad parameters')
        return 2

    try:
        binary, work, own_work = setup('policybench', a,
                                       ('qemu-img', 'qemu-io', 'fusermount3', 'ls'))
    except Refused as e:
        log(str(e))
        return 2
    end_on_signals()

    info = start_report(
        'snapfs policy and listing benchmarks (issue 5)', a, work, binary,
        [('qemu_img', version('qemu-img'))],
        dict(policies=a.policies, hourly=a.hourly, step_s=a.step,
             snapshots=a.snapshots, ls_samples=a.ls_samples),
        [('work dir', work),
         ('mounts', '1: -f -o testclock,libvirt=none,workers=2; '
          '2: -f -o libvirt=none,workers=1,retries=0')],
        label=a.label)
    log()

    results = dict(machine=info, rows=[])
    t_start = time.perf_counter()
    failed = []
    try:
        # each benchmark runs even when the other failed
        for key, sub, fn in (('1', 'sched', bench_policies), ('2', 'ls', bench_ls)):
            if key not in only:
                continue
            d = os.path.join(work, sub)
            os.makedirs(d)
            try:
                fn(binary, d, a, results)
            except FAILURES + (sqlite3.Error,) as e:
                log('policybench: benchmark %s FAILED: %s: %s'
                    % (key, type(e).__name__, e))
                failed.append(e)
            log()
    except KeyboardInterrupt as e:
        failed.append(e)
    finally:
        remove_work(a, work, own_work, ('sched', 'ls'))
    return finish('policybench', a, results, t_start, failed)


if __name__ == '__main__':
    sys.exit(main())
