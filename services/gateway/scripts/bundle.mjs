// Bundles the gateway into one file (dist/rogatory-gateway.cjs) that runs on Debian's
// nodejs with no node_modules: the container copies only this file. Also bundles the unit
// tests (dist/unit-tests.cjs) run by `npm test`.
import { build } from "esbuild";

const common = {
  bundle: true,
  platform: "node",
  target: "node18",
  format: "cjs",
  sourcemap: "inline",
  legalComments: "none",
  logLevel: "warning",
};
await build({
  ...common,
  entryPoints: ["src/main.ts"],
  outfile: "dist/rogatory-gateway.cjs",
  banner: { js: "#!/usr/bin/env node" },
});
await build({
  ...common,
  entryPoints: ["test/unit.test.ts"],
  outfile: "dist/unit-tests.cjs",
});
