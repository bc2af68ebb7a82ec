/**
 * Scenario 7, the token request's own cost: client CPU per token request, tokenwarden beside the same
 * HTTP client used directly (`fetch` and `FetchHttpClient`; undici's `request` and
 * `NodeHttpClient.layerUndici`). Requests go one at a time; the child and the token server are pinned to
 * different cores when `taskset` exists, so the CPU the child spends is its own. Then where the time
 * goes: a CPU profile of tokenwarden's request, and Effect's own costs measured one by one (a span with
 * and without its stack capture, the response's Schema decoding, fibers, GC).
 */
import { FetchHttpClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import Undici from "@effect/platform-node/Undici"
import { Effect, Either, Layer, Logger, LogLevel, ManagedRuntime, Redacted, Schema, Scope, Supervisor } from "effect"
import * as Fs from "node:fs"
import * as Inspector from "node:inspector/promises"
import { PerformanceObserver } from "node:perf_hooks"
import { ClientAuth, Grant, TokenEndpoint, TokenResponse, TokenSource } from "tokenwarden"
import type { Context } from "./common.js"
import { median } from "./stats.js"
import { tenantOf, tokenPath, uniqueLabel } from "./tenant.js"

export type HttpFamily = "fetch" | "undici"

export interface CostRow {
  readonly name: string
  /** What sits between the caller and the HTTP client. */
  readonly layer: "direct" | "Effect HttpClient" | "tokenwarden"
  readonly shape: "await" | "yield*"
  /** Client CPU (user + system, every thread of the process) per request, µs: median of the rounds. */
  readonly cpuUs: number
  /** Wall time per request (one at a time), µs: median of the rounds. */
  readonly wallUs: number
  /** Main-thread GC pauses per request, µs, and GCs per 1,000 requests (all rounds). */
  readonly gcUs: number
  readonly gcPer1000: number
  readonly requests: number
}

export interface ProfileShare {
  readonly name: string
  /** Share of the profile's non-idle samples. */
  readonly share: number
}

export interface CostProfile {
  readonly variant: string
  readonly samples: number
  /** Self time by where the code comes from. */
  readonly self: ReadonlyArray<ProfileShare>
  /** Samples with a frame of this kind anywhere on the stack (they overlap). */
  readonly inclusive: ReadonlyArray<ProfileShare>
  /** The functions with the most self time (`name file:line`). */
  readonly top: ReadonlyArray<ProfileShare>
}

/** A cost per call, µs: wall time and the process's CPU time (they part on a busy machine). */
export interface PerCall {
  readonly wallUs: number
  readonly cpuUs: number
}

export interface CostBreakdown {
  /** `Effect.void.pipe(Effect.withSpan(…))` built and run, with and without the stack capture, and `Effect.void` alone. */
  readonly spanWithStack: PerCall
  readonly spanWithoutStack: PerCall
  readonly noSpan: PerCall
  /** Decoding a token response with tokenwarden's Schema. */
  readonly schemaDecode: PerCall
  /** Fibers started and fiber suspensions per token request (tokenwarden over this client). */
  readonly fibersPerRequest: number
  readonly suspensionsPerRequest: number
}

export interface CostResult {
  readonly family: HttpFamily
  readonly pinned: boolean
  readonly rows: ReadonlyArray<CostRow>
  readonly profile: CostProfile
  readonly breakdown?: CostBreakdown
}

interface Variant {
  readonly name: string
  readonly layer: CostRow["layer"]
  readonly shape: CostRow["shape"]
  /** Sends `n` requests one after another. */
  readonly run: (n: number) => Promise<void>
}

const quiet = Logger.minimumLogLevel(LogLevel.None)
const secret = "bench-secret"
const scope = "api://tenant-0/.default"
// what tokenwarden sends for client_secret_basic and this grant, so the direct rows send the same bytes
const headers = {
  authorization: `Basic ${Buffer.from(`platform-client:${secret}`).toString("base64")}`,
  accept: "application/json",
  "content-type": "application/x-www-form-urlencoded"
}
const form = new URLSearchParams({ grant_type: "client_credentials", scope }).toString()

const effectLoop = <E, R>(effect: Effect.Effect<unknown, E, R>, n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < n; i++) yield* effect
  })

const check = (body: unknown) => {
  if (typeof (body as { access_token?: unknown }).access_token !== "string") throw new Error("no access_token")
}

/** The variants of one HTTP client family, each in a runtime of its own; `close` releases them. */
const variantsOf = async (family: HttpFamily, url: string) => {
  const layer = family === "fetch" ? FetchHttpClient.layer : NodeHttpClient.layerUndici
  const runtime = ManagedRuntime.make(Layer.merge(layer, quiet))
  const run = <A, E>(effect: Effect.Effect<A, E, HttpClient.HttpClient>) => runtime.runPromise(effect)
  const endpoint = await run(
    TokenEndpoint.make({ url, clientAuth: ClientAuth.basic("platform-client", Redacted.make(secret)) })
  )
  const grant = Grant.clientCredentials({ scopes: [scope] })
  // each request built when it is sent, as an application (or the refresh engine) does
  const request = Effect.suspend(() => endpoint.request(grant))
  const effectRequest = Effect.suspend(() =>
    HttpClient.HttpClient.pipe(
      Effect.flatMap((client) =>
        client.execute(
          HttpClientRequest.post(url).pipe(
            HttpClientRequest.setHeaders({ authorization: headers.authorization, accept: headers.accept }),
            HttpClientRequest.bodyText(form, headers["content-type"])
          )
        )
      ),
      Effect.flatMap((response) => response.json),
      Effect.map(check),
      Effect.scoped
    )
  )
  const variants: Array<Variant> = []
  const resources: Array<() => Promise<void>> = [() => runtime.dispose()]
  if (family === "fetch") {
    variants.push({
      name: "fetch",
      layer: "direct",
      shape: "await",
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          const response = await fetch(url, { method: "POST", headers, body: form })
          check(await response.json())
        }
      }
    })
  } else {
    // a dispatcher of its own, as NodeHttpClient.layerUndici makes one
    const agent = new Undici.Agent()
    resources.push(() => agent.destroy())
    variants.push({
      name: "undici request",
      layer: "direct",
      shape: "await",
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          const response = await Undici.request(url, { method: "POST", headers, body: form, dispatcher: agent })
          check(await response.body.json())
        }
      }
    })
  }
  const clientName = family === "fetch" ? "FetchHttpClient" : "NodeHttpClient.layerUndici"
  variants.push(
    {
      name: `${clientName} execute + json`,
      layer: "Effect HttpClient",
      shape: "yield*",
      run: (n) => run(effectLoop(effectRequest, n))
    },
    {
      name: `tokenwarden TokenEndpoint.request over ${clientName}`,
      layer: "tokenwarden",
      shape: "yield*",
      run: (n) => run(effectLoop(request, n))
    }
  )
  if (family === "undici") {
    // the engine's own path: a TokenSource asked for a new token now
    const sourceScope = await Effect.runPromise(Scope.make())
    resources.push(() => Effect.runPromise(Scope.close(sourceScope, Effect.void as never)))
    const source = await run(
      Scope.extend(TokenSource.make({ url, clientAuth: endpoint.clientAuth, grant }), sourceScope)
    )
    variants.push(
      {
        name: `tokenwarden TokenEndpoint.request over ${clientName}, tracer disabled`,
        layer: "tokenwarden",
        shape: "yield*",
        run: (n) => run(effectLoop(request.pipe(Effect.withTracerEnabled(false)), n))
      },
      {
        name: `tokenwarden TokenSource.refresh over ${clientName}`,
        layer: "tokenwarden",
        shape: "yield*",
        run: (n) => run(effectLoop(source.refresh, n))
      }
    )
  }
  return {
    variants,
    request,
    run,
    close: async () => {
      for (const release of resources.reverse()) await release()
    }
  }
}

// ---------------------------------------------------------------------------------------------
// measuring
// ---------------------------------------------------------------------------------------------

interface GcEntry {
  readonly start: number
  readonly duration: number
}

const gcWatch = () => {
  const entries: Array<GcEntry> = []
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) entries.push({ start: e.startTime, duration: e.duration })
  })
  observer.observe({ entryTypes: ["gc"] })
  return {
    /** GC pauses that started within [from, to] (performance.now() ms): total ms and count. */
    within: (from: number, to: number) => {
      const inside = entries.filter((e) => e.start >= from && e.start <= to)
      return { ms: inside.reduce((a, e) => a + e.duration, 0), count: inside.length }
    },
    stop: () => observer.disconnect()
  }
}

const measure = async (variants: ReadonlyArray<Variant>, params: CostParams): Promise<Array<CostRow>> => {
  const gcs = gcWatch()
  try {
    for (const v of variants) await v.run(params.warmup)
    const cpu = variants.map(() => [] as Array<number>)
    const wall = variants.map(() => [] as Array<number>)
    const gc = variants.map(() => ({ ms: 0, count: 0 }))
    for (let round = 0; round < params.rounds; round++) {
      for (let i = 0; i < variants.length; i++) {
        const before = process.cpuUsage()
        const start = performance.now()
        await variants[i]!.run(params.requests)
        const end = performance.now()
        const used = process.cpuUsage(before)
        cpu[i]!.push((used.user + used.system) / params.requests)
        wall[i]!.push((end - start) * 1000 / params.requests)
        // the observer is told of a GC a little later: let it run before reading
        await new Promise((resolve) => setTimeout(resolve, 5))
        const g = gcs.within(start, end)
        gc[i]!.ms += g.ms
        gc[i]!.count += g.count
      }
    }
    const total = params.requests * params.rounds
    return variants.map((v, i): CostRow => ({
      name: v.name,
      layer: v.layer,
      shape: v.shape,
      cpuUs: median(cpu[i]!),
      wallUs: median(wall[i]!),
      gcUs: gc[i]!.ms * 1000 / total,
      gcPer1000: gc[i]!.count * 1000 / total,
      requests: total
    }))
  } finally {
    gcs.stop()
  }
}

// ---------------------------------------------------------------------------------------------
// profile
// ---------------------------------------------------------------------------------------------

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: ReadonlyArray<number>
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
}

/**
 * The modules of this bundle by line: esbuild heads each module's code with a `// path` comment, so a
 * profile's line in the bundle tells tokenwarden's sources, Effect's modules and the benchmark's apart.
 */
const bundleModules = (): (line: number) => string => {
  const file = process.argv[1]
  const starts: Array<{ line: number; path: string }> = []
  if (file !== undefined && Fs.existsSync(file)) {
    const lines = Fs.readFileSync(file, "utf8").split("\n")
    lines.forEach((text, line) => {
      const match = /^\/\/ ((?:src|bench|node_modules)\/\S+\.[cm]?[jt]s)$/.exec(text)
      if (match !== null) starts.push({ line, path: match[1]! })
    })
  }
  return (line) => {
    let path = "bundle"
    for (const s of starts) {
      if (s.line > line) break
      path = s.path
    }
    return path
  }
}

/** Where a frame's code comes from (a module of the bundle, a package, node, native code). */
const origin = (frame: ProfileNode["callFrame"], moduleAt: (line: number) => string): string => {
  const { functionName } = frame
  const url = frame.url.endsWith(".mjs") && frame.url.includes("tokenwarden-bench")
    ? moduleAt(frame.lineNumber)
    : frame.url
  if (url.startsWith("src/")) return "tokenwarden sources"
  if (url.startsWith("bench/") || url === "bundle") return "benchmark harness"
  if (functionName === "(garbage collector)") return "GC"
  if (functionName === "(program)") return "V8 and native code (unattributed)"
  if (url === "") return "native builtins"
  const packageMatch = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(url)
  if (packageMatch !== null) {
    const [, name, rest] = packageMatch
    if (name === "effect") {
      if (/(^|\/)(Schema|ParseResult|SchemaAST)\.js$/.test(rest!)) return "effect: Schema"
      if (/internal\/tracer\.js$/.test(rest!)) return "effect: tracer"
      if (/internal\/fiberRuntime\.js$/.test(rest!)) return "effect: fiber runtime"
      if (/(^|\/)(Stream|Channel|Sink)\.js$|internal\/(stream|channel|sink)/.test(rest!)) {
        return "effect: Stream, Channel"
      }
      if (/internal\/metric/.test(rest!)) return "effect: Metric"
      return "effect: other modules"
    }
    return name!
  }
  if (url.startsWith("node:")) {
    return /tls|net|stream|http|socket/.test(url) ? "node: TLS, sockets, streams" : "node: other internals"
  }
  return "other"
}

/** Kinds of work a stack can be inside of (inclusive; not the fiber runtime, which every Effect stack is in). */
const markers: ReadonlyArray<
  { readonly name: string; readonly test: (f: ProfileNode["callFrame"], o: string) => boolean }
> = [
  { name: "span stack capture (addSpanStackTrace)", test: (f) => f.functionName === "addSpanStackTrace" },
  {
    name: "spans: making, annotating and ending them",
    test: (f) =>
      ["NativeSpan", "randomHexString", "unsafeMakeSpan", "endSpan", "makeSpan", "addSpanStackTrace"].includes(
        f.functionName
      )
  },
  { name: "Effect Stream and Channel (the body read)", test: (_, o) => o === "effect: Stream, Channel" },
  { name: "Effect Metric updates", test: (_, o) => o === "effect: Metric" },
  { name: "Schema decoding", test: (_, o) => o === "effect: Schema" },
  {
    name: "abort signals (AbortController, DOMException)",
    test: (f) => /^(AbortController|AbortSignal|abortSignal|DOMException|makeTransferable|abort)$/.test(f.functionName)
  },
  { name: "tokenwarden sources", test: (_, o) => o === "tokenwarden sources" },
  { name: "@effect/platform (HttpClient)", test: (_, o) => o === "@effect/platform" || o === "@effect/platform-node" },
  { name: "undici", test: (_, o) => o === "undici" },
  { name: "node: TLS, sockets, streams", test: (_, o) => o === "node: TLS, sockets, streams" },
  { name: "GC", test: (_, o) => o === "GC" }
]

const analyze = (variant: string, profile: Profile): CostProfile => {
  const moduleAt = bundleModules()
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map<string, number>()
  const functions = new Map<string, number>()
  const inclusive = new Map<string, number>()
  let total = 0
  profile.samples.forEach((id) => {
    const leaf = byId.get(id)
    if (leaf === undefined || leaf.callFrame.functionName === "(idle)") return
    // every sample counts once: a sample's time delta also holds the gaps when the sampler itself did not
    // run (a busy machine, the start of the profile), which are not this code's
    const weight = 1
    total += weight
    const leafOrigin = origin(leaf.callFrame, moduleAt)
    self.set(leafOrigin, (self.get(leafOrigin) ?? 0) + weight)
    const f = leaf.callFrame
    // bundled code by its module (lines in the bundle say nothing of the module's own lines)
    const bundled = f.url.includes("tokenwarden-bench")
    const where = (bundled ? moduleAt(f.lineNumber) : `${f.url}:${f.lineNumber + 1}`).split("/").slice(-2).join("/")
    const fn = `${f.functionName === "" ? "(anonymous)" : f.functionName} ${where}`
    functions.set(fn, (functions.get(fn) ?? 0) + weight)
    const hit = new Set<string>()
    for (let n: ProfileNode | undefined = leaf; n !== undefined; n = byId.get(parent.get(n.id) ?? -1)) {
      const o = origin(n.callFrame, moduleAt)
      for (const m of markers) if (!hit.has(m.name) && m.test(n.callFrame, o)) hit.add(m.name)
    }
    for (const name of hit) inclusive.set(name, (inclusive.get(name) ?? 0) + weight)
  })
  const shares = (m: Map<string, number>) =>
    [...m].map(([name, w]) => ({ name, share: total === 0 ? 0 : w / total })).sort((a, b) => b.share - a.share)
  return {
    variant,
    samples: profile.samples.length,
    self: shares(self),
    inclusive: markers.map((m) => ({ name: m.name, share: total === 0 ? 0 : (inclusive.get(m.name) ?? 0) / total })),
    top: shares(functions).slice(0, 12)
  }
}

const profileOf = async (variant: Variant, requests: number): Promise<CostProfile> => {
  const session = new Inspector.Session()
  session.connect()
  try {
    await session.post("Profiler.enable")
    await session.post("Profiler.setSamplingInterval", { interval: 100 })
    await session.post("Profiler.start")
    await variant.run(requests)
    const { profile } = await session.post("Profiler.stop")
    return analyze(variant.name, profile as unknown as Profile)
  } finally {
    session.disconnect()
  }
}

// ---------------------------------------------------------------------------------------------
// Effect's own costs, one by one
// ---------------------------------------------------------------------------------------------

const perCall = async (n: number, f: (n: number) => Promise<void>): Promise<PerCall> => {
  await f(n)
  const wall: Array<number> = []
  const cpu: Array<number> = []
  for (let round = 0; round < 3; round++) {
    const before = process.cpuUsage()
    const start = performance.now()
    await f(n)
    wall.push((performance.now() - start) * 1000 / n)
    const used = process.cpuUsage(before)
    cpu.push((used.user + used.system) / n)
  }
  return { wallUs: median(wall), cpuUs: median(cpu) }
}

class FiberCounter extends Supervisor.AbstractSupervisor<void> {
  fibers = 0
  suspensions = 0
  value = Effect.void
  override onStart() {
    this.fibers++
  }
  override onSuspend() {
    this.suspensions++
  }
}

const breakdownOf = async (
  run: <A, E>(effect: Effect.Effect<A, E, HttpClient.HttpClient>) => Promise<A>,
  request: Effect.Effect<unknown, unknown>,
  requests: number,
  n: number
): Promise<CostBreakdown> => {
  const attributes = { provider: "127.0.0.1", url: "https://127.0.0.1/token", grant_type: "client_credentials" }
  const spans = (options: { readonly captureStackTrace?: boolean }) => (n: number) =>
    Effect.runPromise(Effect.gen(function*() {
      // built per call, as a `pipe(Effect.withSpan(…))` inside a function is
      for (let i = 0; i < n; i++) {
        yield* Effect.void.pipe(Effect.withSpan("bench.span", { attributes, kind: "client", ...options }))
      }
    }))
  const spanWithStack = await perCall(n, spans({}))
  const spanWithoutStack = await perCall(n, spans({ captureStackTrace: false }))
  const noSpan = await perCall(n, (k) => Effect.runPromise(effectLoop(Effect.void, k)))
  const decode = Schema.decodeUnknownEither(TokenResponse.TokenResponse)
  const json = { access_token: `at.${Date.now()}.1.abcdefghijklmnop`, token_type: "Bearer", expires_in: 3600 }
  const schemaDecode = await perCall(n, async (k) => {
    for (let i = 0; i < k; i++) if (Either.isLeft(decode(json))) throw new Error("decode failed")
  })
  const counter = new FiberCounter()
  await run(effectLoop(request, requests).pipe(Effect.supervised(counter)))
  return {
    spanWithStack,
    spanWithoutStack,
    noSpan,
    schemaDecode,
    fibersPerRequest: counter.fibers / requests,
    suspensionsPerRequest: counter.suspensions / requests
  }
}

export interface CostParams {
  readonly warmup: number
  readonly requests: number
  readonly rounds: number
  /** 1 when the parent pinned this child and the token server to different cores. */
  readonly pinned: number
  /** Calls per round of each of Effect's costs measured one by one. */
  readonly breakdownCalls: number
}

export const requestCost = async (ctx: Context, family: HttpFamily, params: CostParams): Promise<CostResult> => {
  const tenant = tenantOf({ label: uniqueLabel(family), lifetime: 3600, delay: 0, faults: 0 })
  const { close, request, run, variants } = await variantsOf(family, ctx.origin + tokenPath(tenant))
  try {
    const rows = await measure(variants, params)
    const profiled = variants.find((v) => v.layer === "tokenwarden")!
    const profile = await profileOf(profiled, params.requests)
    const breakdown = family === "undici"
      ? await breakdownOf(run, request, params.requests, params.breakdownCalls)
      : undefined
    return { family, pinned: params.pinned === 1, rows, profile, ...(breakdown === undefined ? {} : { breakdown }) }
  } finally {
    await close()
  }
}
