#!/usr/bin/env bash
# docs_extract.sh FILE HEADING [FILE HEADING ...]: prints, as one bash
# script, the shell blocks of each named section of each Markdown file, in
# order, for integration/packaging/run.sh to run literally in a container.
#
# The convention (DEVELOPERS.md, "Docs that run"):
#   - a section is a heading line exactly as given ("## Using Veil") up to
#     the next heading of the same or a higher level;
#   - fenced blocks whose info string is `sh` are run; any other block
#     (```console, ```text, ``` alone) is shown to the reader only;
#   - `# prints: TEXT` at the end of a line of a run block is a claim the
#     run checks: TEXT must appear in what the blocks printed. Each claim
#     becomes a line "EXPECT <file>:<line> <TEXT>" on standard error.
# Each block is preceded by a line that names it (### FILE:LINE) so a
# failure points at the doc. Exits 1 when a named section has no sh block.
set -euo pipefail
[ $# -ge 2 ] && [ $(($# % 2)) -eq 0 ] || { echo "usage: $0 FILE HEADING [FILE HEADING ...]" >&2; exit 2; }
while [ $# -gt 0 ]; do
	file=$1 heading=$2; shift 2
	awk -v heading="$heading" -v name="$(basename "$file")" '
		function level(s) { match(s, /^#+/); return RLENGTH }
		infence && /^```/ { if (inblk) print ""; infence = inblk = 0; next }
		infence {
			if (!inblk) next
			print
			if (match($0, /# prints: /)) print "EXPECT " name ":" NR " " substr($0, RSTART + RLENGTH) > "/dev/stderr"
			next
		}
		/^```/ {
			infence = 1
			if (insec && $0 ~ /^```sh[[:space:]]*$/) {
				inblk = 1; blocks++
				printf "echo \"### %s:%d\" >&9\n", name, NR + 1
			}
			next
		}
		/^#+ / {
			if (insec && level($0) <= seclevel) insec = 0
			if ($0 == heading) { insec = 1; seclevel = level($0); found = 1 }
		}
		END {
			if (!found) { print name ": no section \"" heading "\"" > "/dev/stderr"; exit 1 }
			if (!blocks) { print name ": section \"" heading "\" has no sh block" > "/dev/stderr"; exit 1 }
		}' "$file"
done
