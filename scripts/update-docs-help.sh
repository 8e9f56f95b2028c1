#!/usr/bin/env bash
# Pastes each subcommand's current --help into the docs, between the lines
# "<!-- help:CMD -->" and "<!-- /help -->" (CMD may be two words, as in
# "classify train"), so the pages never drift from the program. Run after
# changing options: bash scripts/update-docs-help.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/unroll}
for page in docs/*.md; do
  grep -q '<!-- help:' "$page" || continue
  awk -v bin="$BIN" '
    /<!-- help:/ {
      print
      match($0, /help:[a-z ]*[a-z]/)
      cmd = bin " " substr($0, RSTART + 5, RLENGTH - 5) " --help"
      print "```text"
      n = 0
      while ((cmd | getline line) > 0) lines[++n] = line
      if (close(cmd) != 0) { print "failed: " cmd > "/dev/stderr"; exit 1 }
      while (n > 0 && lines[n] == "") n--   # no trailing blank lines
      for (i = 1; i <= n; i++) print lines[i]
      print "```"
      skip = 1
      next
    }
    /<!-- \/help -->/ { skip = 0 }
    !skip { print }' "$page" > "$page.new"
  mv "$page.new" "$page"
done
