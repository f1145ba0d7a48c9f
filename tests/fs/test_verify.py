"""`verify <snap>` on volumes/<vol>/control (docs/repository.md, "Verify and
Damaged"): a sound backup gets verified_at; a flipped byte or a deleted
chunk makes every backup naming it Damaged, with an alert and events, and
the chunk file moves to SECONDARY/.damaged/; the next backup of the volume
writes the data again and a verify returns the backups to BackedUp; a
full-copy backup is verified by its checksum; bad commands are EINVAL with
an event; -o verify_interval=<days> verifies on the test clock.

On both storage backends of the repository (the `backend` fixture,
conftest.py; the repository read and damaged through env.repo), but for
the full-copy backup, which is POSIX only (repository=off)."""

import errno
import glob
import json
import os
import threading

import pytest

from repo_backend import chunk_name
from snapfs_harness import events_of
from test_repository import A, B, index_name, index_of, take_backed_up

pytestmark = pytest.mark.usefixtures('backend')

DAY = 24 * 3600


def verify_errno(env, vol, snap):
    return env.control_errno(vol, 'verify ' + snap)


def flip_byte(path, offset=100):
    with open(path, 'r+b') as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xff]))


def verify_alerts(env, vol, snap):
    return [a for a in env.alerts_for(vol, snap).values() if a.get('kind') == 'verify']


def damaged_files(env):
    """What verify moved to SECONDARY/.damaged/ (names, as the glob
    .damaged/* finds them)."""
    return [n for n in env.repo.listdir('.damaged') if not n.startswith('.')]


def test_verify_damaged_and_healed(env):
    env.make_volume('v', '64M', A)
    env.mount(repository='on')
    take_backed_up(env, 'v', 's1')
    env.write_volume('v', B)
    take_backed_up(env, 'v', 's2')
    assert env.info('v', 's1')['verified_at'] is None

    # a sound backup: verified_at, an event
    n = len(env.read_events())
    assert verify_errno(env, 'v', 's1') == 0
    assert env.info('v', 's1')['verified_at'] is not None
    assert env.state('v', 's1') == 'BackedUp'
    ends = events_of(env.events_since(n), 'verify.end', 'v', 's1')
    assert ends and 'sound' in ends[-1]['message'], env.events_since(n)

    # a byte flipped in a chunk both backups name: both Damaged
    i1 = index_of(env, 'v', 's1')[2]
    i2 = index_of(env, 'v', 's2')[2]
    shared = sorted(set(i1) & set(i2) - {None})
    only_s2 = sorted(set(i2) - set(i1) - {None})
    assert shared and only_s2
    env.repo.flip_byte(chunk_name(shared[0]))
    n = len(env.read_events())
    assert verify_errno(env, 'v', 's1') == errno.EIO
    assert env.state('v', 's1') == 'Damaged'
    assert env.state('v', 's2') == 'Damaged'
    assert not env.repo.exists(chunk_name(shared[0]))
    moved = damaged_files(env)
    assert len(moved) == 1 and os.path.basename(moved[0]).startswith(shared[0]), moved
    new = env.events_since(n)
    assert events_of(new, 'verify.damaged', 'v', 's1'), new
    assert events_of(new, 'verify.damaged', 'v', 's2'), new
    end = events_of(new, 'verify.end', 'v', 's1')
    assert end and end[-1].get('errno') in ('EIO', errno.EIO), end
    assert verify_alerts(env, 'v', 's1') and verify_alerts(env, 'v', 's2'), env.alerts()
    assert env.info('v', 's1')['state'] == 'Damaged'
    # Damaged is an answer for waiters: no job changes it by itself
    with open(env.p('wait', 'v', 's1')) as f:
        assert f.read() == 'Damaged\n'
    from test_snapctl import EXIT_FAILED, snapctl
    proc = snapctl('wait', '-t', '5', env.p('volumes', 'v', 'snapshots', 's1'))
    assert proc.returncode == EXIT_FAILED, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout.strip().splitlines()[-1].startswith(
        'volumes/v/snapshots/s1: Damaged'), proc.stdout
    status = json.loads(snapctl('-m', env.mnt, 'status', '--json').stdout)
    assert status['snapshots']['Damaged'] == 2, status
    # listed, but the view is not served
    assert 's1.qcow2' in env.listdir('backed-up', 'volumes', 'v')
    try:
        open(env.backup_file('v', 's1'), 'rb').close()
        raise AssertionError('opened the view of a Damaged backup')
    except OSError as e:
        assert e.errno == errno.EIO, e

    # a deleted chunk is missing: Damaged too, and a verify of a Damaged one says EIO
    env.repo.remove(chunk_name(only_s2[0]))
    assert verify_errno(env, 'v', 's2') == errno.EIO
    assert env.state('v', 's2') == 'Damaged'
    end = events_of(env.read_events(), 'verify.end', 'v', 's2')[-1]
    # the moved chunk and the deleted one: both missing now
    assert 'is missing' in end['message'] and '2 bad or missing' in end['message'], end

    # the next backup writes the data again; a verify heals both
    take_backed_up(env, 'v', 's3')
    assert env.repo.exists(chunk_name(shared[0]))
    assert env.repo.exists(chunk_name(only_s2[0]))
    n = len(env.read_events())
    assert verify_errno(env, 'v', 's1') == 0
    assert verify_errno(env, 'v', 's2') == 0
    assert env.state('v', 's1') == 'BackedUp'
    assert env.state('v', 's2') == 'BackedUp'
    assert not verify_alerts(env, 'v', 's1') and not verify_alerts(env, 'v', 's2')
    assert len(events_of(env.events_since(n), 'alert.resolve', 'v')) == 2
    open(env.backup_file('v', 's1'), 'rb').close()
    # and survives a remount (the catalog keeps verified_at)
    at = env.info('v', 's1')['verified_at']
    env.remount()
    assert env.info('v', 's1')['verified_at'] == at


@pytest.mark.posix_only('full copies (repository=off) are POSIX only')
def test_verify_full_copy_backup(env):
    env.make_volume('v', '16M', [(0x11, 0, '1M')])
    env.mount(repository='off')  # a full-copy backup is made with repository=off: pinned
    take_backed_up(env, 'v', 's1')
    assert verify_errno(env, 'v', 's1') == 0
    assert env.info('v', 's1')['verified_at'] is not None
    path = glob.glob(os.path.join(env.secondary, 'volumes', 'v', '*.qcow2'))[0]
    flip_byte(path, os.path.getsize(path) - 10)
    assert verify_errno(env, 'v', 's1') == errno.EIO
    assert env.state('v', 's1') == 'Damaged'
    assert verify_alerts(env, 'v', 's1')
    assert os.path.exists(path)  # a full copy is left where it is
    flip_byte(path, os.path.getsize(path) - 10)  # repaired by hand
    assert verify_errno(env, 'v', 's1') == 0
    assert env.state('v', 's1') == 'BackedUp'


def test_verify_bad_commands(env):
    env.make_volume('v', '16M', [(0x11, 0, '1M')])
    env.mount(repository='on')
    take_backed_up(env, 'v', 's1')
    for cmd in ('verify', 'verify s1 s2', 'verify ../s1', 'verify .s1', 'verify -s1'):
        n = len(env.read_events())
        assert env.control_errno('v', cmd) == errno.EINVAL, cmd
        rej = [e for e in env.events_since(n) if e['type'] == 'rejected']
        assert rej and rej[0].get('errno') in ('EINVAL', errno.EINVAL), (cmd, rej)
    n = len(env.read_events())
    assert verify_errno(env, 'v', 'nosuch') == errno.ENOENT
    assert [e for e in env.events_since(n) if e['type'] == 'rejected']
    assert 'verify <snap>' in env.read('volumes', 'v', 'control')


def test_periodic_verify_on_the_test_clock(env):
    env.make_volume('v', '64M', A)
    env.mount(repository='on', verify_interval=1)
    take_backed_up(env, 'v', 's1')
    assert env.info('v', 's1')['verified_at'] is None
    env.set_clock(env.clock() + 2 * DAY)
    env.wait_for(lambda: env.info('v', 's1')['verified_at'] is not None,
                 'the periodic verify of s1')
    assert env.state('v', 's1') == 'BackedUp'
    victim = [d for d in index_of(env, 'v', 's1')[2] if d][0]
    env.repo.flip_byte(chunk_name(victim))
    env.set_clock(env.clock() + 2 * DAY)
    env.wait_for(lambda: env.state('v', 's1') == 'Damaged', 's1 Damaged by the periodic verify')
    assert verify_alerts(env, 'v', 's1')


def test_kill9_after_a_chunk_moved(env):
    """A crash between the move of a damaged chunk and the catalog update:
    after the remount the backup still reads BackedUp, the chunk is missing,
    and the next verify finds it and makes the backup Damaged."""
    env.make_volume('v', '64M', A)
    env.mount(repository='on')
    take_backed_up(env, 'v', 's1')
    env.unmount()
    env.mount_hanging('verify.chunk_moved', repository='on')
    victim = [d for d in index_of(env, 'v', 's1')[2] if d][0]
    env.repo.flip_byte(chunk_name(victim))
    writer = threading.Thread(target=verify_errno, args=(env, 'v', 's1'), daemon=True)
    writer.start()
    env.wait_testpoint('verify.chunk_moved')
    env.kill9()
    writer.join(30)
    env.mount()
    assert env.state('v', 's1') == 'BackedUp'
    assert not env.repo.exists(chunk_name(victim)) and damaged_files(env)
    assert verify_errno(env, 'v', 's1') == errno.EIO
    assert env.state('v', 's1') == 'Damaged'
    assert verify_alerts(env, 'v', 's1')


@pytest.mark.posix_only('the publish re-check is code of backup.c, the same for both '
                        'backends; the verify moves a chunk on either')
def test_a_chunk_moved_while_a_backup_publishes(env):
    """A verify moves a damaged chunk out while a backup that found the
    chunk stored is paused just before its publish: the backup looks every
    chunk its index names up once more, and fails (BackupFailed, the
    chunk named in its event) instead of publishing an index that names a
    missing chunk.  The next backup writes the chunk again, and restores."""
    P = 'backup.repo.chunks_written'
    env.make_volume('v', '64M', A)
    env.mount_pausing(P, repository='on', workers=2, retries=0)
    env.take('v', 's1')
    env.release(P, 1)
    env.wait_state('v', 's1', 'BackedUp')
    # nothing written since: s2 names s1's chunks, found stored
    env.take('v', 's2')
    env.wait_paused(P, 2)
    victim = sorted(set(index_of(env, 'v', 's1')[2]) - {None})[0]
    env.repo.flip_byte(chunk_name(victim))
    assert verify_errno(env, 'v', 's1') == errno.EIO
    assert not env.repo.exists(chunk_name(victim)) and damaged_files(env)
    n = len(env.read_events())
    env.release(P, 2)
    final = env.wait_for(lambda: env.state('v', 's2') in ('BackedUp', 'BackupFailed')
                         and env.state('v', 's2'), 's2 to end its backup')
    assert final == 'BackupFailed', env.info('v', 's2')
    fails = [e for e in env.events_since(n) if e.get('snapshot') == 's2'
             and victim in e.get('message', '')]
    assert fails and 'is not in the repository' in fails[-1]['message'], \
        env.events_since(n)
    assert not env.repo.exists(index_name(env, 'v', 's2'))
    # the next backup writes it again (s1 is Damaged: no base) and restores
    env.take('v', 's3')
    env.release(P, 3)
    env.wait_state('v', 's3', 'BackedUp')
    assert env.repo.exists(chunk_name(victim))
    assert all(env.repo.exists(chunk_name(d)) for d in index_of(env, 'v', 's3')[2] if d)
    assert verify_errno(env, 'v', 's3') == 0
