"""Recurring snapshot policies (policies/<name>, docs/design.md "Policies"):
the file (normalized, owned, drafts, rm), malformed policies refused with
the reason, every interval firing at the right instants across a simulated
month and several, in time zones and across DST changes (spring forward,
fall back, hourly's 23- and 25-hour days), pruning exactly `keep` of the
policy's own snapshots, a missed run after downtime taken once, a failed
run's alert, and a VM policy.

Nothing sleeps through real intervals: the mount's test clock is moved
(MOUNT/.clock) and the run it causes is waited for.  The clock only moves
forward from today's real date, so the DST changes tested are 2027's:
Europe/Paris springs forward 2027-03-28 (02:00 -> 03:00) and falls back
2027-10-31; America/New_York 2027-03-14 and 2027-11-07.

The expected instants are computed here, independently of snapfs, from
the contract's definition with Python's zoneinfo: the slot of a date is
the first instant at which the wall clock in the zone reads HH:MM on that
date or later; hourly@MM is every instant whose wall-clock minute is MM.
"""

import calendar
import datetime
import errno
import os
import re
import time
import zoneinfo

import pytest

from snapfs_harness import (errno_name, policy_events, policy_of, read_policy,
                            rejected_events)
from vm_harness import vmenv  # noqa: F401

MISSED = '(runs missed while snapfs was down: taken once)'
POLICY_EVENTS = ('policy.run', 'policy.fail', 'policy.prune')
WINDOW = 0.1    # a moment for a wrongly due run to show (the checks do not rely on it)


# ---- time ------------------------------------------------------------------------------

def utc(y, mo, d, h=0, mi=0, s=0):
    return calendar.timegm((y, mo, d, h, mi, s))


def iso(t):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t))


def slot_name(interval, t):
    return '%s-%s' % (interval, time.strftime('%Y%m%dT%H%MZ', time.gmtime(t)))


def local(t, zone):
    """The naive wall-clock time of instant @t in @zone."""
    return datetime.datetime.fromtimestamp(t, zoneinfo.ZoneInfo(zone)).replace(tzinfo=None)


def date_slot(zone, day, hh, mm):
    """The first instant whose wall clock in @zone reads @day @hh:@mm or later
    (minute by minute, from well before: no arithmetic shared with snapfs)."""
    want = datetime.datetime(day.year, day.month, day.day, hh, mm)
    t = utc(day.year, day.month, day.day) - 16 * 3600
    while local(t, zone) < want:
        t += 60
    return t


def expected_slots(schedule, zone, start, end):
    """The instants in (start, end] at which @schedule fires in @zone.
    @schedule: ('hourly', MM) | ('daily', HH, MM) | ('weekly', WEEKDAY
    (0 = Monday), HH, MM) | ('monthly', DAY, HH, MM)."""
    kind = schedule[0]
    if kind == 'hourly':
        t = start - start % 60 + 60
        out = []
        while t <= end:
            if local(t, zone).minute == schedule[1]:
                out.append(t)
            t += 60
        return out
    hh, mm = schedule[-2:]
    day = datetime.date.fromtimestamp(start - 2 * 86400)
    last = datetime.date.fromtimestamp(end + 2 * 86400)
    out = []
    while day <= last:
        if (kind == 'daily' or (kind == 'weekly' and day.weekday() == schedule[1])
                or (kind == 'monthly' and day.day == schedule[1])):
            t = date_slot(zone, day, hh, mm)
            if start < t <= end and t not in out:
                out.append(t)
        day += datetime.timedelta(days=1)
    return sorted(out)


# ---- stepping the clock through the slots ------------------------------------------------

class Policy:
    def __init__(self, name, kind, target, interval, keep, slots):
        self.name, self.kind, self.target = name, kind, target
        self.interval, self.keep = interval, keep
        self.slots = list(slots)       # expected instants still to come
        self.runs = []                 # snapshot names taken, oldest first
        self.pruned = []

    def listed(self, env):
        """The policy's snapshots (any name it ever took) present in the tree."""
        names = env.snapshots(self.target) if self.kind == 'volume' \
            else env.vm_snapshots(self.target)
        return sorted(n for n in names if n in self.runs)


class Stepper:
    """Moves the engine's clock to each expected slot in turn and checks that
    every policy runs exactly at its slots: at slot-1 s each policy's file
    shows the next run the contract gives and no policy ran since the
    previous slot; at the slot the due policies (and only they) run, taking
    the slot's snapshot name, at that instant, and prune their own oldest
    beyond keep."""

    def __init__(self, env):
        self.env = env
        self.policies = {}
        self.seen = len(env.read_events())
        self.log = []       # (instant, policy, snapshot) of every run seen

    def add(self, name, text, kind, target, interval, keep, slots):
        """Write policies/@name (@text) and expect it to fire at @slots."""
        self.env.write_file(self.env.p('policies', name), text + '\n')
        p = Policy(name, kind, target, interval, keep, slots)
        self.policies[name] = p
        return p

    def drop(self, name):
        return self.policies.pop(name)

    def check_next_runs(self):
        now = self.env.clock()
        for p in self.policies.values():
            _, _, nxt = read_policy(self.env, p.name)
            want = next((t for t in p.slots if t > now), None)
            if want is not None:
                assert nxt == iso(want), \
                    'policies/%s at %s: next run %s, expected %s' % (p.name, iso(now), nxt,
                                                                     iso(want))

    def quiet_since(self, what):
        new = [ev for ev in self.env.events_since(self.seen) if ev.get('type') in POLICY_EVENTS
               or (ev.get('type') == 'alert.raise' and policy_of(ev))]
        assert not new, 'policy events %s: %s' % (what, new)

    def step(self, t):
        env = self.env
        env.set_clock(t - 1)
        self.check_next_runs()
        time.sleep(WINDOW)
        self.quiet_since('before the slot %s' % iso(t))
        self.check_next_runs()

        due = [p for p in self.policies.values() if p.slots and p.slots[0] == t]
        others = [p for p in self.policies.values() if p not in due]
        env.set_clock(t)

        def all_ran():
            new = env.events_since(self.seen)
            fails = [ev for ev in new if ev.get('type') == 'policy.fail']
            assert not fails, 'a policy run failed at %s: %s' % (iso(t), fails)
            return new if all(policy_events(new, 'policy.run', p.name) for p in due) else None
        new = env.wait_for(all_ran, 'the runs of %s at %s' % ([p.name for p in due], iso(t)),
                           timeout=60)
        for p in others:
            assert not policy_events(new, 'policy.run', p.name), \
                'policy %s ran at %s, not one of its slots: %s' % (
                    p.name, iso(t), policy_events(new, 'policy.run', p.name))
        for p in due:
            runs = policy_events(new, 'policy.run', p.name)
            assert len(runs) == 1, 'policy %s ran %d times at %s: %s' % (p.name, len(runs),
                                                                          iso(t), runs)
            ev, name = runs[0], slot_name(p.interval, t)
            assert ev.get('snapshot') == name, \
                'policy %s at %s took %s, expected %s' % (p.name, iso(t), ev.get('snapshot'),
                                                          name)
            assert ev.get(p.kind) == p.target and ev.get('result') == 'ok', ev
            assert ev.get('time') == iso(t), 'the run of %s is dated %s, expected %s: %s' % (
                p.name, ev.get('time'), iso(t), ev)
            assert MISSED not in ev.get('message', ''), \
                'a run on time says runs were missed: %s' % ev
            p.runs.append(name)
            p.slots.pop(0)
            self.log.append((t, p.name, name))
            # its own oldest beyond keep, nothing else
            want_pruned = p.runs[:max(0, len(p.runs) - p.keep)]
            newly = [e.get('snapshot') for e in policy_events(new, 'policy.prune', p.name)]
            assert newly == [n for n in want_pruned if n not in p.pruned], \
                'policy %s (keep=%d) at %s pruned %s; its runs: %s' % (
                    p.name, p.keep, iso(t), newly, p.runs)
            for e in policy_events(new, 'policy.prune', p.name):
                assert e.get('result') == 'ok' and e.get(p.kind) == p.target, e
            p.pruned += newly
            _, last, _ = read_policy(env, p.name)
            assert last == '%s, snapshot %s: ok' % (iso(t), name), \
                'policies/%s last run: %r' % (p.name, last)
        for p in others:
            assert not policy_events(new, 'policy.prune', p.name), \
                'policy %s pruned at %s without running: %s' % (
                    p.name, iso(t), policy_events(new, 'policy.prune', p.name))
        self.seen += len(new)
        for p in due:
            want = p.runs[-p.keep:]
            env.wait_for(lambda: p.listed(env) == sorted(want),
                         'the snapshots of policy %s to be %s (are %s)' % (
                             p.name, want, p.listed(env)), timeout=30)

    def run_until(self, end):
        """Step through every expected slot up to @end, then move the clock to @end."""
        while True:
            pending = sorted({p.slots[0] for p in self.policies.values() if p.slots})
            if not pending or pending[0] > end:
                break
            self.step(pending[0])
        self.env.set_clock(end)
        self.check_next_runs()
        time.sleep(WINDOW)
        self.quiet_since('up to %s' % iso(end))


# ---- the file ------------------------------------------------------------------------------

def write_errno(env, name, text):
    try:
        env.write_file(env.p('policies', name), text)
    except OSError as e:
        return e.errno
    return 0


def test_policy_file_normalized_owned_and_removable(env):
    env.make_volume('a', '16M')
    env.make_volume('b', '16M')
    env.mount(workers=2)
    t0 = utc(2027, 3, 20, 12)
    env.set_clock(t0)

    st = os.stat(env.p('policies'))
    assert oct(st.st_mode & 0o7777) == oct(0o1777) and st.st_uid == 0, oct(st.st_mode)
    assert env.listdir('policies') == []

    # `echo ... > policies/p` as a shell does it
    n = len(env.read_events())
    env.write_file(env.p('policies', 'p'),
                   'keep=2  schedule=DAILY@2:30 target=volume:a tz=Europe/Paris\n')
    assert env.listdir('policies') == ['p']
    line, last, nxt = read_policy(env, 'p')
    assert line == 'target=volume:a schedule=daily@02:30 keep=2 tz=Europe/Paris', line
    assert last == 'never'
    assert nxt == '2027-03-21T01:30:00Z', nxt
    st = os.stat(env.p('policies', 'p'))
    assert oct(st.st_mode & 0o7777) == oct(0o600) and st.st_uid == 0 and st.st_gid == 0, st
    created = [ev for ev in env.events_since(n) if ev.get('type') == 'policy.create']
    assert created and created[0].get('volume') == 'a', env.events_since(n)

    # what it reads can be written back unchanged (the comments are ignored)
    text = env.read('policies', 'p')
    env.write_file(env.p('policies', 'p'), text)
    assert env.read('policies', 'p') == text

    # the default forms, spelled out; no tz: the host's (Etc/UTC here)
    for given, normal in (
            ('hourly', 'hourly@00'), ('hourly@5', 'hourly@05'), ('daily', 'daily@00:00'),
            ('weekly', 'weekly@mon-00:00'), ('weekly@Sun', 'weekly@sun-00:00'),
            ('weekly@fri-7:05', 'weekly@fri-07:05'), ('monthly', 'monthly@1-00:00'),
            ('monthly@28', 'monthly@28-00:00'), ('monthly@3-23:59', 'monthly@3-23:59')):
        env.write_file(env.p('policies', 'q'), 'target=volume:b schedule=%s keep=1' % given)
        line, _, _ = read_policy(env, 'q')
        assert line == 'target=volume:b schedule=%s keep=1 tz=Etc/UTC' % normal, \
            '%s -> %s' % (given, line)
    # the last one replaced the others: monthly@3-23:59 UTC from 2027-03-20
    assert read_policy(env, 'q')[2] == '2027-04-03T23:59:00Z'

    # a created file that is never written stays, empty, like any file
    # `touch` makes; it holds no policy and rm removes it ...
    fd = os.open(env.p('policies', 'draft'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.close(fd)
    assert env.listdir('policies') == ['draft', 'p', 'q']
    assert env.read('policies', 'draft') == ''
    os.unlink(env.p('policies', 'draft'))
    # ... and so does one whose only write was refused (`echo bad > f`
    # leaves an empty f on any file system)
    assert write_errno(env, 'bad', 'target=volume:a keep=1') == errno.EINVAL
    assert env.listdir('policies') == ['bad', 'p', 'q']
    assert env.read('policies', 'bad') == ''
    os.unlink(env.p('policies', 'bad'))
    assert env.listdir('policies') == ['p', 'q']

    # rm removes it (its snapshots stay: see the pruning test)
    n = len(env.read_events())
    os.unlink(env.p('policies', 'q'))
    assert env.listdir('policies') == ['p']
    assert not os.path.exists(env.p('policies', 'q'))
    assert [ev for ev in env.events_since(n) if ev.get('type') == 'policy.delete'], \
        env.events_since(n)
    # and the name is free again
    env.write_file(env.p('policies', 'q'), 'target=volume:b schedule=hourly keep=1 tz=UTC')
    assert read_policy(env, 'q')[0] == 'target=volume:b schedule=hourly@00 keep=1 tz=UTC'

    # the policies survive a remount (the clock starts again at the real time)
    env.remount()
    assert env.listdir('policies') == ['p', 'q']
    assert read_policy(env, 'p') == (
        'target=volume:a schedule=daily@02:30 keep=2 tz=Europe/Paris', 'never',
        '2027-03-21T01:30:00Z')


# ---- refusals ------------------------------------------------------------------------------

MALFORMED = [
    # (text, a word the reason must contain)
    ('schedule=daily keep=2', r'target'),                                     # missing target=
    ('target=volume:a keep=2', r'schedule'),                                  # missing schedule=
    ('target=volume:a schedule=daily', r'keep'),                              # missing keep=
    ('target=volume:a schedule=daily keep=0', r'keep'),
    ('target=volume:a schedule=daily keep=two', r'keep'),
    ('target=volume:a schedule=daily keep=-1', r'keep'),
    ('target=volume:a schedule=monthly@29 keep=2', r'28|29'),
    ('target=volume:a schedule=monthly@0 keep=2', r'monthly'),
    ('target=volume:a schedule=hourly@60 keep=2', r'hourly|minute'),
    ('target=volume:a schedule=daily@24:00 keep=2', r'daily|HH|hour'),
    ('target=volume:a schedule=weekly@someday keep=2', r'weekly|day'),
    ('target=volume:a schedule=yearly keep=2', r'schedule'),
    ('target=volume:a schedule=daily keep=2 tz=Mars/Olympus_Mons', r'zone'),
    ('target=volume:a schedule=daily keep=2 tz=../../etc/passwd', r'tz|zone'),
    ('target=volume:a schedule=daily keep=2 colour=blue', r'field'),
    ('target=volume:a schedule=daily keep=2 keep=3', r'keep'),
    ('target=disk:a schedule=daily keep=2', r'target'),
    ('target=volume:.a schedule=daily keep=2', r'name'),
    ('target=volume:a schedule=daily keep=2\ntarget=volume:a schedule=hourly keep=2',
     r'line|one policy'),
    ('target=volume:a schedule=daily keep 2', r'key=value|=|word'),
]


def test_malformed_policies_are_refused_with_the_reason(env):
    env.make_volume('a', '16M')
    env.make_volume('b', '16M')
    env.mount(workers=2, max_snapshots=5)
    env.set_clock(utc(2027, 3, 20, 12))
    env.write_file(env.p('policies', 'good'),
                   'target=volume:a schedule=daily@02:00 keep=2 tz=Europe/Paris')
    good = env.read('policies', 'good')

    def refused(name, text, err, reason):
        n = len(env.read_events())
        got = write_errno(env, name, text + '\n' if text else text)
        assert got == err, '%r: %s, expected %s' % (text, errno_name(got), errno_name(err))
        evs = rejected_events(env.events_since(n), 'write', 'policies/' + name, err)
        assert len(evs) == 1, 'no (or several) rejected %s event for %r: %s' % (
            errno_name(err), text, env.events_since(n))
        msg = evs[0].get('message') or ''
        assert re.search(reason, msg, re.I), \
            'the reason for refusing %r does not say why: %r' % (text, msg)
        # nothing stored: at most the empty file the write opened
        if name in env.listdir('policies') and name not in ('new', 'good', 'five'):
            assert env.read('policies', name) == ''
            os.unlink(env.p('policies', name))
        assert env.read('policies', 'good') == good
        return msg

    # (each refusal under a name of its own: retrying a refused name at once
    # is the business of test_a_refused_policy_write_leaves_an_empty_file)
    reasons = {}
    for i, (text, reason) in enumerate(MALFORMED):
        reasons[text] = refused('bad%d' % i, text, errno.EINVAL, reason)
    # each refusal says its own reason (a few share one by design: the same field)
    distinct = set(reasons.values())
    assert len(distinct) >= len(MALFORMED) - 4, \
        'the reasons hardly differ: %s' % sorted(distinct)
    for a, b in (('schedule=daily keep=2', 'target=volume:a schedule=monthly@29 keep=2'),
                 ('target=volume:a schedule=monthly@29 keep=2',
                  'target=volume:a schedule=hourly@60 keep=2'),
                 ('target=volume:a schedule=daily keep=2 tz=Mars/Olympus_Mons',
                  'target=volume:a schedule=daily keep=2 colour=blue'),
                 ('target=volume:a schedule=daily keep=0',
                  'target=volume:a schedule=daily keep=2\n'
                  'target=volume:a schedule=hourly keep=2')):
        assert reasons[a] != reasons[b], (a, b, reasons[a])

    # keep above the mount's max_snapshots
    msg = refused('big', 'target=volume:b schedule=daily keep=6', errno.EINVAL, r'keep')
    assert re.search(r'max_snapshots|5', msg), msg
    env.write_file(env.p('policies', 'five'), 'target=volume:b schedule=weekly keep=5')
    # no such target
    refused('novol', 'target=volume:nosuch schedule=daily keep=2', errno.ENOENT, r'nosuch')
    refused('novm', 'target=vm:nosuch schedule=daily keep=2', errno.ENOENT, r'nosuch')
    # one policy per target and interval (another time or zone does not matter)
    refused('twice', 'target=volume:a schedule=daily@05:00 keep=1 tz=UTC', errno.EEXIST,
            r'good')
    # ... another interval on the same target is fine, and so is rewriting
    # the policy that holds it
    env.write_file(env.p('policies', 'new'), 'target=volume:a schedule=hourly keep=1 tz=UTC')
    env.write_file(env.p('policies', 'good'),
                   'target=volume:a schedule=daily@03:00 keep=2 tz=Europe/Paris')
    assert read_policy(env, 'good')[0] == \
        'target=volume:a schedule=daily@03:00 keep=2 tz=Europe/Paris'
    # a rewrite that would take another policy's interval is refused; the
    # policy keeps what it had
    before = env.read('policies', 'new')
    n = len(env.read_events())
    assert write_errno(env, 'new', 'target=volume:a schedule=daily keep=1 tz=UTC') == \
        errno.EEXIST
    assert rejected_events(env.events_since(n), 'write', 'policies/new', errno.EEXIST)
    assert env.read('policies', 'new') == before
    # and a malformed rewrite too
    assert write_errno(env, 'new', 'target=volume:a schedule=hourly@61 keep=1') == \
        errno.EINVAL
    assert env.read('policies', 'new') == before
    assert env.listdir('policies') == ['five', 'good', 'new']
    # a bad file name
    try:
        env.write_file(env.p('policies', '-x'), 'target=volume:a schedule=weekly keep=1')
        err = 0
    except OSError as e:
        err = e.errno
    assert err == errno.EINVAL, errno_name(err)
    assert env.listdir('policies') == ['five', 'good', 'new']


def test_rm_of_a_policy_file_still_open_removes_it(env):
    # The kernel sends RELEASE after close(2) returns; an rm that comes
    # before it (here: while the file is still open) must reach snapfs's
    # unlink.  libfuse's high-level API otherwise "hides" an open file by a
    # rename to .fuse_hidden*, which snapfs refuses (EPERM): seen under
    # ASan as an rm right after a write (the mount uses hard_remove).
    env.make_volume('a', '16M')
    env.mount(workers=2)
    path = env.p('policies', 'p')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b'target=volume:a schedule=daily keep=1\n')
        os.unlink(path)
    finally:
        os.close(fd)
    assert env.listdir('policies') == []
    assert not [n for n in os.listdir(env.p('policies')) if n.startswith('.fuse_hidden')]


def test_a_refused_policy_write_leaves_an_empty_file(env):
    env.make_volume('a', '16M')
    env.mount(workers=2)
    # a typo, corrected and written again at once, as a person would: the
    # refused write leaves an empty file (no policy), the next one fills it
    assert write_errno(env, 'p', 'target=volume:a keep=1\n') == errno.EINVAL
    assert env.listdir('policies') == ['p']
    assert env.read('policies', 'p') == ''
    err = write_errno(env, 'p', 'target=volume:a schedule=daily keep=1\n')
    assert err == 0, 'the corrected policy: %s' % errno_name(err)
    assert read_policy(env, 'p')[0].startswith('target=volume:a schedule=daily@00:00')
    # created and closed without a write (touch): empty until written
    fd = os.open(env.p('policies', 'q'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.close(fd)
    assert env.listdir('policies') == ['p', 'q']
    assert env.read('policies', 'q') == ''
    err = write_errno(env, 'q', 'target=volume:a schedule=hourly keep=1\n')
    assert err == 0, 'writing the touched name: %s' % errno_name(err)
    assert env.listdir('policies') == ['p', 'q']
    # empty files are not kept across a remount; policies are
    fd = os.open(env.p('policies', 'r'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.close(fd)
    env.remount(workers=2)
    assert env.listdir('policies') == ['p', 'q']


# ---- time: the intervals, zones and DST ----------------------------------------------------

def test_daily_weekly_monthly_in_paris_across_spring_forward(env):
    """A month of daily@02:30, weekly@sun-02:30 and monthly@28-02:30 in
    Europe/Paris, through 2027-03-28 when 02:30 does not exist (the slot is
    03:00 CEST, 01:00Z); then, with the daily and weekly policies removed
    (their snapshots stay), the monthly one on until November."""
    for vol in ('d', 'w', 'm'):
        env.make_volume(vol, '16M', [(0x10, 0, '1M')])
    env.mount(workers=2)
    zone = 'Europe/Paris'
    start = utc(2027, 2, 26, 12)
    env.set_clock(start)
    far = utc(2027, 12, 31)
    s = Stepper(env)
    daily = s.add('pd', 'target=volume:d schedule=daily@02:30 keep=3 tz=' + zone,
                  'volume', 'd', 'daily', 3, expected_slots(('daily', 2, 30), zone, start, far))
    weekly = s.add('pw', 'target=volume:w schedule=weekly@sun-02:30 keep=2 tz=' + zone,
                   'volume', 'w', 'weekly', 2,
                   expected_slots(('weekly', 6, 2, 30), zone, start, far))
    s.add('pm', 'target=volume:m schedule=monthly@28-02:30 keep=2 tz=' + zone,
          'volume', 'm', 'monthly', 2, expected_slots(('monthly', 28, 2, 30), zone, start, far))

    # the contract's own examples, spelled out
    assert slot_name('daily', daily.slots[2]) == 'daily-20270301T0130Z'
    gap = utc(2027, 3, 28, 1, 0)
    assert gap in daily.slots and gap in weekly.slots
    assert utc(2027, 3, 28, 1, 30) not in daily.slots

    s.run_until(utc(2027, 4, 1, 12))
    taken = [name for _, p, name in s.log if p == 'pd']
    assert len(taken) == 34, taken                     # 2027-02-27 .. 2027-04-01
    assert 'daily-20270327T0130Z' in taken and 'daily-20270328T0100Z' in taken \
        and 'daily-20270329T0030Z' in taken, taken
    assert [name for _, p, name in s.log if p == 'pw'] == [
        'weekly-20270228T0130Z', 'weekly-20270307T0130Z', 'weekly-20270314T0130Z',
        'weekly-20270321T0130Z', 'weekly-20270328T0100Z']
    assert env.snapshots('d') == ['daily-20270330T0030Z', 'daily-20270331T0030Z',
                                  'daily-20270401T0030Z']
    assert env.snapshots('w') == ['weekly-20270321T0130Z', 'weekly-20270328T0100Z']

    # rm the daily and weekly policies: their snapshots stay, nobody prunes them
    os.unlink(env.p('policies', 'pd'))
    os.unlink(env.p('policies', 'pw'))
    s.drop('pd')
    s.drop('pw')
    s.run_until(utc(2027, 11, 30))
    assert [name for _, p, name in s.log if p == 'pm'] == [
        'monthly-20270228T0130Z', 'monthly-20270328T0100Z', 'monthly-20270428T0030Z',
        'monthly-20270528T0030Z', 'monthly-20270628T0030Z', 'monthly-20270728T0030Z',
        'monthly-20270828T0030Z', 'monthly-20270928T0030Z', 'monthly-20271028T0030Z',
        'monthly-20271128T0130Z']
    assert env.snapshots('m') == ['monthly-20271028T0030Z', 'monthly-20271128T0130Z']
    assert env.snapshots('d') == ['daily-20270330T0030Z', 'daily-20270331T0030Z',
                                  'daily-20270401T0030Z']
    assert env.snapshots('w') == ['weekly-20270321T0130Z', 'weekly-20270328T0100Z']
    for vol in ('d', 'w', 'm'):
        for snap in env.snapshots(vol):
            env.wait_state(vol, snap, 'BackedUp')


def test_daily_in_new_york_and_paris_gap_and_repeated_hour(env):
    """daily@02:30 America/New_York on 2027-03-14 (gap: 03:00 EDT, 07:00Z);
    then across the fall-back days: daily@01:30 America/New_York fires once
    on 2027-11-07 (01:30 EDT, 05:30Z; not again at 01:30 EST) and
    daily@02:30 Europe/Paris once on 2027-10-31 (00:30Z; not 01:30Z)."""
    env.make_volume('n', '16M')
    env.make_volume('p', '16M')
    env.mount(workers=2)
    ny, paris = 'America/New_York', 'Europe/Paris'
    start = utc(2027, 3, 12, 12)
    env.set_clock(start)
    s = Stepper(env)
    s.add('ny', 'target=volume:n schedule=daily@02:30 keep=2 tz=' + ny, 'volume', 'n',
          'daily', 2, expected_slots(('daily', 2, 30), ny, start, utc(2027, 4, 1)))
    s.run_until(utc(2027, 3, 16, 12))
    assert [name for _, _, name in s.log] == [
        'daily-20270313T0730Z', 'daily-20270314T0700Z', 'daily-20270315T0630Z',
        'daily-20270316T0630Z']

    # the same policy name again, after rm, for the autumn
    os.unlink(env.p('policies', 'ny'))
    s.drop('ny')
    start = utc(2027, 10, 29, 12)
    env.set_clock(start)
    end = utc(2027, 11, 9, 12)
    s.add('ny', 'target=volume:n schedule=daily@01:30 keep=2 tz=' + ny, 'volume', 'n',
          'daily', 2, expected_slots(('daily', 1, 30), ny, start, end))
    s.add('paris', 'target=volume:p schedule=daily@02:30 keep=2 tz=' + paris,
          'volume', 'p', 'daily', 2, expected_slots(('daily', 2, 30), paris, start, end))
    # the repeated hours are probed on their own: nothing may run there
    probes = [utc(2027, 10, 31, 1, 30), utc(2027, 11, 7, 6, 30)]
    while True:
        pending = sorted({p.slots[0] for p in s.policies.values() if p.slots})
        if probes and (not pending or probes[0] < pending[0]):
            t = probes.pop(0)
            env.set_clock(t)
            s.check_next_runs()
            time.sleep(WINDOW)
            s.quiet_since('at the repeated hour %s' % iso(t))
            continue
        if not pending or pending[0] > end:
            break
        s.step(pending[0])
    autumn = [(p, name) for _, p, name in s.log[4:]]
    assert [n for p, n in autumn if p == 'paris'] == [
        'daily-20271030T0030Z', 'daily-20271031T0030Z', 'daily-20271101T0130Z',
        'daily-20271102T0130Z', 'daily-20271103T0130Z', 'daily-20271104T0130Z',
        'daily-20271105T0130Z', 'daily-20271106T0130Z', 'daily-20271107T0130Z',
        'daily-20271108T0130Z', 'daily-20271109T0130Z']
    assert [n for p, n in autumn if p == 'ny'] == [
        'daily-20271030T0530Z', 'daily-20271031T0530Z', 'daily-20271101T0530Z',
        'daily-20271102T0530Z', 'daily-20271103T0530Z', 'daily-20271104T0530Z',
        'daily-20271105T0530Z', 'daily-20271106T0530Z', 'daily-20271107T0530Z',
        'daily-20271108T0630Z', 'daily-20271109T0630Z']


def test_hourly_runs_23_times_on_spring_forward_day_and_25_on_fall_back(env):
    env.make_volume('p', '16M')
    env.make_volume('n', '16M')
    env.mount(workers=2)
    paris, ny = 'Europe/Paris', 'America/New_York'

    # Europe/Paris, 2027-03-28: 00:00 CET (23:00Z) to 24:00 CEST (22:00Z)
    start, end = utc(2027, 3, 27, 22, 0), utc(2027, 3, 28, 22, 40)
    env.set_clock(start)
    s = Stepper(env)
    s.add('hp', 'target=volume:p schedule=hourly@15 keep=2 tz=' + paris, 'volume', 'p',
          'hourly', 2, expected_slots(('hourly', 15), paris, start, end + 86400))
    s.run_until(end)
    on_day = [t for t, _, _ in s.log if local(t, paris).date() == datetime.date(2027, 3, 28)]
    assert len(on_day) == 23, [iso(t) for t in on_day]
    assert [name for _, _, name in s.log][:5] == [
        'hourly-20270327T2215Z', 'hourly-20270327T2315Z', 'hourly-20270328T0015Z',
        'hourly-20270328T0115Z', 'hourly-20270328T0215Z']   # 01:15 CET, then 03:15 CEST
    assert env.snapshots('p') == ['hourly-20270328T2115Z', 'hourly-20270328T2215Z']
    os.unlink(env.p('policies', 'hp'))
    s.drop('hp')

    # America/New_York, 2027-11-07: 00:00 EDT (04:00Z) to 24:00 EST (05:00Z next day)
    start, end = utc(2027, 11, 7, 2, 30), utc(2027, 11, 8, 5, 40)
    env.set_clock(start)
    first = len(s.log)
    s.add('hn', 'target=volume:n schedule=hourly@15 keep=2 tz=' + ny, 'volume', 'n',
          'hourly', 2, expected_slots(('hourly', 15), ny, start, end + 86400))
    s.run_until(end)
    on_day = [t for t, _, _ in s.log[first:] if local(t, ny).date() == datetime.date(2027, 11, 7)]
    assert len(on_day) == 25, [iso(t) for t in on_day]
    # 01:15 EDT (05:15Z) and 01:15 EST (06:15Z): both are real hours
    names = [name for _, _, name in s.log[first:]]
    assert 'hourly-20271107T0515Z' in names and 'hourly-20271107T0615Z' in names
    assert env.snapshots('p') == ['hourly-20270328T2115Z', 'hourly-20270328T2215Z']


# ---- pruning ---------------------------------------------------------------------------------

def test_pruning_keeps_keep_and_spares_manual_and_other_policies(env):
    env.make_volume('v', '16M', [(0x21, 0, '1M')])
    env.mount(workers=2)
    start = utc(2027, 1, 1, 0, 30)
    env.set_clock(start)
    # manual snapshots first: one named as the daily policy would name the day before
    env.take('v', 'm0')
    env.take('v', 'daily-20261231T0300Z')
    s = Stepper(env)
    far = utc(2027, 3, 1)
    pd = s.add('pd', 'target=volume:v schedule=daily@03:00 keep=2 tz=UTC', 'volume', 'v',
               'daily', 2, expected_slots(('daily', 3, 0), 'UTC', start, far))
    pw = s.add('pw', 'target=volume:v schedule=weekly@mon-03:00 keep=2 tz=UTC', 'volume',
               'v', 'weekly', 2, expected_slots(('weekly', 0, 3, 0), 'UTC', start, far))
    manual = ['m0', 'daily-20261231T0300Z']
    s.run_until(utc(2027, 1, 6, 12))
    env.take('v', 'mid')                        # a manual one between the runs
    manual.append('mid')
    s.run_until(utc(2027, 1, 19, 12))
    assert len(pd.runs) == 19 and len(pw.runs) == 3, (pd.runs, pw.runs)
    assert pw.runs == ['weekly-20270104T0300Z', 'weekly-20270111T0300Z',
                       'weekly-20270118T0300Z']
    want = sorted(manual + pd.runs[-2:] + pw.runs[-2:])
    assert env.snapshots('v') == want, env.snapshots('v')
    prunes = [ev for ev in env.read_events() if ev.get('type') == 'policy.prune']
    assert len(prunes) == 17 + 1, prunes
    assert not [ev for ev in prunes if ev.get('snapshot') in manual], prunes
    assert [ev['snapshot'] for ev in prunes if policy_of(ev) == 'pw'] == ['weekly-20270104T0300Z']
    deleted = [ev.get('snapshot') for ev in env.read_events()
               if ev.get('type') == 'snapshot.delete']
    assert sorted(deleted) == sorted(ev['snapshot'] for ev in prunes), deleted

    # rm the daily policy: its two snapshots stay and are pruned no more,
    # while the weekly one goes on pruning only its own
    n = len(env.read_events())
    os.unlink(env.p('policies', 'pd'))
    s.drop('pd')
    s.run_until(utc(2027, 2, 2, 12))
    assert pw.runs[-2:] == ['weekly-20270125T0300Z', 'weekly-20270201T0300Z']
    assert env.snapshots('v') == sorted(manual + pd.runs[-2:] + pw.runs[-2:])
    assert not policy_events(env.events_since(n), 'policy.run', 'pd')
    for snap in env.snapshots('v'):
        env.wait_state('v', snap, 'BackedUp')
    assert env.backups('v') == sorted(x + ext for x in env.snapshots('v')
                                      for ext in ('.json', '.qcow2'))


# ---- downtime --------------------------------------------------------------------------------

def test_missed_runs_after_downtime_are_taken_once(env):
    env.make_volume('h', '16M')
    env.make_volume('d', '16M')
    env.mount(workers=2)
    t0 = utc(2027, 1, 10, 10, 30)
    env.set_clock(t0)
    env.write_file(env.p('policies', 'ph'), 'target=volume:h schedule=hourly@00 keep=5 tz=UTC')
    env.write_file(env.p('policies', 'pd'),
                   'target=volume:d schedule=daily@06:00 keep=5 tz=Europe/Paris')
    n = len(env.read_events())
    env.set_clock(utc(2027, 1, 10, 11))
    env.wait_event(lambda ev: ev.get('type') == 'policy.run' and policy_of(ev) == 'ph',
                   since=n, what='the 11:00 run')
    assert env.snapshots('h') == ['hourly-20270110T1100Z']
    assert read_policy(env, 'pd')[2] == '2027-01-11T05:00:00Z'

    # down; at the remount the clock is back at the real time: nothing is due
    env.unmount()
    env.mount()
    assert env.clock() < t0
    n = len(env.read_events())
    time.sleep(0.5)
    assert not [ev for ev in env.events_since(n) if ev.get('type') in POLICY_EVENTS]
    assert read_policy(env, 'ph')[1:] == (
        '2027-01-10T11:00:00Z, snapshot hourly-20270110T1100Z: ok', '2027-01-10T12:00:00Z')
    assert read_policy(env, 'pd')[1:] == ('never', '2027-01-11T05:00:00Z')

    # two days later: 52 hourly slots and 2 daily slots were missed; the
    # latest of each is taken, once
    later = utc(2027, 1, 12, 15, 40)
    env.set_clock(later)
    for name in ('ph', 'pd'):
        env.wait_event(lambda ev, name=name: ev.get('type') == 'policy.run'
                       and policy_of(ev) == name, since=n, what='the run of ' + name)
    time.sleep(0.5)
    new = env.events_since(n)
    runs = [ev for ev in new if ev.get('type') == 'policy.run']
    assert len(runs) == 2, runs
    run_h, = policy_events(runs, 'policy.run', 'ph')
    run_d, = policy_events(runs, 'policy.run', 'pd')
    assert run_h['snapshot'] == 'hourly-20270112T1500Z', run_h
    assert run_d['snapshot'] == 'daily-20270112T0500Z', run_d
    for ev in runs:
        assert ev['message'].endswith(MISSED), ev
        assert ev['time'] == iso(later), ev
    assert env.snapshots('h') == ['hourly-20270110T1100Z', 'hourly-20270112T1500Z']
    assert env.snapshots('d') == ['daily-20270112T0500Z']
    assert read_policy(env, 'ph')[1:] == (
        '%s, snapshot hourly-20270112T1500Z: ok' % iso(later), '2027-01-12T16:00:00Z')
    assert read_policy(env, 'pd')[1:] == (
        '%s, snapshot daily-20270112T0500Z: ok' % iso(later), '2027-01-13T05:00:00Z')

    # and then on time again, without the note
    n = len(env.read_events())
    env.set_clock(utc(2027, 1, 12, 16))
    ev = env.wait_event(lambda ev: ev.get('type') == 'policy.run', since=n,
                        what='the 16:00 run')
    assert ev['snapshot'] == 'hourly-20270112T1600Z' and MISSED not in ev['message'], ev
    time.sleep(0.3)
    assert len([e for e in env.events_since(n) if e.get('type') == 'policy.run']) == 1

    # a kill -9 is downtime too
    env.kill9_and_remount()
    n = len(env.read_events())
    env.set_clock(utc(2027, 1, 14, 9, 10))
    for name in ('ph', 'pd'):
        env.wait_event(lambda ev, name=name: ev.get('type') == 'policy.run'
                       and policy_of(ev) == name, since=n, what='the run of ' + name)
    time.sleep(0.5)
    runs = [ev for ev in env.events_since(n) if ev.get('type') == 'policy.run']
    assert sorted(ev['snapshot'] for ev in runs) == ['daily-20270114T0500Z',
                                                     'hourly-20270114T0900Z'], runs
    assert all(ev['message'].endswith(MISSED) for ev in runs), runs


# ---- a failed run --------------------------------------------------------------------------

def test_failed_run_raises_an_alert_resolved_by_the_next_run(env):
    env.make_volume('v', '16M', [(0x31, 0, '1M')])
    env.mount(workers=2)
    env.set_clock(utc(2027, 2, 1, 12))
    env.write_file(env.p('policies', 'p'), 'target=volume:v schedule=daily@00:00 keep=2 tz=UTC')

    # the volume file stops being a readable qcow2 (its header zeroed)
    path = env.volume_path('v')
    with open(path, 'r+b') as f:
        header = f.read(512)
        f.seek(0)
        f.write(b'\0' * 512)
    n = len(env.read_events())
    env.set_clock(utc(2027, 2, 2))
    fail = env.wait_event(lambda ev: ev.get('type') == 'policy.fail', since=n,
                          what='the policy run to fail')
    assert policy_of(fail) == 'p' and fail.get('volume') == 'v', fail
    assert fail.get('snapshot') == 'daily-20270202T0000Z' and fail.get('errno'), fail
    alerts = env.wait_for(lambda: {k: a for k, a in env.alerts().items()
                                   if a.get('kind') == 'policy'}, 'the policy alert',
                          timeout=10)
    assert len(alerts) == 1, alerts
    (aid, alert), = alerts.items()
    assert alert['policy'] == 'p' and alert['errno'] == fail['errno'] and alert['message'], alert
    st = os.stat(env.p('alerts', aid))
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == 0, oct(st.st_mode)
    _, last, nxt = read_policy(env, 'p')
    assert last.startswith('2027-02-02T00:00:00Z, snapshot daily-20270202T0000Z: failed: '), last
    assert nxt == '2027-02-03T00:00:00Z', nxt
    assert env.snapshots('v') == []
    assert not [ev for ev in env.events_since(n) if ev.get('type') == 'policy.run']

    # repaired: the next slot runs and resolves the alert
    with open(path, 'r+b') as f:
        f.write(header)
    n = len(env.read_events())
    env.set_clock(utc(2027, 2, 3))
    ev = env.wait_event(lambda ev: ev.get('type') == 'policy.run', since=n,
                        what='the next run')
    assert ev['snapshot'] == 'daily-20270203T0000Z', ev
    assert env.alerts() == {}, env.alerts()
    assert [e for e in env.events_since(n) if e.get('type') == 'alert.resolve'
            and policy_of(e) == 'p'], env.events_since(n)
    assert read_policy(env, 'p')[1] == '2027-02-03T00:00:00Z, snapshot daily-20270203T0000Z: ok'
    env.wait_state('v', 'daily-20270203T0000Z', 'BackedUp')


# ---- a VM policy -----------------------------------------------------------------------------

def test_vm_policy_runs_and_prunes(vmenv):
    env = vmenv
    env.make_vm('vm1', ['a', 'b'], size='16M')
    env.mount(workers=2)
    assert env.vm_state('vm1') == 'stopped'
    env.vm_take('vm1', 'manual')
    zone = 'America/New_York'
    start = utc(2027, 3, 12, 12)
    env.set_clock(start)
    s = Stepper(env)
    p = s.add('pv', 'target=vm:vm1 schedule=daily@04:00 keep=2 tz=' + zone, 'vm', 'vm1',
              'daily', 2, expected_slots(('daily', 4, 0), zone, start, utc(2027, 4, 1)))
    s.run_until(utc(2027, 3, 16, 12))
    assert p.runs == ['daily-20270313T0900Z', 'daily-20270314T0800Z', 'daily-20270315T0800Z',
                      'daily-20270316T0800Z']
    assert sorted(env.vm_snapshots('vm1')) == ['daily-20270315T0800Z', 'daily-20270316T0800Z',
                                               'manual']
    for snap in ('daily-20270315T0800Z', 'daily-20270316T0800Z'):
        info = env.vm_snap_info('vm1', snap)
        assert info['type'] == 'disk' and info['state'] == 'Ready', info
    assert env.vm_state('vm1') == 'stopped'
    prunes = [ev for ev in env.read_events() if ev.get('type') == 'policy.prune']
    assert [ev.get('snapshot') for ev in prunes] == ['daily-20270313T0900Z',
                                                     'daily-20270314T0800Z'], prunes
    assert all(ev.get('vm') == 'vm1' for ev in prunes), prunes
