/**
 * Every example runs, offline, and prints only lines of the one format for people
 * (`time level message key=value`); each imports tokenwarden by its package name, never from `src/`.
 *
 * The examples are bundled once with esbuild, as the benchmark's children are (the package's names
 * mapped to `src/`, every other package left to node), since starting each through tsx costs seconds.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { bundleEntries } from "../bench/lib/bundle.js"

const root = Path.dirname(Path.dirname(fileURLToPath(import.meta.url)))
const examplesDir = Path.join(root, "examples")
const examples = Fs.readdirSync(examplesDir).filter((f) => /\.(ts|mjs)$/.test(f)).sort()

const lineFormat = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARN |ERROR) \S/

/** How each example is run: its arguments, and when a long-running one has shown enough to be stopped. */
const runs: Record<string, { readonly args?: ReadonlyArray<string>; readonly stopWhen?: RegExp }> = {
  "daemon.ts": { args: ["--duration", "7s"] },
  // a daemon until SIGTERM: stopped once it has refreshed its token
  "node.mjs": { stopWhen: / INFO {2}token received [^\n]*\n[^]* INFO {2}token received / }
}

interface Result {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs one bundled example to its end (at most a minute; SIGTERM once `stopWhen` matches). */
const runExample = (file: string, args: ReadonlyArray<string>, stopWhen: RegExp | undefined): Promise<Result> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    let stopped = false
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      // once: a second signal during shutdown ends a daemon at once, as a second Ctrl-C does
      if (!stopped && stopWhen?.test(stdout) === true) {
        stopped = true
        child.kill("SIGTERM")
      }
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => stderr += chunk)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

describe("the examples", () => {
  let dir = ""

  beforeAll(async () => {
    dir = await bundleEntries(
      Object.fromEntries(examples.map((f) => [f.replace(/\.(ts|mjs)$/, ""), Path.join(examplesDir, f)])),
      "tokenwarden-examples-"
    )
  }, 120_000)

  afterAll(() => {
    if (dir !== "") Fs.rmSync(dir, { recursive: true, force: true })
  })

  it("import tokenwarden by its package name only", () => {
    assert.isAtLeast(examples.length, 10)
    for (const example of examples) {
      const source = Fs.readFileSync(Path.join(examplesDir, example), "utf8")
      const specifiers = Array.from(source.matchAll(/^import [^"]*"([^"]+)"/gm), (m) => m[1]!)
      assert.isAbove(specifiers.length, 0, example)
      for (const specifier of specifiers) assert.notMatch(specifier, /^\.|\/src\//, `${example} imports ${specifier}`)
    }
  })

  it.concurrent.each(examples)("%s runs offline and prints only lines of the one format", async (example) => {
    const run = runs[example] ?? {}
    const result = await runExample(
      Path.join(dir, example.replace(/\.(ts|mjs)$/, ".mjs")),
      run.args ?? [],
      run.stopWhen
    )
    const show = `exit ${result.code}\n${result.stdout}\n${result.stderr}`
    assert.strictEqual(result.code, 0, show)
    assert.strictEqual(result.stderr, "", show)
    const lines = result.stdout.trimEnd().split("\n")
    assert.isAtLeast(lines.length, 2, show)
    for (const line of lines) assert.match(line, lineFormat, show)
  }, 90_000)
})
