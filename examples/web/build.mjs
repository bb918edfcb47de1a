// Bundles the page (src/main.ts with the typed client from clients/typescript and the
// sample request) into dist/app.js, next to dist/index.html. The client's dependencies
// resolve from clients/typescript/node_modules (run `npm ci && npm run build` there first;
// tools/web/build.sh does both).
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["src/main.ts"],
  outfile: "dist/app.js",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["chrome110", "firefox110", "safari16"],
  sourcemap: "linked",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
});
copyFileSync("src/index.html", "dist/index.html");
