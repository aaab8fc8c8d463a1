#!/usr/bin/env python3
"""check_layers.py SRC_DIR BUILD_LIBBUDDY_DIR: libbuddy's layering, checked.

1. Each .c file of libbuddy includes, of libbuddy's own headers, only its own
   layer's (the layers and their files are read from libbuddy/meson.build),
   and each layer's header includes only the header of the layer below.
2. No cycle between files: from the objects' symbol tables (nm), the graph
   "file A uses a symbol file B defines" has no cycle, and no file uses one
   of a layer above its own (the layer-check programs catch that at link
   time too; this names the symbol).
Prints the layers bottom to top; exits 1 with every violation listed.
"""
import collections, glob, os, re, subprocess, sys

src, objdir = sys.argv[1], sys.argv[2]
meson = open(os.path.join(src, 'meson.build')).read()
layers = re.findall(r"\['(\w+)', \[([^\]]*)\]\]", meson)
layer_of, order = {}, []
for name, files in layers:
    order.append(name)
    for f in re.findall(r"'([\w.]+)\.c'", files):
        layer_of[f] = name
rank = {n: i for i, n in enumerate(order)}
header_of = {n: ('api' if n == 'api' else n) + '.h' for n in order}
header_of['os'] = 'os.h'
problems = []

# 1. includes
own_headers = {os.path.basename(h) for h in glob.glob(os.path.join(src, '*.h'))}
for f, layer in layer_of.items():
    text = open(os.path.join(src, f + '.c')).read()
    incs = [i for i in re.findall(r'#include "([\w./]+)"', text) if i in own_headers]
    allowed = {header_of[layer]}
    bad = [i for i in incs if i not in allowed]
    if bad:
        problems.append('%s.c (layer %s) includes %s; only %s' % (f, layer, ', '.join(bad), header_of[layer]))
for i, name in enumerate(order[1:], 1):
    text = open(os.path.join(src, header_of[name])).read()
    incs = [h for h in re.findall(r'#include "([\w./]+)"', text) if h in own_headers and h not in ('types.h', 'lock.h', 'os.h')]
    if incs != [header_of[order[i - 1]]] and not (name == 'base' and incs == []):
        problems.append('%s includes %s; it should include %s' % (header_of[name], incs, header_of[order[i - 1]]))

# 2. symbols
defs, uses = {}, collections.defaultdict(set)
objects = [o for o in glob.glob(os.path.join(objdir, '*.a.p', '*.c.o'))]
for o in objects:
    f = os.path.basename(o)[:-len('.c.o')]
    if f not in layer_of:
        continue
    for line in subprocess.run(['nm', o], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in 'TDBRCVW':
            defs[parts[2]] = f
        elif len(parts) == 2 and parts[0] == 'U':
            uses[f].add(parts[1])
graph = collections.defaultdict(set)
for f, syms in uses.items():
    for s in syms:
        g = defs.get(s)
        if g is None or g == f:
            continue
        graph[f].add(g)
        if rank[layer_of[g]] > rank[layer_of[f]]:
            problems.append('%s.c (layer %s) uses %s of %s.c (layer %s, above)' % (f, layer_of[f], s, g, layer_of[g]))
if not objects:
    problems.append('no objects under %s' % objdir)

state = {}
def visit(f, path):
    state[f] = 1
    for g in sorted(graph[f]):
        if state.get(g) == 1:
            problems.append('cycle: ' + ' -> '.join(path[path.index(g):] + [g]))
        elif g not in state:
            visit(g, path + [g])
    state[f] = 2
for f in sorted(graph):
    if f not in state:
        visit(f, [f])

for name in order:
    print('%-9s %s' % (name, ' '.join(sorted(f + '.c' for f, l in layer_of.items() if l == name))))
for p in problems:
    print('LAYERING: ' + p)
sys.exit(1 if problems else 0)
