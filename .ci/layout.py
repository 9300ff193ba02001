#!/usr/bin/env python3
"""The layout's promises, checked on the source (ARCHITECTURE.md, "Layers"):

- no import cycle between modules: among the modules of each folder (the crate's top level,
  then each folder below it), the `crate::`, `super::` and `self::` paths in the code form no
  cycle;
- nothing imports the composition root (`app`), except the binary (`main.rs`);
- no source file over 600 lines before its tests, no trait with more than 12 methods, and no
  `macro_rules!` over 150 lines.

Prints what is wrong and exits 1, or prints a one-line summary and exits 0.
"""

import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
MAX_LINES = 600
MAX_TRAIT_METHODS = 12
MAX_MACRO_LINES = 150


def module_path(file):
    parts = list(file.relative_to(SRC).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def strip_comments_and_strings(text):
    """Code without comments and string literals, line structure kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            chunk = text[i : (n if j < 0 else j + 2)]
            out.append("\n" * chunk.count("\n"))
            i = n if j < 0 else j + 2
        elif text[i] == '"' or text.startswith('r"', i) or text.startswith('r#"', i):
            hashes = 0
            if text[i] == "r":
                i += 1
                while text[i] == "#":
                    hashes += 1
                    i += 1
            end = '"' + "#" * hashes
            j = i + 1
            while j < n:
                if hashes == 0 and text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(end, j):
                    break
                j += 1
            out.append("\n" * text.count("\n", i, j) + '""')
            i = j + len(end)
        elif text[i] == "'" and re.match(r"'(\\.|[^\\'])'", text[i : i + 4]):
            j = text.index("'", i + 2 if text[i + 1] != "\\" else i + 3)
            out.append("' '")
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def expand_groups(path_text):
    """`a::{b, c::d}` -> ['a::b', 'a::c::d'] (one level of braces is all the code uses)."""
    m = re.match(r"^(.*?)::\{(.*)\}$", path_text, re.S)
    if not m:
        return [path_text]
    head, body = m.group(1), m.group(2)
    items, depth, current = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    paths = []
    for item in items:
        item = item.strip().split(" as ")[0].strip()
        if not item:
            continue
        if item == "self":
            paths.append(head)
        else:
            paths.extend(expand_groups(f"{head}::{item}"))
    return paths


def references(code):
    """Every path that starts with crate, super or self, as written."""
    found = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        found.extend(expand_groups(re.sub(r"\s+", "", m.group(1))))
    for m in re.finditer(r"(?<![\w:])\$?((?:crate|super|self)(?:::\w+)+)", code):
        found.append(m.group(1).lstrip("$"))
    return [p for p in found if re.match(r"^(crate|super|self)::", p)]


def resolve(path_text, here, is_mod_file):
    """The absolute module-or-item path a reference names, from module `here`."""
    segments = path_text.split("::")
    if segments[0] == "crate":
        base, rest = (), segments[1:]
    elif segments[0] == "self":
        base, rest = here, segments[1:]
    else:
        base, rest = here, segments
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    return tuple(base) + tuple(s for s in rest if s != "self")


def main():
    files = sorted(SRC.rglob("*.rs"))
    modules = {module_path(f) for f in files}
    problems = []
    edges = {}  # parent module -> {(child, child)}
    for file in files:
        here = module_path(file)
        text = file.read_text()
        code = strip_comments_and_strings(text)
        for ref in references(code):
            target = resolve(ref, here, file.name == "mod.rs")
            if target[:1] == ("app",) and here[:1] != ("app",) and file.name != "main.rs":
                problems.append(f"{file.relative_to(SRC.parent)}: imports the composition root ({ref})")
            common = 0
            while common < min(len(here), len(target)) and here[common] == target[common]:
                common += 1
            if common >= len(here):
                continue  # the module itself, or one of its children
            parent = here[:common]
            if common >= len(target) or parent + (target[common],) not in modules:
                continue  # an item of an ancestor
            edges.setdefault(parent, set()).add((here[common], target[common]))

        before_tests = text.split("#[cfg(test)]")[0]
        lines = before_tests.count("\n")
        if lines > MAX_LINES:
            problems.append(f"{file.relative_to(SRC.parent)}: {lines} lines before its tests (at most {MAX_LINES})")
        for m in re.finditer(r"\btrait\s+(\w+)[^{;]*\{", code):
            depth, i, methods = 1, m.end(), 0
            while depth and i < len(code):
                if code[i] == "{":
                    depth += 1
                elif code[i] == "}":
                    depth -= 1
                elif depth == 1 and re.match(r"\bfn\s", code[i : i + 3]) and not re.match(r"\w", code[i - 1]):
                    methods += 1
                i += 1
            if methods > MAX_TRAIT_METHODS:
                problems.append(f"{file.relative_to(SRC.parent)}: trait {m.group(1)} has {methods} methods (at most {MAX_TRAIT_METHODS})")
        for m in re.finditer(r"\bmacro_rules!\s*(\w+)\s*\{", code):
            depth, i = 1, m.end()
            while depth and i < len(code):
                depth += {"{": 1, "}": -1}.get(code[i], 0)
                i += 1
            length = code.count("\n", m.start(), i) + 1
            if length > MAX_MACRO_LINES:
                problems.append(f"{file.relative_to(SRC.parent)}: macro_rules! {m.group(1)} is {length} lines (at most {MAX_MACRO_LINES})")

    for parent, pairs in sorted(edges.items()):
        graph = {}
        for a, b in pairs:
            graph.setdefault(a, set()).add(b)
        for cycle in cycles(graph):
            where = "::".join(("crate",) + parent)
            problems.append(f"import cycle in {where}: {' -> '.join(cycle + [cycle[0]])}")

    if problems:
        print("Layout check failed:")
        for p in problems:
            print(f"  {p}")
        return 1
    groups = sum(1 for p in edges)
    print(f"Layout check: {len(files)} files, {sum(len(e) for e in edges.values())} module dependencies in {groups} folders, no cycle; sizes within bounds.")
    return 0


def cycles(graph):
    """One cycle per strongly connected component of more than one node (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(one_cycle(graph, set(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def one_cycle(graph, component):
    start = min(component)
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph.get(path[-1], ()) if w in component)
        back = [w for w in nxt if w == start]
        if back and len(path) > 1:
            return path
        fresh = [w for w in nxt if w not in seen]
        if not fresh:
            return path
        path.append(fresh[0])
        seen.add(fresh[0])


if __name__ == "__main__":
    sys.exit(main())
