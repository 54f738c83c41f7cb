#!/usr/bin/env python3
"""Checks that the files of src/ import each other without circles (`make check-imports`).

    scripts/import-circles.py [SRC_DIR] [--upward]

A file A imports a file B when a `use` in A, or a path in A's code written from `crate::`,
`super::` or `self::`, names an item whose longest module prefix is the file B (`foo.rs`
or `foo/mod.rs` for module `foo`; `lib.rs` for the crate). A circle is a set of two or
more files each reachable from every other along such imports. Each circle is printed
with the imports that make it; then one line, `check-imports: ...`, with the counts.
Exits 1 when there is a circle, so CI fails.

How to break one: put what both files need in a small module below both (or move the
item to the file that owns it), not into a bigger file. Note that `use super::*` in an
inline `mod tests { ... }` counts as an import of the parent module (the check reads
files, not inline modules): a child's tests that need the parent's items belong in the
child's own `tests.rs` (`foo/tests.rs`, which is not read, as nothing under `tests/` is).

An *upward* import is one of a module's ancestors (a child importing from its parent,
or anything importing from lib.rs). They are counted and, with --upward, listed; they do
not fail the check.

Comments are ignored; macros and glob re-exports are not followed. Python 3.11, stdlib only.
"""

import os
import re
import sys

# Circles that are known and not yet broken: listed, but they do not fail the check. Each is
# the set of its files, relative to SRC_DIR. Take one out once it is gone.
KNOWN = []

USE_RE = re.compile(r"\buse\s+((?:crate|super|self)\b[^;]*);", re.S)
PATH_RE = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
LINE_COMMENT_RE = re.compile(r"//[^\n]*")


def read_sources(src):
    """Every .rs file under src except tests (a `tests` folder or a `tests.rs`)."""
    sources = {}
    for root, dirs, names in os.walk(src):
        dirs.sort()
        if "tests" in os.path.relpath(root, src).split(os.sep):
            continue
        for name in sorted(names):
            if name.endswith(".rs") and name != "tests.rs":
                path = os.path.join(root, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    sources[os.path.relpath(path, src)] = f.read()
    return sources


def module_path(rel):
    """`a/b.rs` and `a/b/mod.rs` are module (a, b); lib.rs and main.rs the crate; bin/ none."""
    parts = rel[: -len(".rs")].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    if parts and parts[0] == "bin":
        return None
    return tuple(parts)


def split_top_level(text):
    """Splits `a, b::{c, d}, e` at the commas outside braces."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def use_paths(body):
    """`crate::a::{b::C, d as e}` -> [`crate::a::b::C`, `crate::a::d`]."""
    body = body.strip()
    grouped = re.match(r"(.*?)::\{(.*)\}\s*$", body, re.S)
    if not grouped:
        return [body]
    head, inner = grouped.group(1), grouped.group(2)
    paths = []
    for part in split_top_level(inner):
        if "{" in part:
            paths += use_paths(head + "::" + part)
        else:
            paths.append(head + "::" + part.split(" as ")[0].strip())
    return paths


def resolve(here, path, files_by_module):
    """The file holding the longest module prefix of `path`, read from module `here`."""
    segments = re.sub(r"\s+", "", path).split("::")
    if segments[0] == "crate":
        base, segments = (), segments[1:]
    else:
        base = here
        while segments and segments[0] in ("self", "super"):
            if segments[0] == "super":
                base = base[:-1]
            segments = segments[1:]
    for n in range(len(segments), -1, -1):
        found = files_by_module.get(base + tuple(segments[:n]))
        if found is not None:
            return found
    return None


def imports(sources):
    """file -> {imported file -> the paths that name it}."""
    files_by_module = {}
    for rel in sources:
        module = module_path(rel)
        if module is not None:
            files_by_module[module] = rel
    graph = {rel: {} for rel in sources}
    for rel, text in sources.items():
        here = module_path(rel)
        if here is None:
            continue
        code = LINE_COMMENT_RE.sub("", text)
        paths = [p for m in USE_RE.finditer(code) for p in use_paths(m.group(1))]
        paths += PATH_RE.findall(code)
        for path in paths:
            if path.strip().endswith("self"):
                path = path.rsplit("::", 1)[0]
            target = resolve(here, path, files_by_module)
            if target is not None and target != rel:
                graph[rel].setdefault(target, set()).add(re.sub(r"\s+", "", path))
    return graph


def circles(graph):
    """The strongly connected sets of two or more files (Tarjan's, without recursion)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            advanced = False
            for target in targets:
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    advanced = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def top_level(rel):
    """The crate's top-level module a file belongs to (`hub/service/agents.rs` -> `hub`)."""
    return rel.split(os.sep)[0][: -len(".rs")] if os.sep not in rel else rel.split(os.sep)[0]


def layer_circles(graph):
    """Circles between the crate's top-level modules (a layer importing one that imports it
    back, through any of their files): each layer may only depend on those below it."""
    layers = {}
    for rel, targets in graph.items():
        here = top_level(rel)
        layers.setdefault(here, {})
        for target, paths in targets.items():
            there = top_level(target)
            if there != here and there != "lib":
                layers[here].setdefault(there, set()).update(f"{rel}: {p}" for p in paths)
    for targets in list(layers.values()):
        for there in targets:
            layers.setdefault(there, {})
    return layers, circles(layers)


def upward(graph):
    """(importer, ancestor, paths) for every import of one of the importer's ancestors."""
    found = []
    for rel, targets in sorted(graph.items()):
        here = module_path(rel)
        if here is None:
            continue
        for target, paths in sorted(targets.items()):
            there = module_path(target)
            if there is not None and len(there) < len(here) and here[: len(there)] == there:
                found.append((rel, target, paths))
    return found


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    list_upward = "--upward" in argv
    src = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    if not os.path.isdir(src):
        print(f"check-imports: no such directory: {src}", file=sys.stderr)
        return 2
    graph = imports(read_sources(src))
    failing, known = [], []
    for circle in circles(graph):
        (known if set(circle) in KNOWN else failing).append(circle)
    for circle in failing + known:
        tag = "known import circle" if circle in known else "import circle"
        print(f"{tag}: " + " <-> ".join(circle))
        members = set(circle)
        for rel in circle:
            for target, paths in sorted(graph[rel].items()):
                if target in members:
                    shown = ", ".join(sorted(paths)[:4]) + (", ..." if len(paths) > 4 else "")
                    print(f"    {rel} -> {target}: {shown}")
    gone = [sorted(k) for k in KNOWN if sorted(k) not in known]
    for circle in gone:
        print("known circle gone (take it out of KNOWN in scripts/import-circles.py): " + " <-> ".join(circle))
    layers, layer_loops = layer_circles(graph)
    for circle in layer_loops:
        print("layer circle: " + " <-> ".join(circle))
        members = set(circle)
        for layer in circle:
            for target, paths in sorted(layers[layer].items()):
                if target in members:
                    print(f"    {layer} -> {target}: " + ", ".join(sorted(paths)[:3]))
    failing += layer_loops
    ups = upward(graph)
    if list_upward:
        for rel, target, paths in ups:
            print(f"upward import: {rel} -> {target}: " + ", ".join(sorted(paths)[:4]))
    verdict = "FAILED" if failing else "ok"
    print(
        f"check-imports: {verdict}: {len(failing) - len(layer_loops)} import circles,"
        f" {len(layer_loops)} circles between top-level modules"
        f" ({len(known)} known, listed in scripts/import-circles.py),"
        f" {len(ups)} upward imports (not failing; --upward lists them), {len(graph)} files"
    )
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
