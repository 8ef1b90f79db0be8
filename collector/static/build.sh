#!/usr/bin/env bash
# Rebuild the served, minified tracker from its source (needs Node.js/npm; the output is
# committed, so running touchpath never needs this). The header records the source's hash;
# tests/unit/test_tracker_asset.py fails when the two drift apart.
set -euo pipefail
cd "$(dirname "$0")"
hash=$(sha256sum touchpath.src.js | cut -c1-16)
body=$(npx -y terser@5 touchpath.src.js --compress --mangle --comments false)
printf '/*! touchpath.js 1.0.0 | source sha256:%s | built from touchpath.src.js */\n%s\n' \
  "$hash" "$body" > touchpath.js
wc -c touchpath.js
