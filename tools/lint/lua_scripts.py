#!/usr/bin/env python3
"""Checks every Redis script of the services (issue 17, items 1 and 8).

A script is a `.lua` file under common/ or services/, embedded at build time
(cmake/RogatoryLua.cmake). For each one this checks:

- its first line is Redis 7's `#!lua`, with `flags=no-writes` exactly when it runs no write
  command (Redis then runs it on replicas and while memory is full); `allow-oom` is allowed,
  `no-cluster` and `allow-cross-slot-keys` are not;
- its header names every `KEYS[n]` and `ARGV[n]` it reads (`-- KEYS[1]  what it is`, or a
  range `-- ARGV[3..]` for arguments it walks) and what it returns (`-- Returns`);
- every key it passes to `redis.call` / `redis.pcall` comes from KEYS: a `KEYS[...]`
  expression, or a name only ever assigned from one (Redis Cluster routes a script by its
  KEYS; a key built inside a script reaches a slot nobody declared);
- it reads no clock (`TIME`): scripts take "now" as an argument;
- it is embedded by some CMakeLists.txt;
- what it includes (`-- #include name.lua`) exists in common/src/lua/lib/.

A shared helper in common/src/lua/lib/ (`local function rg_name(...)`, at the start of a
line) reads no KEYS or ARGV. It may call Redis only on keys its caller passes: every key it
gives `redis.call` (or to another helper's key parameter) is one of its own parameters,
which it never assigns; and every script passes a `KEYS[...]` expression, or a name only
ever assigned one, at each such parameter, and uses the helper's name only to call it. A
helper's writes count as its callers' (for `flags=no-writes`).

It also checks that no C++ file under common/ or services/ holds Lua, except the files in
PENDING, which are still being moved out and must shrink to none; a file in PENDING that no
longer holds Lua is an error too, so the list stays true.

Usage: tools/lint/lua_scripts.py [--root DIR]    exits 1 listing every problem.
"""

import argparse
import pathlib
import re
import sys

# C++ files that still hold scripts in string literals (issue 17 moves them out). Remove a
# file from here in the commit that moves its scripts into .lua files.
PENDING: set[str] = set()

ALLOWED_FLAGS = {"no-writes", "allow-oom", "allow-stale"}

WRITE_COMMANDS = {
    "APPEND", "COPY", "DECR", "DECRBY", "DEL", "EXPIRE", "EXPIREAT", "GETDEL", "GETEX",
    "GETSET", "HDEL", "HINCRBY", "HINCRBYFLOAT", "HMSET", "HSET", "HSETNX", "INCR", "INCRBY",
    "INCRBYFLOAT", "LINSERT", "LMOVE", "LPOP", "LPUSH", "LPUSHX", "LREM", "LSET", "LTRIM",
    "MSET", "MSETNX", "PERSIST", "PEXPIRE", "PEXPIREAT", "PFADD", "PSETEX", "RENAME",
    "RENAMENX", "RESTORE", "RPOP", "RPOPLPUSH", "RPUSH", "RPUSHX", "SADD", "SDIFFSTORE",
    "SET", "SETEX", "SETNX", "SETRANGE", "SINTERSTORE", "SMOVE", "SPOP", "SREM",
    "SUNIONSTORE", "UNLINK", "XACK", "XADD", "XAUTOCLAIM", "XCLAIM", "XDEL", "XGROUP",
    "XREADGROUP", "XSETID", "XTRIM", "ZADD", "ZDIFFSTORE", "ZINCRBY", "ZINTERSTORE",
    "ZPOPMAX", "ZPOPMIN", "ZRANGESTORE", "ZREM", "ZREMRANGEBYLEX", "ZREMRANGEBYRANK",
    "ZREMRANGEBYSCORE", "ZUNIONSTORE",
}
# Commands whose every argument is a key.
ALL_KEYS = {"DEL", "UNLINK", "EXISTS", "MGET", "TOUCH", "SINTER", "SUNION", "SDIFF",
            "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE", "PFCOUNT", "PFMERGE"}
# Commands whose first two arguments are keys.
TWO_KEYS = {"RENAME", "RENAMENX", "RPOPLPUSH", "LMOVE", "SMOVE", "COPY", "ZRANGESTORE"}
# Destination, numkeys, then that many keys.
STORE_NUMKEYS = {"ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"}
# Numkeys, then that many keys.
NUMKEYS_FIRST = {"ZINTERCARD", "SINTERCARD", "ZINTER", "ZUNION", "ZDIFF", "LMPOP", "ZMPOP"}
# Commands that touch no key.
# PUBLISH names a pub/sub channel, not a key: channels live outside the keyspace (Redis
# Cluster broadcasts a PUBLISH to every node whatever its slot), so a script may take one from
# ARGV (inbox_deliver.lua wakes Subscribe streams this way).
NO_KEYS = {"PING", "ECHO", "PUBLISH"}
# Container commands whose key follows the subcommand (XINFO STREAM key, XGROUP CREATE key).
SUBCOMMAND_KEY = {"XINFO", "XGROUP", "OBJECT"}
FORBIDDEN = {"TIME": "scripts take \"now\" as an argument and never read Redis's TIME",
             "KEYS": "a script never scans the keyspace",
             "SCAN": "a script never scans the keyspace",
             "EVAL": "a script runs no other script",
             "EVALSHA": "a script runs no other script"}

FIRST_LINE = re.compile(r"^#!lua(?: flags=([a-z-]+(?:,[a-z-]+)*))?$")
HEADER_ENTRY = re.compile(r"^--\s+(KEYS|ARGV)\[(\d+)(\.\.(\d*))?\]")
USE = re.compile(r"\b(KEYS|ARGV)\[\s*(\d+)\s*\]")
DYNAMIC_USE = re.compile(r"\b(KEYS|ARGV)\[(?!\s*\d+\s*\])")
CALL = re.compile(r"\bredis\.p?call\s*\(")
KEYS_EXPR = re.compile(r"^KEYS\[[^\[\]]+\]$")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INCLUDE = re.compile(r"^-- #include ([a-z_]+\.lua)$", re.M)
HELPER_DEF = re.compile(r"^local function ([A-Za-z_][A-Za-z0-9_]*)\s*\(([^)]*)\)", re.M)
LIBRARY_DIR = "common/src/lua/lib"


def strip_comments(source):
    """The source with Lua comments blanked, strings kept (line numbers unchanged)."""
    out, i, n = [], 0, len(source)
    while i < n:
        c = source[i]
        if c in "'\"":
            j = i + 1
            while j < n and source[j] != c:
                j += 2 if source[j] == "\\" else 1
            out.append(source[i:j + 1])
            i = j + 1
        elif source.startswith("--", i):
            j = source.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def call_arguments(code, start):
    """The top-level arguments of the call whose '(' is at code[start - 1]."""
    args, depth, i, current = [], 0, start, []
    while i < len(code):
        c = code[i]
        if c in "'\"":
            j = i + 1
            while j < len(code) and code[j] != c:
                j += 2 if code[j] == "\\" else 1
            current.append(code[i:j + 1])
            i = j + 1
            continue
        if c in "({[":
            depth += 1
        elif c in ")}]":
            if depth == 0:
                args.append("".join(current).strip())
                return [a for a in args if a]
            depth -= 1
        elif c == "," and depth == 0:
            args.append("".join(current).strip())
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    return None


def key_arguments(command, args):
    """The arguments of `command` (after the command name) that are keys."""
    if command in NO_KEYS:
        return []
    if command in SUBCOMMAND_KEY:
        return args[1:2]
    if command in ALL_KEYS:
        return args
    if command in TWO_KEYS:
        return args[:2]
    if command == "MSET" or command == "MSETNX":
        return args[::2]
    if command in STORE_NUMKEYS:
        try:
            count = int(args[1])
        except (IndexError, ValueError):
            return None  # numkeys not a literal: cannot tell
        return [args[0]] + args[2:2 + count]
    if command in NUMKEYS_FIRST:
        try:
            count = int(args[0])
        except (IndexError, ValueError):
            return None  # numkeys not a literal: cannot tell
        return args[1:1 + count]
    if command in ("XREAD", "XREADGROUP"):
        upper = [a.strip("'\"").upper() for a in args]
        if "STREAMS" not in upper:
            return None
        rest = args[upper.index("STREAMS") + 1:]
        return rest[:len(rest) // 2]
    return args[:1]


def key_bound_names(code):
    """Names that are only ever assigned a KEYS[...] expression (or walk KEYS in a loop)."""
    assigned = {}
    for m in re.finditer(r"(?:\blocal\s+)?\b([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)\s*([^\n;]+)", code):
        name, value = m.group(1), m.group(2).strip()
        assigned.setdefault(name, []).append(value)
    bound = {name for name, values in assigned.items()
             if all(KEYS_EXPR.match(v) for v in values)}
    for m in re.finditer(r"\bfor\s+[A-Za-z_][A-Za-z0-9_]*\s*,\s*([A-Za-z_][A-Za-z0-9_]*)"
                         r"\s+in\s+ipairs\s*\(\s*KEYS\s*\)", code):
        if m.group(1) not in assigned:
            bound.add(m.group(1))
    return bound


class Helper:
    """A shared helper function: which of its parameters are keys, and whether it writes."""

    def __init__(self, name, params, body, offset, rel):
        self.name, self.params, self.body, self.offset, self.rel = (name, params, body, offset,
                                                                    rel)
        self.key_params = set()  # indexes into params
        self.writes = False


def check_calls(code, line_of, problem, is_key, why, helpers, key_uses=None):
    """Checks code's redis.call/pcall calls and its calls of `helpers` (name -> Helper):
    commands are literals and allowed, and every key argument passes `is_key`. Returns
    whether code writes (itself or through a helper). Each key argument found is added to
    `key_uses` when given."""
    writes = False
    for m in CALL.finditer(code):
        line = line_of(m.start())
        args = call_arguments(code, m.end())
        if not args:
            problem(line, "cannot read this call's arguments")
            continue
        literal = re.match(r"^(['\"])([A-Za-z]+)\1$", args[0])
        if not literal:
            problem(line, "the command must be a string literal, so that its keys can be "
                          "checked")
            continue
        command = literal.group(2).upper()
        if command in FORBIDDEN:
            problem(line, f"{command}: {FORBIDDEN[command]}")
            continue
        writes = writes or command in WRITE_COMMANDS
        keys = key_arguments(command, args[1:])
        if keys is None:
            problem(line, f"{command}: cannot tell which arguments are keys")
            continue
        for key in keys:
            if key_uses is not None:
                key_uses.add(key)
            if not is_key(key):
                problem(line, f"{command}: key '{key}' {why}")
    for name, helper in helpers.items():
        for m in re.finditer(r"(?<![A-Za-z0-9_.:])" + name + r"\b", code):
            call = re.match(r"\s*\(", code[m.end():])
            if not call:
                problem(line_of(m.start()), f"{name} is used other than called: a helper "
                                            "that takes keys is only ever called by name")
                continue
            args = call_arguments(code, m.end() + call.end()) or []
            writes = writes or helper.writes
            for index in sorted(helper.key_params):
                key = args[index] if index < len(args) else "(missing)"
                if key_uses is not None:
                    key_uses.add(key)
                if not is_key(key):
                    problem(line_of(m.start()), f"{name}: key argument {index + 1} '{key}' "
                                                f"{why}")
    return writes


def check_script(path, rel, problems, helpers):
    source = path.read_text()
    lines = source.split("\n")

    def problem(line, text):
        problems.append(f"{rel}:{line}: {text}")

    first = FIRST_LINE.match(lines[0]) if lines else None
    if not first:
        problem(1, "the first line must be Redis 7's '#!lua' line, with its flags "
                   "('#!lua flags=no-writes' for a script that only reads)")
        flags = set()
    else:
        flags = set(first.group(1).split(",")) if first.group(1) else set()
        for flag in sorted(flags - ALLOWED_FLAGS):
            problem(1, f"flag '{flag}' is not allowed (every key is declared, in one slot)")

    # The header: the comment block after the #!lua line.
    declared = {"KEYS": [], "ARGV": []}
    returns = False
    for line in lines[1:]:
        if not line.startswith("--"):
            break
        entry = HEADER_ENTRY.match(line)
        if entry:
            low = int(entry.group(2))
            high = low if not entry.group(3) else (int(entry.group(4)) if entry.group(4)
                                                   else None)
            declared[entry.group(1)].append((low, high))
        if re.match(r"^--\s+Returns\b", line):
            returns = True
    if not returns:
        problem(2, "the header must say what the script returns ('-- Returns  ...')")

    code = strip_comments(source)

    def line_of(offset):
        return code.count("\n", 0, offset) + 1

    def is_declared(kind, index):
        return any(low <= index and (high is None or index <= high)
                   for low, high in declared[kind])

    for m in USE.finditer(code):
        kind, index = m.group(1), int(m.group(2))
        if not is_declared(kind, index):
            problem(line_of(m.start()), f"{kind}[{index}] is not named in the header "
                                        f"('-- {kind}[{index}]  what it is')")
    for m in DYNAMIC_USE.finditer(code):
        kind = m.group(1)
        if not any(high is None or high > low for low, high in declared[kind]):
            problem(line_of(m.start()), f"{kind} is indexed by a variable but the header "
                                        f"declares no range ('-- {kind}[n..]')")

    bound = key_bound_names(code)
    writes = check_calls(code, line_of, problem,
                         lambda key: KEYS_EXPR.match(key) or (IDENT.match(key) and key in bound),
                         "does not come from KEYS (pass every key the script touches in KEYS)",
                         helpers)

    if first:
        if writes and "no-writes" in flags:
            problem(1, "flags=no-writes, but the script writes")
        if not writes and "no-writes" not in flags:
            problem(1, "the script only reads: its first line must be '#!lua flags=no-writes'")


def rebinding(body, name):
    """The offset of the first place `body` assigns or rebinds `name` (an assignment, a for
    loop's variable, a nested function's parameter), or None."""
    word = r"\b" + name + r"\b"
    patterns = [
        r"(?:\blocal\s+|[^.:\w]|^)" + name + r"\s*(?:,[^=\n]*)?=(?!=)",  # x = / local x, y =
        r",\s*" + name + r"\s*(?:,[^=\n]*)?=(?!=)",  # a, x = ...
        r"\bfor\b[^\n]*?" + word + r"[^\n]*?(?:\bin\b|=)",  # for x in / for x = 1, n
        r"\bfunction\b[^(\n]*\([^)]*" + word,  # function (x) / local function f(a, x)
    ]
    offsets = [m.start() for p in patterns for m in [re.search(p, body, re.M)] if m]
    return min(offsets) if offsets else None


def library_helpers(libraries, root, problems):
    """The helpers of every library (name -> Helper), each checked: it reads no KEYS or ARGV,
    and every key it touches is one of its parameters, never assigned."""
    helpers = {}
    for path in libraries:
        rel = path.relative_to(root).as_posix()
        code = strip_comments(path.read_text())
        if re.search(r"\b(KEYS|ARGV)\b", code):
            problems.append(f"{rel}: a shared helper reads no KEYS or ARGV: the script that "
                            "includes it passes what it needs")
        defs = list(HELPER_DEF.finditer(code))
        if CALL.search(code[:defs[0].start()] if defs else code):
            problems.append(f"{rel}: calls Redis outside a helper function")
        for i, d in enumerate(defs):
            end = defs[i + 1].start() if i + 1 < len(defs) else len(code)
            params = [p.strip() for p in d.group(2).split(",") if p.strip()]
            helpers[d.group(1)] = Helper(d.group(1), params, code[d.end():end], d.end(), rel)
    # Which parameters are keys: used as a key by the helper itself or passed to another
    # helper's key parameter (repeated until nothing changes).
    for _ in range(len(helpers) + 1):
        changed = False
        for helper in helpers.values():
            uses = set()
            writes = check_calls(helper.body, lambda _: 0, lambda *_: None, lambda _: True, "",
                                 helpers, uses)
            keys = {helper.params.index(u) for u in uses if u in helper.params}
            if keys - helper.key_params or writes != helper.writes:
                helper.key_params |= keys
                helper.writes = writes
                changed = True
        if not changed:
            break
    for helper in helpers.values():
        code = strip_comments((root / helper.rel).read_text())

        def problem(line, text, helper=helper):
            problems.append(f"{helper.rel}:{line}: {helper.name}: {text}")

        def line_of(offset, helper=helper, code=code):
            return code.count("\n", 0, helper.offset + offset) + 1

        params = set(helper.params)
        for index in sorted(helper.key_params):
            param = helper.params[index]
            rebound = rebinding(helper.body, param)
            if rebound is not None:
                problem(line_of(rebound), f"assigns its key parameter '{param}': a key "
                                          "parameter is used as passed")
        check_calls(helper.body, line_of, problem, lambda key: key in params,
                    "is not one of the helper's parameters (a helper touches only the keys "
                    "its caller passes from KEYS)", helpers)
    return helpers


def check_tree(root):
    problems = []
    everything = sorted(p for top in ("common", "services") for p in (root / top).rglob("*.lua"))
    libraries = [p for p in everything if p.parent.as_posix().endswith(LIBRARY_DIR)]
    scripts = [p for p in everything if p not in libraries]
    helpers = library_helpers(libraries, root, problems)
    library_names = {p.name for p in libraries}
    cmake_text = "\n".join(p.read_text() for top in ("common", "services")
                           for p in (root / top).rglob("CMakeLists.txt"))
    for path in scripts:
        rel = path.relative_to(root).as_posix()
        check_script(path, rel, problems, helpers)
        for name in INCLUDE.findall(path.read_text()):
            if name not in library_names:
                problems.append(f"{rel}: includes {name}, which {LIBRARY_DIR} lacks")
        if path.name not in cmake_text:
            problems.append(f"{rel}: no CMakeLists.txt embeds it (rogatory_embed_lua)")
    for top in ("common", "services"):
        for path in sorted((root / top).rglob("*")):
            if path.suffix not in (".cc", ".h"):
                continue
            rel = path.relative_to(root).as_posix()
            holds_lua = bool(CALL.search(path.read_text()))
            if holds_lua and rel not in PENDING:
                problems.append(f"{rel}: holds Lua (redis.call); scripts are .lua files "
                                "embedded with rogatory_embed_lua")
            if not holds_lua and rel in PENDING:
                problems.append(f"{rel}: holds no Lua any more: remove it from PENDING in "
                                "tools/lint/lua_scripts.py")
    for rel in sorted(PENDING):
        if not (root / rel).exists():
            problems.append(f"{rel}: listed in PENDING but does not exist")
    return scripts, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=pathlib.Path,
                        default=pathlib.Path(__file__).resolve().parents[2])
    args = parser.parse_args()
    scripts, problems = check_tree(args.root)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"lua_scripts: {len(problems)} problem(s) in {len(scripts)} script(s)",
              file=sys.stderr)
        return 1
    print(f"lua_scripts: {len(scripts)} script(s) checked; "
          f"{len(PENDING)} C++ file(s) still hold Lua")
    return 0


if __name__ == "__main__":
    sys.exit(main())
