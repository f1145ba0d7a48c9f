#!/usr/bin/env python3
"""count-results.py - count individual test cases of the last `meson test` run.

Usage: count-results.py [BUILD_DIR] [MORE...]       (default: build)

Reads BUILD_DIR/meson-logs/testlog.json (one JSON object per meson test
program) and counts the cases inside each program:

  - a program run with `--junitxml=PATH` (the pytest mount tests): the
    <testcase> elements of PATH, provided PATH was written by this run;
  - a program whose output is TAP (the cmocka unit tests, registered with
    protocol 'tap'): its `ok` / `not ok` lines, `# SKIP` counting as skipped;
  - anything else: the program itself is one case.

A program that meson saw fail (non-zero exit, crash, timeout) but that
reported no failing case counts one failed case more, so a crash or a hang
is never hidden.  A program that exited 77 (meson SKIP) without cases counts
as one skipped.

Each further argument adds to the count: another build directory (its
testlog.json, e.g. the ASan+UBSan build of tools/sanitize.sh) or a TAP
file (e.g. BUILD/fuzz-results.tap of tools/fuzz.sh, one case per fuzz
target).  A named file or directory that has no results counts as one
failed case: a step that should have run and did not is not hidden.

Prints the names of failed cases, then a last line exactly
`N passed, N failed, N skipped`.  Exit status: 0 when nothing failed and at
least one case passed, 1 otherwise (also when the log is missing).
"""

import json
import os
import re
import sys
import xml.etree.ElementTree as ET

FAILED_RESULTS = {'FAIL', 'TIMEOUT', 'ERROR', 'UNEXPECTEDPASS', 'INTERRUPT'}
TAP_PLAN = re.compile(r'^\d+\.\.\d+', re.M)
TAP_RESULT = re.compile(r'^(not ok|ok)\b[ \t]*(\d+)?[ \t]*-?[ \t]*([^#\n]*)(#.*)?$')


def junit_path(command):
    for arg in command or []:
        if arg.startswith('--junitxml='):
            return arg.split('=', 1)[1]
    return None


def parse_junit(path, starttime):
    """Return (passed, failed, skipped, failed_names) or None if unusable."""
    try:
        if starttime and os.path.getmtime(path) < starttime - 2:
            return None  # left over from an earlier run
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    cases = {}
    for case in root.iter('testcase'):
        key = (case.get('classname', ''), case.get('name', ''))
        if case.find('failure') is not None or case.find('error') is not None:
            verdict = 'failed'
        elif case.find('skipped') is not None:
            verdict = 'skipped'
        else:
            verdict = 'passed'
        # pytest may report one test twice (a failure and a teardown error)
        if cases.get(key) != 'failed':
            cases[key] = verdict
    names = ['%s::%s' % k if k[0] else k[1]
             for k, v in cases.items() if v == 'failed']
    values = list(cases.values())
    return (values.count('passed'), values.count('failed'),
            values.count('skipped'), names)


def parse_tap(text):
    passed = failed = skipped = 0
    names = []
    for line in text.splitlines():
        m = TAP_RESULT.match(line)
        if not m:
            if line.startswith('Bail out!'):
                failed += 1
                names.append(line)
            continue
        ok = m.group(1) == 'ok'
        directive = (m.group(4) or '').lstrip('#').strip().upper()
        if directive.startswith('SKIP'):
            skipped += 1
        elif directive.startswith('TODO'):
            skipped += 1
        elif ok:
            passed += 1
        else:
            failed += 1
            names.append((m.group(3) or '').strip() or 'case %s' % m.group(2))
    return passed, failed, skipped, names


def count_entry(entry):
    result = entry.get('result', 'ERROR')
    stdout = entry.get('stdout') or ''
    counted = None
    path = junit_path(entry.get('command'))
    if path:
        counted = parse_junit(path, entry.get('starttime'))
    elif TAP_PLAN.search(stdout) or 'CMOCKA_MESSAGE_OUTPUT' in (entry.get('env') or {}):
        counted = parse_tap(stdout)

    if counted is None:
        if result in ('OK', 'EXPECTEDFAIL'):
            return 1, 0, 0, []
        if result == 'SKIP':
            return 0, 0, 1, []
        return 0, 1, 0, ['(%s)' % result.lower()]

    passed, failed, skipped, names = counted
    if result in FAILED_RESULTS and failed == 0:
        failed += 1
        names.append('(program %s without a failing case: crash, timeout or '
                     'error outside the tests)' % result.lower())
    elif result == 'SKIP' and passed + failed + skipped == 0:
        skipped = 1
    elif result == 'OK' and passed + failed + skipped == 0:
        passed = 1
    return passed, failed, skipped, names


def read_testlog(build):
    """Return (entries, problem): the meson test entries of @build."""
    log = os.path.join(build, 'meson-logs', 'testlog.json')
    try:
        with open(log, encoding='utf-8', errors='replace') as f:
            return [json.loads(line) for line in f if line.strip()], None
    except (OSError, ValueError) as e:
        return [], 'cannot read %s: %s' % (log, e)


def main(argv):
    sources = argv[1:] or ['build']
    passed = failed = skipped = 0
    for source in sources:
        if source.endswith('.tap'):
            try:
                with open(source, encoding='utf-8', errors='replace') as f:
                    p, f_, s, names = parse_tap(f.read())
            except OSError as e:
                print('count-results: cannot read %s: %s' % (source, e))
                p, f_, s, names = 0, 1, 0, ['(no results)']
            if p + f_ + s == 0:
                f_, names = 1, ['(no results)']
            passed += p
            failed += f_
            skipped += s
            for name in names:
                print('FAILED %s: %s' % (os.path.basename(source), name))
            continue
        entries, problem = read_testlog(source)
        if problem:
            print('count-results: ' + problem)
            failed += 1
        for entry in entries:
            p, f_, s, names = count_entry(entry)
            passed += p
            failed += f_
            skipped += s
            for name in names:
                print('FAILED %s: %s' % (entry.get('name', '?'), name))
    print('%d passed, %d failed, %d skipped' % (passed, failed, skipped))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
