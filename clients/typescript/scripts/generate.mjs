#!/usr/bin/env node
// Generates TypeScript (protoc-gen-es v2: messages, enums and service descriptors) from the
// repository's protos/ into OUT_DIR, with Debian's protoc and the pinned plugin. Generated
// code is never committed: the gateway and the TypeScript client generate it at build.
//
//   node scripts/generate.mjs OUT_DIR PLUGIN
//
// The google/protobuf well-known types come from @bufbuild/protobuf/wkt; the copies of
// google/rpc (status, error_details) are generated so that callers can decode error details.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const protoRoot = resolve(here, "../../../protos");
const [outArg, pluginArg] = process.argv.slice(2);
if (!outArg || !pluginArg) {
  console.error("usage: generate.mjs OUT_DIR PLUGIN");
  process.exit(2);
}
const outDir = resolve(outArg);
const plugin = resolve(pluginArg);

// Every public proto except the benchmark's echo service, which no browser calls.
function protos(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return protos(path);
    return name.endsWith(".proto") ? [relative(protoRoot, path)] : [];
  });
}
const files = protos(protoRoot).filter((f) => !f.startsWith("rogatory/bench/")).sort();

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
execFileSync(
  process.env.PROTOC ?? "protoc",
  [
    `--plugin=protoc-gen-es=${plugin}`,
    `--es_out=${outDir}`,
    "--es_opt=target=ts,import_extension=js",
    `-I${protoRoot}`,
    ...files,
  ],
  { stdio: "inherit" },
);
console.error(`generated ${files.length} protos into ${relative(process.cwd(), outDir) || "."}`);
