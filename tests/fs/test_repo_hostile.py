"""Hostile repository content (-o repository=on, docs/repository.md): a
truncated chunk, a chunk replaced by a symlink to a file outside
SECONDARY, a fan-out directory replaced by a symlink, an index naming a
missing chunk, a symlink planted at volumes/<vol>/<uuid>.index.

For each, the reads of backed-up/ and images/, a revert, a clone and a
verify of the backup fail with EIO and an event naming the problem; the
daemon stays up; and nothing outside SECONDARY is read or written: the
planted links point at canary copies of the real data, whose atime,
content and directory listing must not change (a followed link would
both touch them and make the read succeed)."""

import errno
import os
import shutil
import time

import pytest

from snapfs_harness import events_of
from test_repository import chunk_path, index_path, read_index, s1_only_in_the_repository

CASES = ['truncated_chunk', 'chunk_symlink', 'fanout_symlink', 'missing_chunk',
         'index_symlink']


def read_all(path):
    try:
        with open(path, 'rb') as f:
            while f.read(1 << 20):
                pass
        return 0
    except OSError as e:
        return e.errno


def snapshot_of(path):
    """(atime, content) of every file under @path, the names included."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            st = os.stat(p)
            with open(p, 'rb') as f:
                out[os.path.relpath(p, path)] = (st.st_atime_ns, hash(f.read()))
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # our read must not count
    return out


def age(path):
    """atime before mtime, so that a read updates it even under relatime."""
    for root, dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            st = os.stat(p)
            os.utime(p, ns=(st.st_mtime_ns - 10 ** 12, st.st_mtime_ns))


def plant(env, case, victim, index):
    """Damage the repository as @case says; returns the word an event
    about it must contain, and the canary directory (outside SECONDARY)."""
    canary = os.path.join(os.path.dirname(os.path.abspath(env.secondary)), 'canary-' + case)
    os.makedirs(canary)
    path = chunk_path(env, victim)
    if case == 'truncated_chunk':
        with open(path, 'r+b') as f:
            f.truncate(os.path.getsize(path) // 2)
        return victim, canary
    if case == 'missing_chunk':
        os.unlink(path)
        return victim, canary
    if case == 'chunk_symlink':
        shutil.copy2(path, os.path.join(canary, victim))
        os.unlink(path)
        os.symlink(os.path.join(canary, victim), path)
        return victim, canary
    if case == 'fanout_symlink':
        fan = os.path.dirname(path)
        inner = os.path.join(canary, os.path.basename(fan))
        shutil.copytree(fan, inner)
        shutil.rmtree(fan)
        os.symlink(inner, fan)
        return os.path.basename(fan), canary
    if case == 'index_symlink':
        shutil.copy2(index, os.path.join(canary, os.path.basename(index)))
        os.unlink(index)
        os.symlink(os.path.join(canary, os.path.basename(index)), index)
        return os.path.basename(index)[:-len('.index')], canary
    raise AssertionError(case)


@pytest.mark.parametrize('case', CASES)
def test_hostile_repository_content(env, case):
    s1_only_in_the_repository(env)
    env.no_jobs_left()
    index = index_path(env, 'v', 's1')
    only_s1 = sorted(set(read_index(index)[2]) -
                     set(read_index(index_path(env, 'v', 's2'))[2]) - {None})
    assert only_s1
    env.unmount()     # cold caches: nothing of s1 held in memory
    word, canary = plant(env, case, only_s1[0], index)
    age(canary)
    before = snapshot_of(canary)
    env.mount()

    n = len(env.read_events())
    got = {}
    got['read backed-up'] = read_all(env.backup_file('v', 's1'))
    got['read images'] = read_all(env.p('images', 'volumes', 'v', 's1.raw'))
    got['revert'] = env.control_errno('v', 'revert s1')
    got['clone'] = env.control_errno('v', 'clone s1 c1')
    if got['clone'] == 0:
        env.wait_for(lambda: events_of(env.events_since(n), 'clone.end', 'v', 's1') or
                     events_of(env.events_since(n), 'clone.fail', 'v', 's1'),
                     'the clone to end', timeout=120)
        fails = events_of(env.events_since(n), 'clone.fail', 'v', 's1')
        got['clone'] = errno.EIO if fails else 0
        assert not os.path.exists(env.volume_path('c1')), 'a failed clone left c1'
    got['verify'] = env.control_errno('v', 'verify s1')
    assert env.alive(), 'the daemon died'
    want = dict.fromkeys(got, errno.EIO)
    if case == 'index_symlink':
        # recovery at the mount finds no readable index: the backup is
        # BackupFailed (recovery.missing names the index), its views are
        # gone, and verify refuses it (docs/repository.md)
        want.update({'read backed-up': errno.ENOENT, 'read images': errno.ENOENT,
                     'verify': errno.EINVAL})
    wrong = {op: errno.errorcode.get(e, e) for op, e in got.items() if e != want[op]}
    new = env.events_since(n)
    assert not wrong, (wrong, new)
    if case == 'index_symlink':
        new = env.read_events()
        assert env.state('v', 's1') == 'BackupFailed'
    named = [e for e in new if e.get('result') == 'error' and word in e.get('message', '')]
    assert named, ('no error event names %s' % word, new)
    assert env.state('v', 's1') in ('Damaged', 'BackupFailed', 'BackedUp'), env.state('v', 's1')
    # s2 names nothing planted (but the fan-out dir may hold its chunks too)
    if case != 'fanout_symlink':
        assert read_all(env.backup_file('v', 's2')) == 0
    time.sleep(0.1)
    assert snapshot_of(canary) == before, 'snapfs touched a file outside SECONDARY'
    env.unmount()
