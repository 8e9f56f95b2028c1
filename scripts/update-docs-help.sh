#!/usr/bin/env bash
# Pastes each subcommand's current --help into its docs page, between the
# lines "<!-- help:CMD -->" and "<!-- /help -->", so the pages never drift
# from the program. Run after changing options: bash scripts/update-docs-help.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/unroll}
for page in docs/*.md; do
  grep -q '<!-- help:' "$page" || continue
  cmd=$(sed -n 's/.*<!-- help:\([a-z]*\) -->.*/\1/p' "$page" | head -1)
  help=$("$BIN" "$cmd" --help)
  awk -v help="$help" '
    /<!-- help:/ { print; print "```text"; print help; print "```"; skip = 1; next }
    /<!-- \/help -->/ { skip = 0 }
    !skip { print }' "$page" > "$page.new"
  mv "$page.new" "$page"
done
