#!/usr/bin/env bash
# Re-vendor Chart.js 4 and chartjs-plugin-annotation 3 from the npm registry into static/vendor/chartjs/
# (no CDN: the CSP allows scripts from 'self' only). Usage: scripts/vendor-chartjs.sh [chart.js-spec] [plugin-spec]
set -euo pipefail
CHART=${1:-chart.js@4}
PLUGIN=${2:-chartjs-plugin-annotation@3}
DEST="$(cd "$(dirname "$0")/.." && pwd)/static/vendor/chartjs"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "$CHART" "$PLUGIN" >/dev/null
mkdir chart plugin
tar xzf chart.js-*.tgz -C chart --strip-components=1
tar xzf chartjs-plugin-annotation-*.tgz -C plugin --strip-components=1
mkdir -p "$DEST"
cp chart/dist/chart.umd.min.js "$DEST/chart.umd.min.js"
cp plugin/dist/chartjs-plugin-annotation.min.js "$DEST/chartjs-plugin-annotation.min.js"
cp chart/LICENSE.md "$DEST/LICENSE-chart.js.md"
cp plugin/LICENSE.md "$DEST/LICENSE-chartjs-plugin-annotation.md"
version() { node -p "require('./$1/package.json').version"; }
cat > "$DEST/README.md" <<README
# Chart.js, vendored

Packed from the npm registry by \`scripts/vendor-chartjs.sh\` (\`make vendor-chartjs\`); served from 'self' (no CDN).

| File | Package | Version | Licence |
|---|---|---|---|
| chart.umd.min.js | chart.js (dist/chart.umd.min.js) | $(version chart) | MIT (LICENSE-chart.js.md) |
| chartjs-plugin-annotation.min.js | chartjs-plugin-annotation (dist/chartjs-plugin-annotation.min.js) | $(version plugin) | MIT (LICENSE-chartjs-plugin-annotation.md) |
README
echo "vendored chart.js $(version chart), chartjs-plugin-annotation $(version plugin) into $DEST"
