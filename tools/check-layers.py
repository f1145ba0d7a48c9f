#!/usr/bin/env python3
"""check-layers.py SRCDIR [BUILDDIR]: the engine's layers hold.

The layers are the static libraries of engine/meson.build, lowest first:
snapbase and snapvirt (base), snapcore (core), snaptake and snapmech
(mechanisms), snaporch (orchestration), snapengine (lifecycle).  A file
may include and call only files of its own layer or lower ones, and the
files' graph (who includes or calls whom) has no cycle, within a layer too.

Includes are read from the sources.  Calls, when BUILDDIR is given, are
read from the objects with nm: each undefined symbol of an object is
resolved to the object that defines it.  Prints each violation and exits 1
when there is one; prints a one-line summary and exits 0 otherwise.
"""
import os
import re
import subprocess
import sys

LIBS = [('snapbase', 0), ('snapvirt', 0), ('snapcore', 1), ('snaptake', 2),
        ('snapmech', 2), ('snaporch', 3), ('snapengine', 4)]
NAMES = ['base', 'core', 'mechanisms', 'orchestration', 'lifecycle']
# headers without a .c of the same name, and the layer they belong to
HEADER_LAYER = {'context.h': 1, 'control.h': 0, 'snap.h': None,
                'chunk_format.h': 0}


def layers_of(src):
    text = open(os.path.join(src, 'engine', 'meson.build')).read()
    # comments out first: a ')' in one would end a files() list early
    # and silently leave the files after it out of every layer
    text = re.sub(r'#[^\n]*', '', text)
    layer = {}
    for lib, lvl in LIBS:
        m = re.search(r"static_library\('%s',(.*?)include_directories" % lib,
                      text, re.S)
        if not m:
            sys.exit('check-layers: no library %s in engine/meson.build' % lib)
        body = m.group(1)
        var = re.search(r'(\w+_sources)', body)
        if var:  # a files() list assigned before
            body = re.search(r'%s = files\((.*?)\)' % var.group(1), text,
                             re.S).group(1)
        for f in re.findall(r"'([\w]+\.c)'", body):
            layer[f[:-2]] = lvl
    return layer


def includes(src, layer):
    edges = {}
    for mod in layer:
        for ext in ('.c', '.h'):
            path = os.path.join(src, 'engine', mod + ext)
            if not os.path.exists(path):
                continue
            for h in re.findall(r'#include "([\w.]+)"', open(path).read()):
                edges.setdefault(mod, set()).add(h)
    return edges


def header_layer(h, layer):
    if h in HEADER_LAYER:
        return HEADER_LAYER[h]
    return layer.get(h[:-2])


def objects(build):
    objs = {}
    for lib, _ in LIBS:
        d = os.path.join(build, 'engine', 'lib%s.a.p' % lib)
        if os.path.isdir(d):
            for o in os.listdir(d):
                if o.endswith('.c.o'):
                    objs[o[:-4]] = os.path.join(d, o)
    return objs


def nm(path, defined):
    args = ['nm', '--defined-only' if defined else '-u', path]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if defined and len(parts) == 3 and parts[1] in 'TDBRC':
            syms.add(parts[2])
        elif not defined and parts:
            syms.add(parts[-1])
    return syms


def cycles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    src = sys.argv[1]
    build = sys.argv[2] if len(sys.argv) == 3 else None
    layer = layers_of(src)
    bad = []
    graph = {}

    for mod, hs in sorted(includes(src, layer).items()):
        for h in sorted(hs):
            hl = header_layer(h, layer)
            if hl is None:
                continue
            if hl > layer[mod]:
                bad.append('%s (%s) includes %s (%s): upward' % (
                    mod, NAMES[layer[mod]], h, NAMES[hl]))
            target = h[:-2]
            if target != mod and target in layer:
                graph.setdefault(mod, set()).add(target)

    calls = 0
    if build:
        objs = objects(build)
        if not objs:
            sys.exit('check-layers: no engine objects under %s' % build)
        owner = {}
        for mod, path in objs.items():
            for s in nm(path, True):
                owner[s] = mod
        for mod, path in sorted(objs.items()):
            for s in sorted(nm(path, False)):
                callee = owner.get(s)
                if not callee or callee == mod:
                    continue
                calls += 1
                graph.setdefault(mod, set()).add(callee)
                if layer.get(callee, 0) > layer.get(mod, 0):
                    bad.append('%s (%s) calls %s() of %s (%s): upward' % (
                        mod, NAMES[layer[mod]], s, callee,
                        NAMES[layer[callee]]))
    for comp in cycles(graph):
        bad.append('a cycle of includes or calls: %s' % ' <-> '.join(comp))
    for b in bad:
        print('check-layers: ' + b)
    if bad:
        print('check-layers: %d violation(s); the layers are listed in '
              'engine/context.h and docs/design.md' % len(bad))
        return 1
    print('check-layers: %d files in %d layers, %d cross-file calls%s: no '
          'upward include or call, no cycle' % (
              len(layer), len(NAMES), calls, '' if build else ' (not read)'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
