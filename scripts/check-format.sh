#!/usr/bin/env bash
# Fails when a tracked C++ file is not formatted as .clang-format says
# (clang-format 14, Debian 12's). Fix with:
#   git ls-files '*.cpp' '*.h' | xargs clang-format --style=file -i
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cpp' '*.h')
clang-format --style=file --dry-run -Werror $files
echo "check-format: $(echo "$files" | wc -w) files formatted"
