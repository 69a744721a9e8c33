#!/usr/bin/env python3
"""Reads abidiff's report of libveil's ABI against release 1.0.0 (default
mode, --no-added-syms; tools/abi-check.sh runs it) and passes only additions
the release's callers cannot notice:

  - nothing removed: every summary line says "0 Removed";
  - a changed type is one of the structs the caller allocates with a member
    libveil reads first to know what the caller has (VERSIONED below), and
    the change is members appended at or past the release's size: "type
    size changed from A to B", then "data member insertion(s)" each at an
    offset >= A, and no other line (no member changed, moved, deleted or
    retyped, no change in a struct nested inside it);
  - every other line only says where such a change is reachable from
    (a function's parameter, a pointed-to type).

Exit 0 when the report holds only such changes, 1 (naming the line) when it
holds anything else."""
import re
import sys

VERSIONED = {"veil_client_options", "veil_client_stats"}

NAV = [
    re.compile(r"^\[C\] '.*' (at .* )?has some indirect sub-type changes:$"),
    re.compile(r"^parameter \d+ of type '.*' has sub-type changes:$"),
    re.compile(r"^return type changed:$"),
    re.compile(r"^in pointed to type '.*'( at .*)?:$"),
    re.compile(r"^in referenced type '.*'( at .*)?:$"),
    re.compile(r"^\d+ functions? with some indirect sub-type change:$"),
]
SUMMARY = re.compile(r"^(Functions|Variables|Function symbols|Variable symbols) changes summary: (\d+) Removed")
STRUCT = re.compile(r"^in (?:unqualified underlying|pointed to|referenced) type 'struct (\w+)'( at .*)?:$")
SIZE = re.compile(r"^type size changed from (\d+) to (\d+) \(in bits\)$")
INSERTIONS = re.compile(r"^\d+ data member insertions?:$")
MEMBER = re.compile(r"^'.*', at offset (\d+) \(in bits\)( at .*)?$")


def fail(n, line, why):
    print(f"abi-check: release 1.0.0: line {n}: {why}: {line.strip()}")
    return 1


def main(path):
    lines = open(path).read().splitlines()
    block = None  # (indent, name, old size or None)
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        indent = len(raw) - len(raw.lstrip())
        if block and indent <= block[0]:
            block = None
        m = SUMMARY.match(line)
        if m:
            if m.group(2) != "0":
                return fail(n, raw, "something was removed")
            continue
        if block:
            size = SIZE.match(line)
            if size:
                block = (block[0], block[1], int(size.group(1)))
                continue
            if INSERTIONS.match(line):
                continue
            member = MEMBER.match(line)
            if member and block[2] is not None and int(member.group(1)) >= block[2]:
                continue
            return fail(n, raw, f"struct {block[1]}: not a member appended past the release's size")
        m = STRUCT.match(line)
        if m:
            if m.group(1) not in VERSIONED:
                return fail(n, raw, f"struct {m.group(1)} has no version or size member")
            block = (indent, m.group(1), None)
            continue
        if any(p.match(line) for p in NAV):
            continue
        return fail(n, raw, "a change that is not an appended member")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
