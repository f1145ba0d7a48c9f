"""The security matrix (issue 6): two real Unix users on one allow_other
mount, hostile names everywhere a name enters, and links planted in
primary and secondary storage.

- test_security_matrix: every object kind of one account (volume, its
  files, a snapshot, its backup, a VM and its files, a VM snapshot, a
  policy, an alert, a job) x every operation (read, readdir, mkdir, rmdir,
  rename, control and policy writes, unlink, chmod, chown, truncate,
  create) is tried by the other account (always refused, nothing changes)
  and by the owner (the tree's own answer: allowed where the tree allows
  it).  Prints `security: N attempts, D denied, 0 allowed that should not
  be` for docs/reliability.md.
- hostile names (`..`, `/`, 4 KiB, control characters, leading `-`,
  invalid UTF-8, names differing only in case, names at the 128-byte
  limit) through mkdir, mv, clone, revert, retry, policies, limits and
  the VM entry points; names from outside (files dropped into primary
  storage, libvirt domains).
- planted links: symlinks and hard links in primary and secondary storage
  are never followed out of them (targets unchanged byte for byte and
  mtime; backed-up/ never serves them).

The users are snapfs-carol and snapfs-dave, created for this module when
missing and removed at its end (not test_accounts.py's, so the two
modules never share an account).
"""

import errno
import hashlib
import json
import os
import stat

import pytest

from snapfs_harness import (ensure_user, errno_name, fill, open_to_all_users,
                            qemu_img_compare, qemu_img_create, qemu_io_write, remove_user,
                            report_line, run_as, user_ids)
from vm_harness import vmenv  # noqa: F401

CAROL, DAVE = 'snapfs-carol', 'snapfs-dave'
SHORT = {CAROL: 'carol', DAVE: 'dave'}


@pytest.fixture(scope='module')
def users():
    """{name: (uid, gid)} of the two test accounts."""
    created = []
    try:
        for name in (CAROL, DAVE):
            if ensure_user(name):
                created.append(name)
        yield {name: user_ids(name) for name in (CAROL, DAVE)}
    finally:
        for name in created:
            remove_user(name)


def attempt(fn, *args):
    """0 when fn(*args) succeeds, else its errno."""
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


def en(code):
    return errno_name(code) if code else 'success'


# ---- the matrix --------------------------------------------------------------------------

# Object kinds of one account: (kind, path under the mount, is a directory).
# The order matters for the owner's destructive pass: what lives inside a
# snapshot comes before the snapshot itself.
def objects_of(env, vol, vm, alert, job, policy):
    return [
        ('volume dir', 'volumes/%s' % vol, True),
        ('volume info', 'volumes/%s/info' % vol, False),
        ('volume control', 'volumes/%s/control' % vol, False),
        ('snapshots dir', 'volumes/%s/snapshots' % vol, True),
        ('snapshot state', 'volumes/%s/snapshots/s1/state' % vol, False),
        ('snapshot info', 'volumes/%s/snapshots/s1/info' % vol, False),
        ('backed-up dir', 'backed-up/volumes/%s' % vol, True),
        ('backed-up image', 'backed-up/volumes/%s/s1.qcow2' % vol, False),
        ('backed-up manifest', 'backed-up/volumes/%s/s1.json' % vol, False),
        ('vm dir', 'vms/%s' % vm, True),
        ('vm info', 'vms/%s/info' % vm, False),
        ('vm state', 'vms/%s/state' % vm, False),
        ('vm control', 'vms/%s/control' % vm, False),
        ('vm snapshot-options', 'vms/%s/snapshot-options' % vm, False),
        ('vm volumes dir', 'vms/%s/volumes' % vm, True),
        ('vm snapshots dir', 'vms/%s/snapshots' % vm, True),
        ('vm snapshot info', 'vms/%s/snapshots/v1/info' % vm, False),
        ('policy', 'policies/%s' % policy, False),
        ('alert', 'alerts/%s' % alert, False),
        ('job', 'jobs/%s' % job, False),
        ('snapshot dir', 'volumes/%s/snapshots/s1' % vol, True),
        ('vm snapshot dir', 'vms/%s/snapshots/v1' % vm, True),
    ]


OPS = ('read', 'readdir', 'mkdir', 'rmdir', 'rename', 'write control', 'write policy',
       'unlink', 'chmod', 'chown', 'truncate', 'create')
DESTRUCTIVE = ('rename', 'unlink', 'rmdir')     # the owner's are tried last


def do_op(op, path, is_dir, tag, ids, control, policy):
    """One attempt (in the child, as the actor); returns 0 or the errno."""
    try:
        if op == 'read':
            if is_dir:
                os.close(os.open(path, os.O_RDONLY | os.O_DIRECTORY))
            else:
                with open(path, 'rb') as f:
                    f.read(4096)
        elif op == 'readdir':
            os.listdir(path)
        elif op == 'mkdir':
            os.mkdir(os.path.join(path, 'm-' + tag))
        elif op == 'rmdir':
            os.rmdir(path)
        elif op == 'rename':
            os.rename(path, os.path.join(os.path.dirname(path), 'r-' + tag))
        elif op in ('write control', 'write policy'):
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            try:
                os.write(fd, (control if op == 'write control' else policy).encode())
            finally:
                os.close(fd)
        elif op == 'unlink':
            os.unlink(path)
        elif op == 'chmod':
            os.chmod(path, 0o777)
        elif op == 'chown':
            os.chown(path, ids[0], ids[1])       # to oneself: no change for an owner
        elif op == 'truncate':
            os.truncate(path, 0)
        elif op == 'create':
            os.close(os.open(os.path.join(path, 'f-' + tag),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        else:
            raise AssertionError('unknown op ' + op)
    except OSError as e:
        return e.errno
    return 0


def do_cells(cells):
    """Every cell [op, path, is_dir, tag, ids, control, policy] in turn."""
    return [do_op(*cell) for cell in cells]


def control_payload(kind):
    return {'volume control': 'revert s1\n', 'vm control': 'revert v1\n',
            'vm snapshot-options': 'memory=no quiesce=no\n'}.get(kind, 'revert s1\n')


def policy_payload(vol):
    return 'target=volume:%s schedule=daily@00:00 keep=2 tz=UTC\n' % vol


# What the tree answers the OWNER (docs/design.md "Accounts and permissions",
# docs/errors.md): the kernel decides from the modes first (EACCES where a
# parent is root's, EISDIR/ENOTDIR for the wrong type), then
# snapfs (EPERM where the tree has no such entry or change, EROFS under
# backed-up/, EACCES for read-only files, EINVAL for a malformed write).
ROOT_PARENT = {'volume dir', 'backed-up dir', 'vm dir', 'job'}      # parent is root's 0755
WRITABLE = {'volume control', 'vm control', 'vm snapshot-options', 'policy'}


def owner_expects(kind, is_dir, op):
    backed = kind.startswith('backed-up')
    if op == 'read':
        return 0
    if op == 'readdir':
        return 0 if is_dir else errno.ENOTDIR
    if op in ('mkdir', 'create'):
        if not is_dir:
            return errno.ENOTDIR
        if backed:
            return errno.EROFS
        if op == 'mkdir' and kind in ('snapshots dir', 'vm snapshots dir'):
            return 0                                    # takes a snapshot
        return errno.EPERM
    if op == 'rmdir':
        if kind in ROOT_PARENT:
            return errno.EACCES
        if not is_dir:
            return errno.ENOTDIR
        return 0 if kind in ('snapshot dir', 'vm snapshot dir') else errno.EPERM
    if op == 'unlink':
        if kind in ROOT_PARENT:
            return errno.EACCES
        if is_dir:
            return errno.EISDIR
        if backed:
            return errno.EROFS
        return 0 if kind in ('alert', 'policy') else errno.EPERM
    if op == 'rename':
        if kind in ROOT_PARENT:
            return errno.EACCES
        if backed:
            return errno.EROFS
        return 0 if kind == 'snapshot dir' else errno.EPERM
    if op == 'chmod':
        return errno.EROFS if backed else errno.EPERM
    if op == 'chown':
        if backed:
            return errno.EROFS
        return 0 if kind in ('volume dir', 'vm dir') else errno.EPERM
    if op == 'truncate':
        if is_dir:
            return errno.EISDIR
        return 0 if kind in WRITABLE else errno.EACCES
    if op in ('write control', 'write policy'):
        if is_dir:
            return errno.EISDIR
        if kind not in WRITABLE:
            return errno.EACCES
        if op == 'write policy':
            return 0 if kind == 'policy' else errno.EINVAL
        return errno.EINVAL if kind == 'policy' else 0
    raise AssertionError(op)


def other_refusal_ok(got, owner_got):
    """The other account's answer is a refusal for lack of rights (EACCES,
    EPERM), or the same type error the owner gets (EISDIR, ENOTDIR: the
    type of a visible name is no secret)."""
    if got in (errno.EACCES, errno.EPERM):
        return True
    return got in (errno.EISDIR, errno.ENOTDIR) and got == owner_got


def tree_fingerprint(env):
    """What an attempt could change, seen as root: every name in the tree
    with its type, mode and owner; the content of every file outside
    backed-up/ (each job's state only: its progress may move); size, mtime,
    owner and mode of every file on both storages."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(env.mnt):
        rel = os.path.relpath(dirpath, env.mnt)
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            relp = os.path.normpath(os.path.join(rel, name))
            if relp in ('events', '.clock'):
                continue
            st = os.lstat(path)
            entry = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid]
            if stat.S_ISREG(st.st_mode) and not relp.startswith('backed-up'):
                with open(path, errors='replace') as f:
                    text = f.read()
                if relp.startswith('jobs/'):
                    text = json.loads(text).get('state')
                entry.append(text)
            seen[relp] = entry
    for top in (env.primary, env.secondary):
        for dirpath, _, filenames in os.walk(top):
            for name in filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                seen['storage:' + os.path.relpath(path, env.source)] = \
                    [st.st_size, st.st_mtime_ns, st.st_uid, stat.S_IMODE(st.st_mode)]
    return seen


def diff_fingerprints(a, b):
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out.append('%s: %s -> %s' % (key, a.get(key), b.get(key)))
    return out


def test_security_matrix(vmenv, users, request):
    env = vmenv
    # secondary storage small enough to fill: a backup that fails keeps an
    # alert and a waiting job (the test clock never reaches its retry)
    fs = env.tmpfs('sectmp', '48m')
    env.secondary = os.path.join(fs, 'secondary')
    os.mkdir(env.secondary)
    mine = {CAROL: ('vc', 'vmc', 'dc', 'pc'), DAVE: ('vd', 'vmd', 'dd', 'pd')}
    for i, (user, (vol, vm, disk, _)) in enumerate(sorted(mine.items())):
        env.make_volume(vol, '16M', [(0x31 + i, 0, '1M')])
        env.make_vm(vm, [disk], size='16M')
    open_to_all_users(env)
    env.mount(workers=2, retries=3, retry_delay=3600)

    # root takes a snapshot of each volume and VM, then gives them (with
    # their snapshots and backups) to the accounts
    for vol, vm, _, _ in mine.values():
        env.take(vol, 's1')
        env.vm_take(vm, 'v1')
    for vol, _, _, _ in mine.values():
        env.wait_state(vol, 's1', 'BackedUp')
    for user, (vol, vm, disk, _) in mine.items():
        for path in ('volumes/' + vol, 'volumes/' + disk, 'vms/' + vm):
            os.chown(env.p(path), *users[user])
    for user, (vol, vm, _, policy) in mine.items():
        uid = users[user][0]
        for path in ('volumes/%s/snapshots/s1' % vol, 'backed-up/volumes/%s/s1.qcow2' % vol,
                     'vms/%s/snapshots/v1' % vm):
            assert os.stat(env.p(path)).st_uid == uid, path
        run_as(user, create_and_write, env.p('policies', policy), policy_payload(vol))
    # a backup that fails for each: an alert and a job of the account
    fill(os.path.join(fs, 'filler'), '256K')
    if env.repository_mode() == 'on':
        # an incremental backup of unchanged data writes no chunk, so it
        # would not fail: new data (1 MiB, more than the room left)
        for vol in (v[0] for v in mine.values()):
            env.write_volume(vol, [(0x77, '4M', '1M')])
    for user, (vol, _, _, _) in mine.items():
        run_as(user, os.mkdir, env.snap_dir(vol, 'j1'))
    alerts, jobs = {}, {}
    for user, (vol, _, _, _) in mine.items():
        env.wait_state(vol, 'j1', 'BackupFailed')
        found = env.wait_for(lambda vol=vol: env.alerts_for(vol, 'j1'), 'the alert of %s/j1' % vol,
                             timeout=10)
        alerts[user] = sorted(found)[0]
        job = env.wait_for(lambda vol=vol: env.job_for(vol, 'j1'), 'the job of %s/j1' % vol,
                           timeout=10)
        jobs[user] = job['_file']
    env.wait_for(lambda: all(j.get('state') == 'waiting' for j in env.jobs()),
                 'every job to wait for its retry', timeout=30)
    for user in mine:
        assert os.stat(env.p('alerts', alerts[user])).st_uid == users[user][0]
        assert os.stat(env.p('jobs', jobs[user])).st_uid == users[user][0]

    objects = {user: objects_of(env, vol, vm, alerts[user], jobs[user], policy)
               for user, (vol, vm, _, policy) in mine.items()}

    def cells(actor, owner, ops):
        vol = mine[owner][0]
        return [[op, env.p(path), is_dir, SHORT[actor], users[actor],
                 control_payload(kind), policy_payload(vol)]
                for kind, path, is_dir in objects[owner] for op in ops]

    def labels(owner, ops):
        return [(kind, path, is_dir, op) for kind, path, is_dir in objects[owner] for op in ops]

    attempts = denied = wrongly_allowed = 0
    problems = []

    # 1. each account on the other's objects: every attempt refused, and
    #    nothing changes (not a name, mode, owner, state, policy or file)
    before = tree_fingerprint(env)
    n = len(env.read_events())
    other_results = {}
    for actor, owner in ((CAROL, DAVE), (DAVE, CAROL)):
        got = run_as(actor, do_cells, cells(actor, owner, OPS))
        other_results[actor] = list(zip(labels(owner, OPS), got))
        for (kind, path, is_dir, op), code in other_results[actor]:
            attempts += 1
            if code == 0:
                wrongly_allowed += 1
                problems.append('%s: %s on %s\'s %s (%s) succeeded' % (actor, op, owner, kind,
                                                                       path))
            else:
                denied += 1
    after = tree_fingerprint(env)
    changed = diff_fingerprints(before, after)
    assert not changed and not problems, \
        'security: %d attempts, %d denied, %d allowed that should not be\n%s\n' \
        'and they changed:\n%s' % (attempts, denied, wrongly_allowed, '\n'.join(problems),
                                   '\n'.join(changed))
    new = env.events_since(n)
    assert not [ev for ev in new if ev.get('type') != 'rejected'], \
        'refused attempts left events of changes: %s' % new
    assert not [ev for ev in new if ev.get('type') == 'rejected'], \
        'the kernel refuses these from the modes; snapfs saw some: %s' % new

    # 2. each owner on its own objects: the tree's answer.  Non-destructive
    #    operations first (one child per account), then renames, unlinks and
    #    rmdirs one by one, inner objects before the snapshots themselves.
    safe = [op for op in OPS if op not in DESTRUCTIVE]
    owner_results = {}
    for owner in (CAROL, DAVE):
        got = run_as(owner, do_cells, cells(owner, owner, safe))
        results = list(zip(labels(owner, safe), got))
        vol, vm, _, policy = mine[owner]
        # a refused write (a control command into the policy file) and a
        # truncate leave the policy as it was
        assert env.read('policies', policy).splitlines()[0] == policy_payload(vol).strip()
        assert env.vm_state(vm) == 'stopped'
        for kind, path, is_dir in objects[owner]:
            # the one that succeeds (if any) last: it removes the object
            for op in sorted(DESTRUCTIVE, key=lambda op: owner_expects(kind, is_dir, op) == 0):
                cell = [op, env.p(path), is_dir, SHORT[owner], users[owner],
                        control_payload(kind), policy_payload(vol)]
                code = run_as(owner, do_op, *cell)
                results.append(((kind, path, is_dir, op), code))
                if code == 0 and op == 'rename':       # put it back, as root
                    os.rename(os.path.join(os.path.dirname(env.p(path)), 'r-' + SHORT[owner]),
                              env.p(path))
        owner_results[owner] = results
        for (kind, path, is_dir, op), code in results:
            attempts += 1
            want = owner_expects(kind, is_dir, op)
            if code:
                denied += 1
            if code != want:
                if code == 0:
                    wrongly_allowed += 1
                problems.append('%s: %s on own %s (%s): %s, the tree says %s' % (
                    owner, op, kind, path, en(code), en(want)))
        # what the allowed ones did
        assert env.snapshots(vol) == ['j1', 'm-' + SHORT[owner]], env.snapshots(vol)
        assert env.vm_snapshots(vm) == ['m-' + SHORT[owner]], env.vm_snapshots(vm)
        assert alerts[owner] not in env.alerts()
        assert mine[owner][3] not in env.listdir('policies')

    # the other account's refusals are for lack of rights, not by accident
    for actor, owner in ((CAROL, DAVE), (DAVE, CAROL)):
        owner_code = {(lab[0], lab[3]): code for lab, code in owner_results[owner]}
        for (kind, path, is_dir, op), code in other_results[actor]:
            if code and not other_refusal_ok(code, owner_code[(kind, op)]):
                problems.append('%s: %s on %s\'s %s (%s) refused with %s (the owner gets %s)' % (
                    actor, op, owner, kind, path, en(code), en(owner_code[(kind, op)])))

    by_errno = {}
    for actor in other_results:
        for _, code in other_results[actor]:
            by_errno[en(code)] = by_errno.get(en(code), 0) + 1
    print('\nthe other account was refused with: %s' % ', '.join(
        '%s %d' % kv for kv in sorted(by_errno.items())))
    line = 'security: %d attempts, %d denied, %d allowed that should not be' % (
        attempts, denied, wrongly_allowed)
    report_line(request, '\n' + line)
    assert not problems, line + '\n' + '\n'.join(problems)
    assert env.alive()


def create_and_write(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# ---- hostile names ---------------------------------------------------------------------

HOSTILE = [b'..x', b'...', b'a/b', b'../../etc/x', b'A' * 4096, b'a' * 256, b'a' * 255,
           b'a' * 129, b'a\nb', b'\nx', b'x\n\n', b'a\rb', b'a\tb', b'\x01x', b'x\x7f',
           b'\x1b[2Jx', b'-x', b'--help', b'-', b'\xff\xfe', b'a\xc3', b'\xc0\xaf',
           b'caf\xc3\xa9', b'a b', b'a:b', b'$(id)', b'a;b', b'*', b'a\\b', b'%s%n', b'.',
           b'..', b'.hidden', b'a\x00b']


def path_expectation(name):
    """The errno a name used as a path component gets, and whether snapfs
    (not the kernel) decides it (then it leaves an event)."""
    if len(name) > 255:
        return errno.ENAMETOOLONG, False     # the kernel's NAME_MAX
    if name in (b'.', b'..') or b'/' in name:
        return None, False                   # the kernel's own answer (EEXIST, EBUSY, ...)
    return errno.EINVAL, True


def check_refused(env, what, fn, code, event, since):
    """fn() must fail (with @code unless None); with @event, a rejected
    event names the errno.  Returns a problem string or None."""
    try:
        fn()
        got = 0
    except OSError as e:
        got = e.errno
    except ValueError:                       # embedded NUL: refused before any call
        return None
    if got == 0:
        return '%s: succeeded' % what
    if code is not None and got != code:
        return '%s: %s, expected %s' % (what, en(got), en(code))
    if event:
        new = env.events_since(since)
        if not [ev for ev in new if ev.get('type') in ('rejected', 'policy.reject')
                and ev.get('errno') == errno_name(got) and ev.get('message')]:
            return '%s: %s but no event names it: %s' % (what, en(got), new)
    return None


def raw_write(path, data, create=False):
    flags = os.O_WRONLY | os.O_TRUNC | (os.O_CREAT if create else 0)
    fd = os.open(path, flags, 0o644)
    try:
        n = os.write(fd, data)
    finally:
        os.close(fd)
    assert n == len(data)


def storage_names(env):
    """Every name on both storages (relative paths, bytes)."""
    names = []
    for top in (env.primary, env.secondary):
        for dirpath, dirnames, filenames in os.walk(os.fsencode(top)):
            for n in dirnames + filenames:
                names.append(os.path.relpath(os.path.join(dirpath, n), os.fsencode(env.source)))
    return names


def events_lenient(env):
    """The events, each line a JSON object (bytes that are not UTF-8 read
    as U+FFFD: the strict check is test_events_stay_utf8_json)."""
    with open(env.p('events'), 'rb') as f:
        raw = f.read()
    out = []
    for n, line in enumerate(raw.split(b'\n'), 1):
        if line.strip():
            ev = json.loads(line.decode('utf-8', 'replace'))
            assert isinstance(ev, dict), 'events line %d: %r' % (n, line)
            out.append(ev)
    return out


def test_hostile_names_are_refused_everywhere(env, request):
    env.make_volume('v', '16M', [(0x41, 0, '1M')])
    env.mount(workers=2)
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    limits_before = env.read('limits')
    before_storage = sorted(storage_names(env))
    snaps = os.fsencode(env.vol_dir('v', 'snapshots'))
    control = env.vol_dir('v', 'control')
    problems = []
    tried = 0

    for name in HOSTILE:
        code, by_snapfs = path_expectation(name)
        attempts = [
            ('mkdir snapshots/%r' % name, lambda: os.mkdir(snaps + b'/' + name), code, by_snapfs),
            ('mv s1 %r' % name, lambda: os.rename(snaps + b'/s1', snaps + b'/' + name),
             code, by_snapfs),
            ('create policies/%r' % name,
             lambda: raw_write(os.fsencode(env.p('policies')) + b'/' + name,
                               b'target=volume:v schedule=daily keep=1 tz=UTC\n', create=True),
             code if code != errno.EINVAL else errno.EINVAL, by_snapfs),
        ]
        # a name inside a control command: the parser refuses it (EINVAL)
        for cmd in (b'clone s1 %s', b'clone %s c1', b'revert %s', b'retry %s'):
            line = cmd.replace(b'%s', name) + b'\n'
            attempts.append(('control %r' % line, lambda line=line: raw_write(control, line),
                             errno.EINVAL, True))
        for line in (b'target=volume:%s schedule=daily keep=1 tz=UTC\n',
                     b'target=vm:%s schedule=daily keep=1 tz=UTC\n'):
            line = line.replace(b'%s', name)
            attempts.append(('policy %r' % line,
                             lambda line=line: raw_write(env.p('policies', 'hp'), line,
                                                         create=True),
                             errno.EINVAL, True))
        attempts.append(('limits %r' % name, lambda: raw_write(env.p('limits'), name + b' 1\n'),
                         errno.EINVAL, True))
        for what, fn, want, event in attempts:
            if b'\x00' in name and not what.startswith(('control', 'policy', 'limits')):
                continue                     # a NUL cannot be in a path
            tried += 1
            problem = check_refused(env, what, fn, want, event, len(env.read_events()))
            if problem:
                problems.append(problem)

    # time zones that are paths, and other malformed policy words
    for line in (b'tz=../../../../etc/passwd', b'tz=/etc/passwd', b'tz=Europe/../../etc/passwd',
                 b'tz=' + b'x' * 4096, b'tz=UTC\x00x', b'tz=\xff', b'keep=-1', b'keep=' + b'9' * 40,
                 b'schedule=daily@25:00', b'schedule=daily@%n', b'target=volume:v=v'):
        full = b'target=volume:v schedule=daily keep=1 ' + line + b'\n'
        if line.startswith((b'keep', b'schedule', b'target')):
            full = b'target=volume:v schedule=daily keep=1 tz=UTC\n'.replace(
                line.split(b'=')[0] + b'=', b'x-old=') + line + b'\n'
        tried += 1
        problem = check_refused(env, 'policy %r' % full,
                                lambda full=full: raw_write(env.p('policies', 'hp'), full,
                                                            create=True),
                                errno.EINVAL, True, len(env.read_events()))
        if problem:
            problems.append(problem)

    assert not problems, '%d of %d hostile attempts:\n%s' % (len(problems), tried,
                                                              '\n'.join(problems))
    # nothing was made, renamed or queued, and the daemon is fine
    assert env.alive()
    assert env.no_jobs_left()
    assert env.snapshots('v') == ['s1'] and env.state('v', 's1') == 'BackedUp'
    assert env.listdir('volumes') == ['v'], env.listdir('volumes')
    assert env.listdir('policies') == ['hp'] and env.read('policies', 'hp') == '', \
        (env.listdir('policies'), env.read('policies', 'hp'))
    os.unlink(env.p('policies', 'hp'))
    assert env.read('limits') == limits_before
    assert sorted(storage_names(env)) == before_storage
    assert env.backups('v') == ['s1.json', 's1.qcow2']
    events_lenient(env)
    report_line(request, '\nhostile names: %d attempts, all refused' % tried)


def test_names_at_the_limit_and_differing_in_case(env):
    n128, v128, w128, p128 = 'n' * 128, 'V' * 128, 'W' * 128, 'q' * 128
    A, B = [(0x51, 0, '1M')], [(0x52, '2M', '1M')]
    env.make_volume('v', '16M', A)
    env.make_volume(v128, '16M', A)
    ref_a, ref_ab = env.make_reference('16M', A), env.make_reference('16M', A + B)
    env.mount(workers=2)

    # two snapshots A and a: two snapshots, two backups, each its own data
    env.take('v', 'A')
    env.write_volume('v', B)
    env.take('v', 'a')
    env.take(v128, n128)
    for vol, snap in (('v', 'A'), ('v', 'a'), (v128, n128)):
        env.wait_state(vol, snap, 'BackedUp')
    assert env.snapshots('v') == ['A', 'a']
    assert env.info('v', 'A')['uuid'] != env.info('v', 'a')['uuid']
    assert env.backups('v') == ['A.json', 'A.qcow2', 'a.json', 'a.qcow2']
    assert qemu_img_compare(ref_a, env.backup_file('v', 'A')) == 0
    assert qemu_img_compare(ref_ab, env.backup_file('v', 'a')) == 0
    assert env.manifest('v', 'A')['snapshot'] == 'A' and env.manifest('v', 'a')['snapshot'] == 'a'
    assert len([f for f in env.secondary_files()
                if f.endswith('.' + env.stored_backup_ext())]) == 3
    assert env.backups(v128) == [n128 + '.json', n128 + '.qcow2']
    assert qemu_img_compare(ref_a, env.backup_file(v128, n128)) == 0

    # mv to a 128-byte name and back
    os.rename(env.snap_dir('v', 'a'), env.snap_dir('v', n128))
    assert env.snapshots('v') == ['A', n128]
    assert env.backups('v') == ['A.json', 'A.qcow2', n128 + '.json', n128 + '.qcow2']
    os.rename(env.snap_dir('v', n128), env.snap_dir('v', 'a'))

    # clones C and c (and one at 128 bytes) are three volumes
    n = len(env.read_events())
    env.control('v', 'clone A C')
    env.control('v', 'clone a c')
    env.control(v128, 'clone %s %s' % (n128, w128))
    env.wait_for(lambda: len([ev for ev in env.events_since(n)
                              if ev.get('type') in ('clone.end', 'clone.fail')]) == 3,
                 'the three clones', timeout=60)
    assert not [ev for ev in env.events_since(n) if ev.get('type') == 'clone.fail']
    assert env.listdir('volumes') == sorted(['C', 'c', 'v', v128, w128])
    assert qemu_img_compare(ref_a, env.volume_path('C'), force_share=True) == 0
    assert qemu_img_compare(ref_ab, env.volume_path('c'), force_share=True) == 0
    assert qemu_img_compare(ref_a, env.volume_path(w128), force_share=True) == 0

    # reverts to each
    env.control('v', 'revert A')
    assert qemu_img_compare(ref_a, env.volume_path('v'), force_share=True) == 0
    env.control('v', 'revert a')
    assert qemu_img_compare(ref_ab, env.volume_path('v'), force_share=True) == 0
    env.control(v128, 'revert ' + n128)

    # policies P and p, and one of 128 bytes on the 128-byte volume
    env.write_file(env.p('policies', 'P'), 'target=volume:v schedule=daily@01:00 keep=1 tz=UTC')
    env.write_file(env.p('policies', 'p'), 'target=volume:v schedule=hourly@05 keep=1 tz=UTC')
    env.write_file(env.p('policies', p128),
                   'target=volume:%s schedule=weekly@mon-02:00 keep=1 tz=UTC' % v128)
    assert env.listdir('policies') == sorted(['P', 'p', p128])
    assert env.read('policies', 'P').startswith('target=volume:v schedule=daily@01:00 ')
    assert env.read('policies', 'p').startswith('target=volume:v schedule=hourly@05 ')
    assert env.read('policies', p128).startswith('target=volume:%s ' % v128)

    # rmdir of a leaves A whole
    os.rmdir(env.snap_dir('v', 'a'))
    assert env.snapshots('v') == ['A'] and env.backups('v') == ['A.json', 'A.qcow2']
    assert qemu_img_compare(ref_a, env.backup_file('v', 'A')) == 0
    assert env.no_jobs_left()


def test_events_stay_utf8_json(env):
    env.make_volume('v', '16M')
    env.mount(workers=1)
    with pytest.raises(OSError) as ei:
        os.mkdir(os.fsencode(env.vol_dir('v', 'snapshots')) + b'/\xff\xfe')
    assert ei.value.errno == errno.EINVAL
    with open(env.p('events'), 'rb') as f:
        raw = f.read()
    for n, line in enumerate(raw.split(b'\n'), 1):
        if line.strip():
            json.loads(line.decode('utf-8'))     # strict: raises on bytes that are not UTF-8
    assert [ev for ev in events_lenient(env) if ev.get('type') == 'rejected'
            and ev.get('op') == 'mkdir']


# ---- names from outside: files dropped into primary storage, libvirt domains ----------------

DROPPED = [b'-x', b'--help', b'-', b'a b', b'..', b'.', b'.h', b'', b'a\nb', b'\nx', b'x\n',
           b'B' * 200, b'A' * 129, b'\xff\xfe', b'caf\xc3\xa9', b'$(id)', b'a;b', b'x\x1b[2J',
           b'\x01', b'a\\b', b'*', b'a:b']


def file_sig(path):
    """(sha256, size, mtime) of a file, or of each file in a directory."""
    if os.path.isdir(path) and not os.path.islink(path):
        st = os.lstat(path)
        return {'': st.st_mtime_ns,
                **{n: file_sig(os.path.join(path, n)) for n in sorted(os.listdir(path))}}
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return (h.hexdigest(), st.st_size, st.st_mtime_ns)


def test_hostile_files_in_primary_are_not_volumes(env):
    env.make_volume('v', '16M', [(0x61, 0, '1M')])
    prim = os.fsencode(env.primary)
    dropped = []
    for i, name in enumerate(DROPPED):
        path = prim + b'/' + name + b'.qcow2'
        qemu_img_create(os.fsdecode(path), '1M')
        dropped.append(path)
    os.mkfifo(prim + b'/fifo.qcow2')                 # opening it would block
    os.mkdir(prim + b'/dir.qcow2')
    with open(prim + b'/junk.qcow2', 'wb') as f:     # a good name, not an image
        f.write(b'not a qcow2 image\n' * 100)
    sigs = {p: file_sig(p) for p in dropped + [prim + b'/junk.qcow2']}
    env.mount(workers=1)

    def check_listing():
        assert env.listdir('volumes') == ['junk', 'v'], env.listdir('volumes')
        for bad in ('fifo', 'dir', '-x', 'a b'):
            assert attempt(os.stat, env.vol_dir(bad)) == errno.ENOENT, bad
        found = [ev.get('volume') for ev in events_lenient(env) if ev.get('type') == 'volume.found']
        assert sorted(set(found)) == ['junk', 'v'], found
    check_listing()
    # the one with a good name is a volume whose snapshot fails (EIO), as docs/errors.md says
    assert env.volume_info('junk')['format'] == 'unknown'
    assert attempt(os.mkdir, env.snap_dir('junk', 's1')) == errno.EIO
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')

    # dropped while mounted (the inotify watch sees them): the same
    late = []
    for name in (b'-late', b'late\n', b'\xfflate', b'.late', b'C' * 249):
        path = prim + b'/' + name + b'.qcow2'
        qemu_img_create(os.fsdecode(path), '1M')
        late.append(path)
    os.unlink(late[0])
    check_listing()
    env.remount()
    check_listing()
    assert env.snapshots('v') == ['s1'] and env.state('v', 's1') == 'BackedUp'
    assert env.alive()
    # nothing of theirs was touched, and nothing was made for them
    for p, s in sigs.items():
        assert file_sig(p) == s, 'snapfs changed %r' % p
    assert sorted(os.listdir(os.path.join(env.primary, '.snapfs'))) == ['.tmp', 'v']
    assert [n for n in os.listdir(os.path.join(env.secondary, 'volumes'))] == ['v']


def test_hostile_vm_names(vmenv):
    env = vmenv
    env.make_vm('good', ['gd'], size='16M')
    hostile = ['a b', '-x', '--help', '.x', '..', 'caf\u00e9', 'B' * 200, 'A' * 129, '$(id)',
               'x;rm', 'tab&#9;x', 'x&#10;y', 'a/b', 'a:b']
    for i, name in enumerate(hostile):
        env.make_volume('hd%d' % i, '16M')
        xml = env.domain_xml(name, ['hd%d' % i], uuid='00000000-0000-4000-8000-%012d' % (i + 1))
        env.define_domain_xml('h%d.xml' % i, xml)
    env.mount(workers=1)
    # libvirt takes some of them; snapfs shows none of them
    assert env.listdir('vms') == ['good'], env.listdir('vms')
    for i in range(len(hostile)):
        assert env.volume_info('hd%d' % i)['vm'] is None
    # their disks are ordinary volumes
    env.take('hd0', 's1')
    env.wait_state('hd0', 's1', 'BackedUp')

    # hostile names through the good VM's entry points
    problems, tried = [], 0
    snaps = os.fsencode(env.vm_dir('good', 'snapshots'))
    for name in HOSTILE:
        code, by_snapfs = path_expectation(name)
        attempts = []
        if b'\x00' not in name:
            attempts.append(('mkdir vms/good/snapshots/%r' % name,
                             lambda name=name: os.mkdir(snaps + b'/' + name), code, by_snapfs))
        # refused, though with ENOENT where volumes say EINVAL: see
        # test_vm_revert_of_a_bad_name_is_einval
        attempts.append(('vm control revert %r' % name,
                         lambda name=name: raw_write(env.vm_dir('good', 'control'),
                                                     b'revert ' + name + b'\n'),
                         None, True))
        attempts.append(('policy target=vm:%r' % name,
                         lambda name=name: raw_write(
                             env.p('policies', 'hp'),
                             b'target=vm:' + name + b' schedule=daily keep=1 tz=UTC\n',
                             create=True), errno.EINVAL, True))
        for what, fn, want, event in attempts:
            tried += 1
            problem = check_refused(env, what, fn, want, event, len(env.read_events()))
            if problem:
                problems.append(problem)
    for line in (b'start now', b'stop\nstart', b'revert', b'force-stop --now', b'\xff',
                 b'start\x00', b'A' * 4096):
        tried += 1
        problem = check_refused(env, 'vm control %r' % line[:40],
                                lambda line=line: raw_write(env.vm_dir('good', 'control'),
                                                            line + b'\n'),
                                errno.EINVAL, True, len(env.read_events()))
        if problem:
            problems.append(problem)
    for line in (b'memory=yes;rm', b'memory=../../x', b'memory=', b'quiesce=' + b'y' * 4096,
                 b'\xff', b'memory=yes\x00', b'-x', b'memory=yes quiesce=no extra'):
        tried += 1
        problem = check_refused(env, 'snapshot-options %r' % line[:40],
                                lambda line=line: raw_write(env.vm_dir('good', 'snapshot-options'),
                                                            line + b'\n'),
                                errno.EINVAL, True, len(env.read_events()))
        if problem:
            problems.append(problem)
    assert not problems, '%d of %d:\n%s' % (len(problems), tried, '\n'.join(problems))
    assert env.vm_snapshots('good') == [] and env.vm_state('good') == 'stopped'
    assert env.read('vms', 'good', 'snapshot-options').split() == ['memory=no', 'quiesce=no']
    os.unlink(env.p('policies', 'hp'))
    assert env.listdir('policies') == []
    assert env.alive()
    events_lenient(env)
    # and the good VM works
    env.vm_take('good', 'g1')
    assert env.vm_snapshots('good') == ['g1']


def test_vm_revert_of_a_bad_name_is_einval(vmenv):
    env = vmenv
    env.make_vm('good', ['gd'], size='16M')
    env.mount(workers=1)
    for name in ('-x', '.hidden', 'a:b'):
        assert env.vm_control_errno('good', 'revert ' + name) == errno.EINVAL, name


# ---- planted links -----------------------------------------------------------------------
#
# The outside targets live in ROOT/outside: the same file system as the
# storages, so that a link(), rename() or write that follows a planted link
# would succeed there instead of failing with EXDEV.

def outside(env):
    path = os.path.join(env.root, 'outside')
    os.makedirs(path, exist_ok=True)
    return path


def precious_dir(env, name):
    """ROOT/outside/@name with one file in it that nothing may touch."""
    path = os.path.join(outside(env), name)
    os.mkdir(path)
    with open(os.path.join(path, 'precious'), 'w') as f:
        f.write('not snapfs\'s to touch\n')
    return path


def precious_image(env, name, pattern):
    path = os.path.join(outside(env), name)
    qemu_img_create(path, '16M')
    qemu_io_write(path, [(pattern, 0, '1M')])
    return path


def test_planted_volume_symlinks_are_not_volumes(env):
    victim = precious_image(env, 'victim.qcow2', 0x77)
    data = [(0x71, 0, '1M')]
    env.make_volume('v', '16M', data)
    ref = env.make_reference('16M', data)
    links = {'passwd': '/etc/passwd', 'out': victim, 'dangling': '/nonexistent/x.qcow2',
             'loop': os.path.join(env.primary, 'loop.qcow2'), 'dirlink': outside(env)}
    for name, target in links.items():
        os.symlink(target, env.volume_path(name))
    targets = {p: file_sig(p) for p in ('/etc/passwd', victim)}
    env.mount(workers=1)

    def check():
        assert env.listdir('volumes') == ['v'], env.listdir('volumes')
        for name in links:
            assert attempt(os.stat, env.vol_dir(name)) == errno.ENOENT, name
            assert attempt(os.mkdir, env.snap_dir(name, 's1')) == errno.ENOENT, name
            assert attempt(os.listdir, env.p('backed-up', 'volumes', name)) == errno.ENOENT
    check()
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    # a clone onto the link's name must not write through it
    n = len(env.read_events())
    err = env.control_errno('v', 'clone s1 out')
    if err == 0:
        env.wait_for(lambda: [ev for ev in env.events_since(n)
                              if ev.get('type') in ('clone.end', 'clone.fail')],
                     'the clone onto the link to end', timeout=60)
    assert os.path.islink(env.volume_path('out')) and \
        os.readlink(env.volume_path('out')) == victim
    # planted while mounted (the inotify watch): the same
    os.symlink(victim, env.volume_path('late'))
    links['late'] = victim
    check()
    env.remount()
    check()

    # a known volume's file swapped for a link (its snapshots remain): no
    # take through it; a revert puts a real file in the link's place
    env.unmount()
    os.unlink(env.volume_path('v'))
    os.symlink(victim, env.volume_path('v'))
    env.mount(workers=1)
    assert env.volume_info('v')['on_primary'] is False, env.volume_info('v')
    assert attempt(os.mkdir, env.snap_dir('v', 's2')) == errno.ENOENT
    err = env.control_errno('v', 'revert s1')     # today ENOENT: the volume file is gone
    assert err in (0, errno.ENOENT), en(err)
    if err == 0:
        assert not os.path.islink(env.volume_path('v'))
        assert qemu_img_compare(ref, env.volume_path('v'), force_share=True) == 0
    assert env.alive() and env.no_jobs_left()
    for p, s in targets.items():
        assert file_sig(p) == s, '%s changed' % p
    assert qemu_img_compare(ref, env.backup_file('v', 's1')) == 0
    assert sorted(os.listdir(os.path.join(env.primary, '.snapfs'))) == ['.tmp', 'v']


def test_planted_hard_link_is_not_a_volume(env):
    hard = precious_image(env, 'hard.qcow2', 0x66)
    env.make_volume('v', '16M', [(0x61, 0, '1M')])
    os.link(hard, env.volume_path('hl'))
    sig = file_sig(hard)
    env.mount(workers=1, keep_primary=1)
    problems = []
    if 'hl' in env.listdir('volumes'):
        problems.append('hl (a hard link to %s) is listed as a volume' % hard)
    # whatever snapfs does with it, the outside file stays as it was
    for snap, pattern in (('s1', 0x62), ('s2', 0x63), ('s3', None)):
        if attempt(os.mkdir, env.snap_dir('hl', snap)) == 0:
            problems.append('mkdir volumes/hl/snapshots/%s succeeded' % snap)
            env.wait_for(lambda snap=snap: env.state('hl', snap) in ('BackedUp', 'BackupFailed'),
                         'the backup of hl/' + snap)
            if pattern:
                env.write_volume('hl', [(pattern, '2M', '1M')])
    env.no_jobs_left()
    if file_sig(hard) != sig:
        problems.append('%s was changed (nlink now %d)' % (hard, os.stat(hard).st_nlink))
    assert not problems, '\n'.join(problems)


# (where the link is planted, relative to SOURCE; what the fix should be)
DIR_LINKS = [
    'primary/.snapfs/lv',     # a volume's layer directory: its snapshots fail (EIO, event)
    'primary/.snapfs/.tmp',   # snapfs refuses to start, and says why
    'secondary/.tmp',         # the same
    'secondary/volumes/lv',   # a volume's backup directory: its backups fail (alert)
    'primary/.snapfs',        # snapfs refuses to start
    'secondary/volumes',      # the same
]


@pytest.mark.parametrize('where', DIR_LINKS)
def test_planted_directory_symlink_is_not_followed(env, where):
    """A symlink planted where snapfs keeps its own directories, pointing at
    a directory outside both storages: snapfs either refuses to start (and
    says why) or works without creating, changing or removing anything in
    the directory it points to."""
    target = precious_dir(env, 'elsewhere')
    data = [(0x81, 0, '1M')]
    env.make_volume('lv', '16M', data)
    ref = env.make_reference('16M', data)
    link = os.path.join(env.source, where)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(target, link)
    sig = file_sig(target)
    try:
        env.mount(workers=1, keep_primary=1, min_free=0)
    except AssertionError as e:
        # refusing to start is a fix too, if it says why
        assert file_sig(target) == sig, 'the refused start changed %s' % target
        assert where in env.diagnostics(), 'snapfs did not start and did not say why: %s' % e
        return
    # the operations may be refused (EIO with an event, a failed backup
    # with an alert): what matters is that nothing goes through the link
    problems = []
    try:
        for snap in ('s1', 's2'):
            n = len(env.read_events())
            try:
                env.take('lv', snap)
            except OSError as e:
                assert e.errno == errno.EIO, e
                assert [ev for ev in env.events_since(n) if ev.get('result') == 'error'], \
                    'mkdir refused without an event'
                continue
            env.wait_for(lambda snap=snap: env.state('lv', snap) in ('BackedUp', 'BackupFailed'),
                         'the backup of lv/' + snap)
            env.write_volume('lv', [(0x82, '2M', '1M')])
        if 's1' in env.snapshots('lv'):
            n = len(env.read_events())
            env.control('lv', 'clone s1 c1')
            env.wait_for(lambda: [ev for ev in env.events_since(n)
                                  if ev.get('type') in ('clone.end', 'clone.fail')],
                         'the clone to end', timeout=60)
        env.wait_for(lambda: all(j.get('state') == 'waiting' for j in env.jobs()),
                     'jobs to end or wait for a retry')
        env.remount()
    except (OSError, AssertionError) as e:
        problems.append('the operations failed: %r' % e)
    now = file_sig(target)
    if now != sig:
        problems.append('%s (where %s points) changed: %s -> %s' % (target, where, sig, now))
    if env.alive() and env.state('lv', 's1') == 'BackedUp':
        assert qemu_img_compare(ref, env.backup_file('lv', 's1')) == 0
    assert not problems, '\n'.join(problems)


def test_planted_backup_file_symlinks_are_not_served(env):
    secret = precious_image(env, 'secret.qcow2', 0x99)
    fake = os.path.join(outside(env), 'fake.json')
    with open(fake, 'w') as f:
        f.write('{"secret": true}\n')
    data = [(0x91, 0, '1M')]
    env.make_volume('v', '16M', data)
    ref = env.make_reference('16M', data)
    # about the full-copy image file; the repository's files (an index or a
    # chunk planted as a symlink) are test_repo_hostile.py's: pinned
    env.mount(workers=1, repository='off')
    env.take('v', 's1')
    env.wait_state('v', 's1', 'BackedUp')
    uuid = env.info('v', 's1')['uuid']
    image = os.path.join(env.secondary, 'volumes', 'v', uuid + '.qcow2')
    manifest = os.path.join(env.secondary, 'volumes', 'v', uuid + '.json')
    sigs = {p: file_sig(p) for p in (secret, fake)}

    # swapped for links while mounted (nothing of them read before)
    for path, target in ((image, secret), (manifest, fake)):
        os.unlink(path)
        os.symlink(target, path)

    def not_served():
        for name, target in (('s1.qcow2', secret), ('s1.json', fake)):
            path = env.p('backed-up', 'volumes', 'v', name)
            try:
                with open(path, 'rb') as f:
                    head = f.read(1 << 20)
            except OSError as e:
                assert e.errno == errno.ENOENT, (name, e)
                continue
            with open(target, 'rb') as f:
                assert head != f.read(1 << 20), 'backed-up/volumes/v/%s serves %s' % (name,
                                                                                    target)
    not_served()
    # a clone and a revert of s1 read its layer or a real backup, never the link's target
    n = len(env.read_events())
    env.control('v', 'clone s1 c1')
    env.wait_for(lambda: [ev for ev in env.events_since(n)
                          if ev.get('type') in ('clone.end', 'clone.fail')], 'the clone')
    if 'c1' in env.listdir('volumes'):
        assert qemu_img_compare(ref, env.volume_path('c1'), force_share=True) == 0

    # recovery finds them damaged and copies again (over the links, not through them)
    env.remount()
    env.wait_state('v', 's1', 'BackedUp', fail_fast=False)
    env.no_jobs_left()
    assert not os.path.islink(image) and not os.path.islink(manifest)
    assert qemu_img_compare(ref, env.backup_file('v', 's1')) == 0
    for p, s in sigs.items():
        assert file_sig(p) == s, '%s changed' % p
    assert [ev for ev in env.read_events() if ev.get('type') == 'recovery.missing'
            and ev.get('snapshot') == 's1']
