"""pytest glue for the mount tests: skip (exit 77) where they cannot run,
an `env` fixture that always cleans up, snapfs.log in every failure, the
libvirt driver each VM test runs against (vm_harness.drivers_for()), and
the storage backend of the repository for the tests that use `backend`
(posix, and rados in a namespace of its own in the session's Ceph
cluster), with the session's private system libvirtd and Ceph cluster
stopped at the end."""

import os

import pytest

import ceph_harness
import repo_backend
import snapfs_harness
import vm_harness
from snapfs_harness import Snapfs


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'both_vm_drivers: the VM test runs against the system libvirtd '
        'and against the embedded driver (default: the system libvirtd only)')
    config.addinivalue_line(
        'markers', 'vm_driver_only(driver): the VM test means something with that '
        "driver only ('system' or 'embedded')")
    config.addinivalue_line(
        'markers', 'posix_only(reason): a test using `backend` that means something '
        'on a POSIX secondary only (runs as [posix] alone)')
    config.addinivalue_line(
        'markers', 'rados_only(reason): a test using `backend` that means something '
        'on a RADOS secondary only (runs as [rados] alone)')
    try:
        vm_harness.requested_drivers()
    except ValueError as e:
        raise pytest.UsageError(str(e))


def pytest_sessionstart(session):
    missing = snapfs_harness.missing_prerequisites()
    if missing:
        # meson counts exit status 77 as a skipped test, never as a pass
        pytest.exit('mount tests skipped: ' + ', '.join(missing), returncode=77)


@pytest.hookimpl(trylast=True)     # after the fixtures' teardown
def pytest_sessionfinish(session, exitstatus):
    # also after failures and on an interrupt (Ctrl-C, or SIGTERM: see
    # vm_harness.system_libvirtd()); a no-op when no test started one
    vm_harness.stop_system_libvirtd()
    # the same for the session's Ceph cluster (ceph_harness.ceph_cluster())
    ceph_harness.stop_ceph_cluster()


BACKENDS = ('posix', 'rados')


def pytest_generate_tests(metafunc):
    """Every test that uses `vm_driver` (through `vmenv`, say) runs once per
    driver it is meant for; the id says which: test_x[system].  Every test
    that uses `backend` runs once per storage backend of the repository,
    test_x[posix] and test_x[rados], unless marked posix_only or rados_only."""
    if 'backend' in metafunc.fixturenames:
        kinds = BACKENDS
        for kind in BACKENDS:
            if metafunc.definition.get_closest_marker(kind + '_only') is not None:
                kinds = (kind,)
        metafunc.parametrize('backend', [pytest.param(k, id=k) for k in kinds], indirect=True)
    if 'vm_driver' not in metafunc.fixturenames:
        return
    params = [pytest.param(driver, id=driver,
                           marks=[pytest.mark.skip(reason=why)] if why else [])
              for driver, why in vm_harness.drivers_for(metafunc.definition)]
    metafunc.parametrize('vm_driver', params)


@pytest.fixture
def vm_driver():
    """Parametrized by pytest_generate_tests; this is only the fallback."""
    return vm_harness.DEFAULT_DRIVER


@pytest.fixture
def backend(request):
    """'posix' or 'rados' (parametrized by pytest_generate_tests): the
    storage of the repository that `env` mounts.  With 'rados' the test
    gets a namespace of its own in the session's Ceph cluster
    (ceph_harness.ceph_cluster(), started by the first such test), emptied
    at its end; without the Ceph programs the case is skipped."""
    kind = getattr(request, 'param', 'posix')
    if kind == 'posix':
        yield kind
        return
    missing = ceph_harness.missing_prerequisites()
    if missing:
        pytest.skip('RADOS: ' + ', '.join(missing))
    repo = repo_backend.RadosRepo(ceph_harness.ceph_cluster(),
                                  repo_backend.rados_namespace(request.node.name))
    request.node._snapfs_rados = repo
    try:
        yield kind
    finally:
        repo.cleanup()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, 'rep_' + rep.when, rep)
    env = getattr(item, '_snapfs_env', None)
    if rep.failed and env is not None:
        rep.sections.append(('snapfs diagnostics (%s)' % rep.when, env.diagnostics()))


@pytest.fixture
def env(request):
    """A fresh state directory with nothing mounted yet: create volumes with
    env.make_volume(), then env.mount(workers=..., ...)."""
    if 'backend' in request.fixturenames:
        request.getfixturevalue('backend')   # set up first, torn down after
    e = Snapfs(request.node.name)
    rados = getattr(request.node, '_snapfs_rados', None)
    if rados is not None:
        e.use_rados(rados)
    request.node._snapfs_env = e
    e.start_watchdog()
    try:
        yield e
        # A daemon that died while the test did not kill it crashed.
        if e.proc is not None and e.proc.poll() is not None:
            e.problems.append('snapfs died during the test (status %s)'
                              % e.proc.returncode)
            e.proc = None
    finally:
        e.cleanup()
    failed = any(getattr(request.node, 'rep_' + w, None) is not None
                 and getattr(request.node, 'rep_' + w).failed
                 for w in ('setup', 'call'))
    if e.problems and not failed:
        pytest.fail('\n'.join(e.problems), pytrace=False)
    elif e.problems:
        print('\n'.join(e.problems))
