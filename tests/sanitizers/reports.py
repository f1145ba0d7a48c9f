#!/usr/bin/env python3
"""reports.py - turn the sanitizer log files of one run into TAP cases.

Usage: reports.py LOG_DIR MODE > RESULTS.tap

LOG_DIR holds the files the sanitizers wrote (log_path=LOG_DIR/<kind>,
one file per process that reported).  Each distinct finding is one failed
case, named by its kind and its first snapfs frame, with the files that
show it; with no finding there is one passing case.

What counts:
  - every AddressSanitizer, UndefinedBehaviorSanitizer and
    ThreadSanitizer report, except a race in which one access is a
    library's own call of free, memcpy... (GLib, libvirt and libfuse hand
    memory between their threads through queues and atomics TSan cannot
    see: ignore_noninstrumented_modules would do the same, but makes TSan
    abort threads that end inside those libraries);
  - a leak whose allocation was made by snapfs's code: the first frame
    past the allocator (libc, GLib's g_malloc family and containers) is in
    engine/, fs/ or tests/, or is in a library other than libfuse called
    from snapfs's code (a result snapfs had to free).
What does not, listed as ignored so a reader can see them: a leak
allocated by libfuse itself (its per-session buffers and directory
handles), and the per-open state of fs/ops.c (struct open_file from
op_open or op_create, and what it holds; op_release frees them): both are
still held when the session ends before libfuse has handled the last
RELEASE (a file closed just before its unmount, a lazy unmount), so they
are not leaks of a running daemon.
"""

import os
import re
import sys

# ASan: "#2 0x55c2 in dispatch ../engine/pool.c:117" or "#1 0x7f05  (/lib/..)";
# TSan: "#0 snap_job_read ../engine/events.c:337 (snapfs+0x19a8b)"
FRAME = re.compile(r'^\s*#(\d+) (?:0x[0-9a-f]+ )?(?:in )?(\S*) ?(.*)$')
SECTION = re.compile(r'^  (Previous )?(Read|Write|Atomic read|Atomic write|'
                     r'read|write|atomic read|atomic write)\b|^  (Location|Mutex|Thread) ')
OWN_MODULE = re.compile(r'\((snapfs|test_\w+|fuzz_\w+)\+0x')
SNAPFS_SRC = re.compile(r'/(engine|fs|tests)/[^ ]+\.c')
PER_OPEN = ('op_open', 'op_create')
ALLOCATORS = re.compile(r'libc\.so|libglib-2\.0\.so|libasan|libtsan|libubsan|'
                        r'sanitizer_common|/asan/|/tsan/|/ubsan/|libsanitizer')


def blocks(text):
    """Split a report file into (header, frames) pieces, one per report or
    per leak record."""
    out = []
    head, frames = None, []
    for line in text.splitlines():
        if re.search(r'(ERROR|WARNING): |runtime error|(Direct|Indirect) leak of',
                     line):
            if head is not None:
                out.append((head, frames))
            head, frames = line.strip(), []
            continue
        if head is not None and SECTION.match(line):
            frames.append(('--', line.strip()))  # a new stack starts
            continue
        m = FRAME.match(line)
        if m and head is not None:
            frames.append((m.group(2) or '?', m.group(3)))
    if head is not None:
        out.append((head, frames))
    return out


def snapfs_frame(frames):
    """The first frame in snapfs's sources, "function file" (no line: the
    lines of one function's allocations are one finding)."""
    for fn, where in frames:
        if fn == '--':
            continue
        m = SNAPFS_SRC.search(where)
        if m:
            return '%s %s' % (fn, where[m.start() + 1:].split()[0].split(':')[0])
    return None


def stacks(frames):
    """The stacks of a TSan report, in order: the two accesses first."""
    out = []
    for fn, where in frames:
        if fn == '--':
            out.append((where, []))
        elif out:
            out[-1][1].append((fn, where))
    return out


def library_access(stack):
    """Whether an access was made by a library's own call of an intercepted
    function (free, memcpy...): frame 0 in the sanitizer runtime, frame 1
    in a library that is not instrumented (GLib, libvirt, libfuse)."""
    return (len(stack) >= 2 and ALLOCATORS.search(stack[0][1]) and
            not OWN_MODULE.search(stack[1][1]) and not SNAPFS_SRC.search(stack[1][1]))


def classify_race(head, frames):
    accesses = [st for title, st in stacks(frames)
                if not re.match(r'(Location|Mutex|Thread) ', title)][:2]
    for st in accesses:
        if library_access(st):
            return None, 'race on memory a library hands between threads (%s)' % (
                st[1][1].split('(')[-1].split('+')[0])
    names = sorted(snapfs_frame(st) or '(no snapfs frame)' for st in accesses)
    return 'data race', ' vs '.join(names)


def classify(head, frames):
    """Return (kind, key) of a finding, or (None, why) when ignored."""
    if 'ThreadSanitizer: data race' in head:
        return classify_race(head, frames)
    if 'LeakSanitizer: detected memory leaks' in head:
        return None, None  # the leak records that follow say which
    if 'leak of' in head:
        past = [(fn, w) for fn, w in frames[1:] if not ALLOCATORS.search(w)]
        first = past[0] if past else ('?', '?')
        mine = snapfs_frame(frames)
        if mine and mine.split()[0] in PER_OPEN:
            return None, 'per-open state of %s' % mine.split()[0]
        if head.startswith('Indirect') and any(fn in PER_OPEN for fn, _ in frames):
            return None, 'per-open state of %s (its content)' % next(
                fn for fn, _ in frames if fn in PER_OPEN)
        if SNAPFS_SRC.search(first[1]) or (mine and 'libfuse' not in first[1]):
            return 'leak', mine or first[0]
        if not mine and not re.search(r'\.so', first[1]):
            # no frame past the allocator names a library: a cut stack
            return 'leak with a cut stack', first[1].split('/')[-1]
        return None, 'leak inside %s' % (first[1].split('/')[-1].split('+')[0]
                                         or first[0])
    kind = re.sub(r'^==\d+==', '', head)
    kind = re.sub(r'0x[0-9a-f]+', 'ADDR', kind)
    kind = re.sub(r'\(pid=\d+\)|pid=\d+|T\d+', '', kind)[:120]
    return kind, snapfs_frame(frames) or '(no snapfs frame)'


def main(argv):
    logdir, mode = argv[1], argv[2]
    findings, ignored = {}, {}
    for name in sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []:
        path = os.path.join(logdir, name)
        try:
            with open(path, errors='replace') as f:
                text = f.read()
        except OSError:
            continue
        for head, frames in blocks(text):
            kind, key = classify(head, frames)
            if kind:
                findings.setdefault((kind, key), []).append(name)
            elif key:
                ignored.setdefault(key, set()).add(name)
    cases = sorted(findings.items())
    print('1..%d' % max(len(cases), 1))
    if not cases:
        print('ok 1 - sanitizer (%s): no findings' % mode)
    for i, ((kind, key), files) in enumerate(cases, 1):
        files = sorted(set(files))
        text = '%s at %s (%s%s)' % (kind, key, ', '.join(files[:3]),
                                     ' and %d more' % (len(files) - 3)
                                     if len(files) > 3 else '')
        print('not ok %d - sanitizer (%s): %s' % (i, mode, text.replace('#', '?')))
    for key, files in sorted(ignored.items()):
        print('# ignored: %s (%d files)' % (key, len(files)))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
