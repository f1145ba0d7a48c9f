"""repo_backend - what the mount tests do to the repository's files
directly, on either storage backend (issue 14).

A test that inspects or damages the repository (lists its chunks, reads an
index, flips a byte in a chunk, plants a bad index, ages a chunk for GC)
does it through env.repo, one of:

- PosixRepo: files under a SECONDARY directory (env.secondary), names
  relative to it ('.chunks/ab/ab12...', 'volumes/v/<uuid>.index');
- RadosRepo: the objects of one pool and namespace of a Ceph cluster
  (ceph_harness.CephCluster), named exactly as the POSIX files are
  (docs/repository.md); driven with the `rados` CLI.

Both offer the same operations on names:

    repo.names(prefix='')      sorted names beginning with @prefix
    repo.listdir(dir)          the entries directly under @dir, as
                               os.listdir would list them ([]: none)
    repo.read(name)            bytes (OSError ENOENT when absent)
    repo.write(name, data)     create or replace whole
    repo.patch(name, off, b)   overwrite bytes at @off (in place on POSIX)
    repo.flip_byte(name, off)  XOR one byte with 0xff
    repo.remove(name)
    repo.exists(name)
    repo.size(name)
    repo.age(name, t)          make @name look last written at unix time
                               @t for GC: POSIX mtime (os.utime), RADOS the
                               xattr snapfs.t (20 decimal digits)
    repo.new_chunk_size        the chunk size of a repository snapfs makes
    repo.chunk_names()         the chunks' names (64 hex digits), sorted
    repo.chunk_bytes()         their total size in bytes (headers included)

Only the Python 3.11 standard library is used here.
"""

import contextlib
import errno
import glob
import os
import re
import subprocess

CHUNKS = '.chunks/'
XATTR_TIME = 'snapfs.t'
MiB = 1 << 20
# repository.json's chunk_size for a new repository (engine/repo.h): RADOS
# gets 2 MiB, the OSD's CPU per byte of 4 MiB writes (docs/benchmarks.md)
POSIX_CHUNK = 1 * MiB
RADOS_CHUNK = 2 * MiB


def chunk_name(digest):
    """The repository name of the chunk whose sha256 is @digest (hex)."""
    return '%s%s/%s' % (CHUNKS, digest[:2], digest)


def is_chunk(name):
    return re.fullmatch(r'\.chunks/[0-9a-f]{2}/[0-9a-f]{64}', name) is not None


class Repo:
    """What both backends share."""

    kind = None

    def chunk_names(self):
        """The names of what is stored as .chunks/<xx>/<name> (as the glob
        .chunks/*/* finds them: no dot-names)."""
        out = []
        for n in self.names(CHUNKS):
            parts = n.split('/')
            if len(parts) == 3 and not parts[1].startswith('.') and \
                    not parts[2].startswith('.'):
                out.append(parts[2])
        return sorted(out)

    def chunk_bytes(self):
        return sum(self.size(chunk_name(d)) for d in self.chunk_names())

    def listdir(self, dir):
        prefix = dir.rstrip('/') + '/'
        return sorted({n[len(prefix):].split('/')[0] for n in self.names(prefix)})

    def patch(self, name, offset, data):
        whole = bytearray(self.read(name))
        assert offset + len(data) <= len(whole), (name, offset, len(whole))
        whole[offset:offset + len(data)] = data
        self.write(name, bytes(whole))

    def flip_byte(self, name, offset=100):
        """XOR the byte at @offset of @name with 0xff."""
        b = self.read(name)[offset]
        self.patch(name, offset, bytes([b ^ 0xff]))


class PosixRepo(Repo):
    kind = 'posix'
    new_chunk_size = POSIX_CHUNK

    def __init__(self, root):
        self.root = root

    def path(self, name):
        return os.path.join(self.root, name)

    def names(self, prefix=''):
        """Relative paths of the files under ROOT (what os.walk lists as
        files: symlinks to directories excluded)."""
        out = []
        for dirpath, _, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            for n in filenames:
                name = os.path.normpath(os.path.join(rel, n))
                if name.startswith(prefix):
                    out.append(name)
        return sorted(out)

    def read(self, name):
        with open(self.path(name), 'rb') as f:
            return f.read()

    def write(self, name, data):
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)

    def patch(self, name, offset, data):
        # in place, as the POSIX tests always did (same inode)
        with open(self.path(name), 'r+b') as f:
            f.seek(offset)
            f.write(data)

    def listdir(self, dir):
        try:
            return sorted(os.listdir(self.path(dir)))
        except FileNotFoundError:
            return []

    def chunk_names(self):
        return sorted(os.path.basename(p) for p in
                      glob.glob(os.path.join(self.root, '.chunks', '*', '*')))

    def remove(self, name):
        os.unlink(self.path(name))

    def exists(self, name):
        return os.path.exists(self.path(name))

    def size(self, name):
        return os.path.getsize(self.path(name))

    def age(self, name, t):
        os.utime(self.path(name), (t, t))

    def cleanup(self):
        pass        # the directory goes with the env's tree


class RadosRepo(Repo):
    """The objects of @namespace in @pool of @cluster (a CephCluster)."""

    kind = 'rados'
    new_chunk_size = RADOS_CHUNK

    def __init__(self, cluster, namespace, pool=None):
        self.cluster = cluster
        self.pool = pool or cluster.pool
        self.namespace = namespace
        self.conf = cluster.conf

    def secondary_option(self):
        """What -o secondary= names for this repository."""
        return 'rados:%s/%s' % (self.pool, self.namespace)

    def _run(self, *args, input=None, check=True, timeout=60):
        argv = ['rados', '-c', self.conf, '-p', self.pool, '-N', self.namespace,
                '--rados-osd-op-timeout', '30', '--rados-mon-op-timeout', '30']
        argv += list(args)
        proc = subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError('%s exited %d: %s' % (
                ' '.join(argv), proc.returncode, proc.stderr.decode(errors='replace')[-2000:]))
        return proc

    def _missing(self, proc):
        return proc.returncode != 0 and b'No such file or directory' in proc.stderr

    def names(self, prefix=''):
        out = self._run('ls').stdout.decode()
        return sorted(n for n in out.splitlines() if n.startswith(prefix))

    def read(self, name):
        proc = self._run('get', name, '-', check=False)
        if self._missing(proc):
            raise FileNotFoundError(errno.ENOENT, 'no object', name)
        if proc.returncode != 0:
            raise AssertionError('rados get %s: %s' % (name, proc.stderr.decode(errors='replace')))
        return proc.stdout

    def write(self, name, data):
        # `rados put` keeps the object's xattrs (snapfs.t) when it replaces
        # its data, as an overwrite in place keeps a file's inode
        self._run('put', name, '-', input=data)

    def remove(self, name):
        proc = self._run('rm', name, check=False)
        if self._missing(proc):
            raise FileNotFoundError(errno.ENOENT, 'no object', name)
        if proc.returncode != 0:
            raise AssertionError('rados rm %s: %s' % (name, proc.stderr.decode(errors='replace')))

    def _stat(self, name):
        proc = self._run('stat', name, check=False)
        if self._missing(proc):
            return None
        if proc.returncode != 0:
            raise AssertionError('rados stat %s: %s' % (name, proc.stderr.decode(errors='replace')))
        m = re.search(r'size (\d+)\s*$', proc.stdout.decode())
        assert m, 'rados stat %s printed %r' % (name, proc.stdout)
        return int(m.group(1))

    def exists(self, name):
        return self._stat(name) is not None

    def size(self, name):
        size = self._stat(name)
        if size is None:
            raise FileNotFoundError(errno.ENOENT, 'no object', name)
        return size

    def age(self, name, t):
        self._run('setxattr', name, XATTR_TIME, '%020d' % int(t))

    def touched(self, name):
        """The object's snapfs.t as an int (None without one)."""
        proc = self._run('getxattr', name, XATTR_TIME, check=False)
        if proc.returncode != 0:
            return None
        return int(proc.stdout.decode().strip())

    def cleanup(self):
        """Remove every object of the namespace (a test's leftovers)."""
        with contextlib.suppress(Exception):
            names = self.names()
            for i in range(0, len(names), 200):
                self._run('rm', *names[i:i + 200], check=False)


def rados_namespace(test_name):
    """A namespace for one test: its name made safe, and unique."""
    base = re.sub(r'[^A-Za-z0-9_.-]', '_', test_name)[:60]
    return '%s-%s' % (base, os.urandom(4).hex())
