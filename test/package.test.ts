/**
 * The package as a user gets it: built and packed once (`npm pack` runs the `prepack` build), installed
 * from the tarball into an empty project, then used from plain node (ESM and CommonJS, and the plain-Node
 * example against the testing server) and from a strict TypeScript project, and checked by publint and
 * arethetypeswrong.
 *
 * Offline, like every test: `npm install --offline` installs the tarball with a fresh npm cache,
 * beside a tarball of its one dependency (`jose`) packed from this repository's node_modules; the peer
 * dependencies are linked from there rather than fetched.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { execFile, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { AuthServer } from "tokenwarden/testing"

const root = Path.dirname(Path.dirname(fileURLToPath(import.meta.url)))
const manifest = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")) as {
  readonly name: string
  readonly dependencies: Record<string, string>
  readonly devDependencies: Record<string, string>
}

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

// the npm_config_* settings an enclosing `npm test` passes down stay out: each npm call here says what it needs
const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)))

/** Runs a command to its end, bounded in time; a non-zero exit is returned, not thrown. */
const run = (command: string, args: ReadonlyArray<string>, cwd: string, timeoutMs: number): Promise<Run> =>
  new Promise((resolve, reject) => {
    execFile(command, args, { cwd, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error !== null && typeof error.code !== "number") reject(new Error(`${command} ${args.join(" ")}: ${error}`))
      else resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr })
    })
  })

const show = (r: Run) => `exit ${r.code}\n${r.stdout}\n${r.stderr}`

/**
 * Starts a long-running program, waits (at most a minute) until its output satisfies `ready`, then
 * stops it with SIGTERM as a service manager would, and waits (at most 30 seconds) for it to end.
 */
const runDaemon = (
  [command, ...args]: ReadonlyArray<string>,
  cwd: string,
  extraEnv: Record<string, string>,
  ready: (stdout: string) => boolean
): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(command!, args, { cwd, env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    let stopping = false
    const stop = () => {
      if (stopping) return
      stopping = true
      child.kill("SIGTERM")
      setTimeout(() => child.kill("SIGKILL"), 30_000).unref()
    }
    const waited = setTimeout(stop, 60_000)
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      if (ready(stdout)) stop()
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => stderr += chunk)
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(waited)
      resolve({ code: code ?? (signal === null ? -1 : 128), stdout, stderr })
    })
  })

/** The JavaScript file of a dev dependency's command, run with this node. */
const bin = (pkg: string, name: string): string => {
  const dir = Path.join(root, "node_modules", pkg)
  const json = JSON.parse(Fs.readFileSync(Path.join(dir, "package.json"), "utf8")) as {
    readonly bin: Record<string, string>
  }
  return Path.join(dir, json.bin[name]!)
}

// what a new user writes first, in an empty project with the tarball: a token from the testing server
const esm = `import { FetchHttpClient } from "@effect/platform"
import { Effect, Redacted } from "effect"
import { ClientAuth, Grant, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"

const program = Effect.gen(function*() {
  const server = yield* AuthServer.make()
  const clientAuth = ClientAuth.basic("client", Redacted.make("secret"))
  const source = yield* TokenSource.make({ url: server.tokenUrl, clientAuth, grant: Grant.clientCredentials() })
  const token = yield* source.get
  const issued = (yield* server.issued).map((t) => t.accessToken)
  console.log(JSON.stringify({ token: Redacted.value(token.value), issued }))
})
Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(FetchHttpClient.layer)))
`

// the same through require(): Node 20.19+ loads the ES module; effect itself comes as its CommonJS build
const cjs = esm.replace(/^import \{ (.+) \} from ("[^"]+")$/gm, "const { $1 } = require($2)")

// a strict consumer: nodenext, every declaration checked (skipLibCheck off), DOM for @effect/platform,
// and @types/node (linked below) included as TypeScript does by default
const tsconfig = {
  compilerOptions: {
    target: "ES2022",
    lib: ["ES2022", "DOM"],
    module: "nodenext",
    moduleResolution: "nodenext",
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: false,
    noEmit: true
  },
  files: ["main.ts", "node.ts"]
}
const typed = `import { FetchHttpClient } from "@effect/platform"
import { Effect, Redacted } from "effect"
import { type AccessToken, ClientAuth, Grant, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"

const program: Effect.Effect<string> = Effect.gen(function*() {
  const server = yield* AuthServer.make({ lifetimeSeconds: 60 })
  const source: TokenSource.TokenSource = yield* TokenSource.make({
    url: server.tokenUrl,
    clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
    grant: Grant.clientCredentials({ scopes: ["api"] })
  })
  const token: AccessToken.AccessToken = yield* source.get
  return token.type
}).pipe(
  Effect.catchTags({ InvalidClient: (e) => Effect.succeed(\`wrong secret: \${e.message}\`) }),
  Effect.catchAll((e) => Effect.succeed(\`failed: \${e._tag}\`)),
  Effect.scoped,
  Effect.provide(FetchHttpClient.layer)
)
void Effect.runPromise(program)
`
// the plain-Node entry as a TypeScript daemon uses it
const typedNode = `import { type Policy, start, type TokenClient, TokenError } from "tokenwarden/node"

const policy: Policy = { expirySkew: "30 seconds", minLead: 60_000 }
const tokens: TokenClient = await start({
  url: "https://auth.example.com/oauth/token",
  clientId: "my-client",
  clientSecret: process.env.SECRET ?? "",
  scopes: ["api"],
  policy
}).catch((error: unknown) => {
  if (error instanceof TokenError.InvalidClient) process.exit(2)
  throw error
})
const headers: Record<string, string> = { authorization: await tokens.authorization() }
tokens.onChange((state) => void (state._tag === "Failed" && console.error(state.error.message)))
void headers
await tokens.close()
`

describe("the published package", () => {
  let work = ""
  let consumer = ""
  let tarball = ""
  let files: Array<string> = []

  beforeAll(async () => {
    work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tokenwarden-package-"))
    consumer = Path.join(work, "consumer")
    const packed = Path.join(work, "packed")
    Fs.mkdirSync(packed)
    Fs.mkdirSync(consumer)
    const npm = ["--offline", "--cache", Path.join(work, "npm-cache"), "--no-audit", "--no-fund"]
    const pack = await run("npm", ["pack", ...npm, "--pack-destination", packed], root, 240_000)
    assert.strictEqual(pack.code, 0, show(pack))
    const tgz = Fs.readdirSync(packed).filter((f) => f.endsWith(".tgz") && !f.startsWith("jose-"))
    assert.strictEqual(tgz.length, 1, show(pack))
    tarball = Path.join(packed, tgz[0]!)
    const list = await run("tar", ["-tzf", tarball], work, 30_000)
    files = list.stdout.split("\n").filter((f) => f !== "").map((f) => f.replace(/^package\//, "")).sort()

    Fs.writeFileSync(
      Path.join(consumer, "package.json"),
      JSON.stringify({ name: "consumer", private: true, type: "module" })
    )
    // the one dependency from a tarball of the installed copy, as the registry would give it
    const josePack = await run(
      "npm",
      ["pack", ...npm, "--pack-destination", packed, Path.join(root, "node_modules", "jose")],
      root,
      60_000
    )
    assert.strictEqual(josePack.code, 0, show(josePack))
    const jose = Path.join(packed, Fs.readdirSync(packed).find((f) => f.startsWith("jose-"))!)
    // the peers are not fetched (--legacy-peer-deps): they are linked below
    const install = await run(
      "npm",
      ["install", ...npm, "--legacy-peer-deps", "--no-package-lock", tarball, jose],
      consumer,
      120_000
    )
    assert.strictEqual(install.code, 0, show(install))
    for (const peer of ["effect", "@effect/platform", "@types/node"]) {
      const link = Path.join(consumer, "node_modules", peer)
      Fs.mkdirSync(Path.dirname(link), { recursive: true })
      Fs.symlinkSync(Path.join(root, "node_modules", peer), link, "dir")
    }
    Fs.writeFileSync(Path.join(consumer, "main.mjs"), esm)
    Fs.writeFileSync(Path.join(consumer, "main.cjs"), cjs)
    Fs.writeFileSync(Path.join(consumer, "main.ts"), typed)
    Fs.writeFileSync(Path.join(consumer, "node.ts"), typedNode)
    Fs.copyFileSync(Path.join(root, "examples", "node.mjs"), Path.join(consumer, "node-example.mjs"))
    Fs.writeFileSync(Path.join(consumer, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
  }, 420_000)

  afterAll(() => {
    if (work !== "") Fs.rmSync(work, { recursive: true, force: true })
  })

  it("ships the compiled package, its sources for the source maps, LICENSE and README, and nothing else", () => {
    for (const file of ["LICENSE", "README.md", "package.json", "dist/index.js", "dist/index.d.ts"]) {
      assert.include(files, file)
    }
    for (
      const file of [
        "dist/testing/index.js",
        "dist/testing/index.d.ts",
        "dist/node/index.js",
        "dist/node/index.d.ts",
        "dist/index.js.map",
        "src/index.ts"
      ]
    ) {
      assert.include(files, file)
    }
    const others = files.filter((f) =>
      !/^(dist|src)\//.test(f) && !["LICENSE", "README.md", "package.json"].includes(f)
    )
    assert.deepStrictEqual(others, [])
    // every module of src/ is compiled, and nothing but src/ is shipped as source
    const sources = files.filter((f) => f.startsWith("src/"))
    assert.isTrue(sources.every((f) => f.endsWith(".ts") && !f.endsWith(".test.ts")), sources.join(", "))
    for (const source of sources) {
      const out = source.replace(/^src\//, "dist/").replace(/\.ts$/, "")
      assert.include(files, `${out}.js`)
      assert.include(files, `${out}.d.ts`)
    }
  })

  it("declares effect and @effect/platform as peers at the tested ranges, and jose as its one dependency", () => {
    const installed = JSON.parse(
      Fs.readFileSync(Path.join(consumer, "node_modules", manifest.name, "package.json"), "utf8")
    ) as Record<string, any>
    assert.deepStrictEqual(installed.dependencies, { jose: manifest.dependencies.jose })
    assert.strictEqual(installed.peerDependencies.effect, manifest.devDependencies.effect)
    assert.strictEqual(installed.peerDependencies["@effect/platform"], manifest.devDependencies["@effect/platform"])
    assert.isFalse(installed.peerDependenciesMeta?.effect?.optional ?? false)
    assert.strictEqual(installed.engines.node, "^20.19.0 || >=22.12.0")
    assert.isFalse(installed.sideEffects)
  })

  const token = (r: Run) => {
    assert.strictEqual(r.code, 0, show(r))
    const last = r.stdout.trim().split("\n").at(-1) ?? ""
    const printed = JSON.parse(last) as { readonly token: string; readonly issued: ReadonlyArray<string> }
    assert.match(printed.token, /^[A-Za-z0-9_-]{43}$/)
    // the token the server issued, the only one
    assert.deepStrictEqual(printed.issued, [printed.token])
  }

  it.concurrent("plain node imports it as ESM and gets a token from the testing server", async () => {
    token(await run(process.execPath, ["main.mjs"], consumer, 120_000))
  }, 150_000)

  it.concurrent("CommonJS require() gets a token the same way", async () => {
    assert.notInclude(cjs, "import ")
    token(await run(process.execPath, ["main.cjs"], consumer, 120_000))
  }, 150_000)

  it.concurrent(
    "the plain-Node example runs in plain node against the testing server, without @effect/platform-node",
    async () => {
      assert.isFalse(Fs.existsSync(Path.join(consumer, "node_modules", "@effect", "platform-node")))
      const scope = Effect.runSync(Scope.make())
      try {
        // 2-second tokens: refreshed after about a second
        const server = await Effect.runPromise(Scope.extend(AuthServer.make({ lifetimeSeconds: 2 }), scope))
        const daemon = await runDaemon(
          [process.execPath, "node-example.mjs"],
          consumer,
          { TOKEN_URL: server.tokenUrl, API_URL: server.resourceUrl, CLIENT_ID: "client", CLIENT_SECRET: "secret" },
          (out) => (out.match(/ INFO {2}token received /g) ?? []).length >= 3
        )
        assert.strictEqual(daemon.code, 0, show(daemon))
        const lines = daemon.stdout.trim().split("\n")
        // one format for every line, the library's and the program's own
        for (const line of lines) {
          assert.match(
            line,
            /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO |WARN |ERROR) \S/,
            show(daemon)
          )
        }
        assert.match(lines.at(-1)!, / INFO {2}stopped calls=\d+ ok=\d+ rejected=0 failed=0 tokens=\d+$/, show(daemon))
        assert.include(daemon.stdout, "refresh_in=1s", show(daemon))
        const issued = await Effect.runPromise(server.issued)
        assert.isAtLeast(issued.length, 3)
        for (const token of issued) assert.notInclude(daemon.stdout, token.accessToken)
        const calls = await Effect.runPromise(server.resourceCalls)
        assert.isAbove(calls.ok, 0)
        assert.strictEqual(calls.rejected, 0)
      } finally {
        await Effect.runPromise(Scope.close(scope, Exit.void))
      }
    },
    150_000
  )

  it.concurrent("a strict TypeScript project type-checks against the published declarations", async () => {
    const tsc = await run(process.execPath, [bin("typescript", "tsc"), "-p", "tsconfig.json"], consumer, 240_000)
    assert.strictEqual(tsc.code, 0, show(tsc))
  }, 300_000)

  it.concurrent("publint finds nothing to report (--strict)", async () => {
    const lint = await run(process.execPath, [bin("publint", "publint"), "--strict", tarball], work, 60_000)
    assert.strictEqual(lint.code, 0, show(lint))
    assert.notMatch(lint.stdout, /^(Errors|Warnings|Suggestions):/m, show(lint))
  }, 90_000)

  // ESM only: CommonJS programs load it through Node's require() of ES modules, which TypeScript's
  // node16 CommonJS resolution (what the other profiles check) does not model
  it.concurrent("arethetypeswrong passes with the esm-only profile", async () => {
    const attw = await run(
      process.execPath,
      [bin("@arethetypeswrong/cli", "attw"), "--profile", "esm-only", "--no-color", tarball],
      work,
      120_000
    )
    assert.strictEqual(attw.code, 0, show(attw))
    // both entry points were examined
    assert.include(attw.stdout, "\"tokenwarden\"", show(attw))
    assert.include(attw.stdout, "\"tokenwarden/testing\"", show(attw))
    assert.include(attw.stdout, "\"tokenwarden/node\"", show(attw))
  }, 150_000)
})
