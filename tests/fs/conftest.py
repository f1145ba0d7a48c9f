"""pytest glue for the mount tests: skip (exit 77) where they cannot run,
an `env` fixture that always cleans up, and snapfs.log in every failure."""

import os

import pytest

import snapfs_harness
from snapfs_harness import Snapfs


def pytest_sessionstart(session):
    missing = snapfs_harness.missing_prerequisites()
    if missing:
        # meson counts exit status 77 as a skipped test, never as a pass
        pytest.exit('mount tests skipped: ' + ', '.join(missing), returncode=77)


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
    e = Snapfs(request.node.name)
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
