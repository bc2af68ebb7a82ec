/**
 * The child processes (token server, workers) run from one esbuild bundle made at the start of a run:
 * starting a child through tsx costs about 2 s of CPU to compile the sources, and a run starts dozens.
 * `tokenwarden` resolves to the sources, and effect and @effect/* are bundled with them (one copy,
 * tree-shaken: loading them whole from node_modules costs a child about 1.5 s more CPU at its start).
 * The other packages, the libraries compared among them, stay external: node loads them as installed.
 */
import { build } from "esbuild"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const benchDir = Path.dirname(Path.dirname(fileURLToPath(import.meta.url)))
const root = Path.dirname(benchDir)

export interface Bundle {
  readonly dir: string
  readonly worker: string
  readonly server: string
}

/**
 * Bundles entry points (output name → source file) into a directory of its own under
 * node_modules/.cache (inside the project, so that node finds the external packages), returned:
 * `<name>.mjs` each. The package's own names resolve to its sources; every package stays external.
 */
export const bundleEntries = async (entryPoints: Record<string, string>, prefix: string): Promise<string> => {
  const cache = Path.join(root, "node_modules", ".cache")
  Fs.mkdirSync(cache, { recursive: true })
  const dir = Fs.mkdtempSync(Path.join(cache, prefix))
  const manifest = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")) as {
    readonly dependencies?: Record<string, string>
    readonly devDependencies?: Record<string, string>
    readonly peerDependencies?: Record<string, string>
  }
  const external = Object.keys({
    ...manifest.dependencies,
    ...manifest.devDependencies,
    ...manifest.peerDependencies
  }).filter((name) => name !== "effect" && !name.startsWith("@effect/"))
    // undici: the HTTP client @effect/platform-node uses, and the request-cost scenario calls directly
    .concat(["undici"])
    .flatMap((name) => [name, `${name}/*`])
  await build({
    entryPoints,
    outdir: dir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    external,
    logLevel: "error",
    plugins: [{
      name: "tokenwarden-sources",
      setup(b) {
        // tokenwarden → src/index.ts, tokenwarden/<entry> → src/<entry>/index.ts
        b.onResolve({ filter: /^tokenwarden(\/testing|\/node)?$/ }, (args) => ({
          path: Path.join(root, "src", ...args.path.split("/").slice(1), "index.ts")
        }))
      }
    }]
  })
  return dir
}

/** Bundles bench/worker.ts and bench/server.ts, removed by `removeBundle`. */
export const bundle = async (): Promise<Bundle> => {
  const dir = await bundleEntries(
    { worker: Path.join(benchDir, "worker.ts"), server: Path.join(benchDir, "server.ts") },
    "tokenwarden-bench-"
  )
  return { dir, worker: Path.join(dir, "worker.mjs"), server: Path.join(dir, "server.mjs") }
}

/** Removes a bundle made by `bundle`. */
export const removeBundle = (made: Bundle): void => Fs.rmSync(made.dir, { recursive: true, force: true })
