#!/bin/sh
# Rebuilds the vendored JsSIP bundle the volunteer page's softphone loads
# (app/web/static/vendor/jssip.min.js) and its licence file, from npm.
#
# JsSIP ships CommonJS sources only (lib/), no browser bundle: esbuild turns them,
# with their dependencies (debug, ms, events, sdp-transform), into one minified ES
# module whose default export is the JsSIP namespace. Built in a scratch folder:
# node_modules never enters the repository. Needs node and npm with the npm registry.
#
#   make vendor-jssip            (or: sh tools/build-jssip.sh [JSSIP_VERSION])
set -eu

JSSIP_VERSION="${1:-3.13.8}"
ESBUILD_VERSION="0.28.2"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
VENDOR="$HERE/app/web/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
npm init -y >/dev/null
npm install --no-audit --no-fund --save-exact "jssip@$JSSIP_VERSION" "esbuild@$ESBUILD_VERSION" >/dev/null
printf 'import JsSIP from "jssip";\nexport default JsSIP;\n' > entry.mjs
./node_modules/.bin/esbuild entry.mjs --bundle --format=esm --platform=browser \
  --target=es2020 --minify --legal-comments=none \
  --banner:js="/* JsSIP $JSSIP_VERSION (MIT), bundled with debug, ms, events and sdp-transform (MIT): see jssip-LICENSE.md */" \
  --outfile="$VENDOR/jssip.min.js"

# One licence file for everything in the bundle.
{
  echo "# Licences of app/web/static/vendor/jssip.min.js"
  echo
  for pkg in jssip debug ms events sdp-transform; do
    version="$(node -p "require('./node_modules/$pkg/package.json').version")"
    echo "## $pkg $version"
    echo
    for f in LICENSE LICENSE.md license.md license; do
      if [ -f "node_modules/$pkg/$f" ]; then cat "node_modules/$pkg/$f"; break; fi
    done
    echo
  done
} > "$VENDOR/jssip-LICENSE.md"
echo "built $VENDOR/jssip.min.js (JsSIP $JSSIP_VERSION)"
