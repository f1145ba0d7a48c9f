"""The one-host Ceph cluster of the tests (tools/ceph-cluster.sh through
ceph_harness.CephCluster), issue 14: it starts, serves objects, stops
leaving nothing running (any number of times), starts again with its data,
fails a start cleanly, and a later process reaps the cluster of one that
died.  No snapfs mount here: the repository's RADOS tests build on this.

Without the Ceph packages the module exits 77 (meson SKIP), never passes.
"""

import os
import subprocess
import tempfile
import time

import pytest

import ceph_harness
from ceph_harness import DAEMONS, CephCluster
from snapfs_harness import processes_mentioning

_missing = ceph_harness.missing_prerequisites()
if _missing:
    pytest.exit('Ceph tests skipped: ' + ', '.join(_missing), returncode=77)


def no_daemons_of(cluster):
    """The daemons of @cluster still running, as text ('' when none)."""
    return '\n'.join('%d: %s' % (pid, cmd)
                     for pid, cmd in processes_mentioning(cluster.conf)
                     if cmd.startswith('ceph-'))


@pytest.fixture
def cluster():
    c = CephCluster.temporary()
    try:
        yield c
    finally:
        c.close()
    assert not os.path.exists(c.dir), c.dir + ' left behind'
    assert no_daemons_of(c) == ''


def test_start_objects_stop_restart(cluster, tmp_path):
    t0 = time.monotonic()
    cluster.start()
    took = time.monotonic() - t0
    print('start took %.1f s' % took)
    assert cluster.alive(), cluster.log_tail()
    status = subprocess.run(['bash', ceph_harness.CEPH_CLUSTER_SH, 'status', cluster.dir],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    assert ('up: ' + cluster.conf) in status.stdout

    # the monitor is where it was asked to be, the pool is there
    with open(cluster.conf) as f:
        assert '[v2:%s:3300]' % cluster.addr in f.read()
    assert cluster.pool in cluster.ceph('osd', 'pool', 'ls').stdout.split()

    data = tmp_path / 'data'
    data.write_bytes(os.urandom(100000))
    cluster.rados('put', 'a/1', str(data))
    cluster.rados('put', 'a/2', str(data))
    cluster.rados('put', 'b/1', str(data), namespace='other')
    assert cluster.objects() == ['a/1', 'a/2']
    assert cluster.objects(prefix='a/2') == ['a/2']
    assert cluster.objects(namespace='other') == ['b/1']
    back = tmp_path / 'back'
    cluster.rados('get', 'a/2', str(back))
    assert back.read_bytes() == data.read_bytes()

    # stop: nothing runs, and stopping again is harmless
    cluster.stop()
    assert no_daemons_of(cluster) == ''
    assert all(cluster.pid(d) is None for d in DAEMONS)
    cluster.stop()
    status = subprocess.run(['bash', ceph_harness.CEPH_CLUSTER_SH, 'status', cluster.dir],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 1 and 'down' in status.stdout

    # the same cluster again, with its objects
    cluster.start()
    assert cluster.objects() == ['a/1', 'a/2']


def test_start_fails_cleanly_and_stale_cluster_reaped(cluster):
    cluster.start()

    # a second cluster on the same address fails at once, starts nothing
    second = CephCluster.temporary(addr=cluster.addr)
    try:
        with pytest.raises(AssertionError, match='in use'):
            second.start()
        assert no_daemons_of(second) == ''
    finally:
        second.close()
    assert not os.path.exists(second.dir)
    assert cluster.alive()

    # a cluster whose owner died is stopped and removed by the next one
    dead = subprocess.Popen(['true'])
    dead.wait()
    with open(os.path.join(cluster.dir, 'owner'), 'w') as f:
        f.write('%d\n' % dead.pid)
    ceph_harness.reap_stale_clusters()
    assert no_daemons_of(cluster) == ''
    assert not os.path.exists(cluster.dir)


def test_session_cluster():
    c = ceph_harness.ceph_cluster()
    try:
        assert c.alive()
        assert ceph_harness.ceph_cluster() is c
        assert c.dir.startswith(os.path.join(tempfile.gettempdir() if not os.path.isdir('/var/tmp')
                                             else '/var/tmp', ceph_harness.CEPH_PREFIX))
    finally:
        ceph_harness.stop_ceph_cluster()
    assert no_daemons_of(c) == ''
    assert not os.path.exists(c.dir)
    ceph_harness.stop_ceph_cluster()     # twice: harmless
