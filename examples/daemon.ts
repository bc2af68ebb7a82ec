/**
 * The main job (`npm start`): a daemon whose worker calls a protected API every few hundred
 * milliseconds with a token that tokenwarden keeps fresh. An embedded authorization server on
 * 127.0.0.1 issues 6-second tokens and now and then fails (a 503, a 429 with Retry-After, a dropped
 * connection), so the log shows proactive refreshes, retries with their delays, and recovery.
 *
 *   npm start                       runs until Ctrl-C
 *   npm start -- --duration 20s     stops by itself
 *   npm start -- --store file       keeps the token in a file store, and restarts the worker after 8
 *                                   seconds to show the stored token reused (no token request)
 */
import { NodeFileSystem, NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Clock, Duration, Effect, Fiber, Layer, Logger, LogLevel, Option, Redacted, Schedule, Stream } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { AccessToken, ClientAuth, FileTokenStore, Grant, LineLogger, TokenSource, TokenStore } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"

const parseDuration = (text: string): Option.Option<Duration.Duration> => {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text)
  if (match === null) return Option.none()
  const n = Number(match[1])
  const unit = { ms: "millis", s: "seconds", m: "minutes", h: "hours" }[match[2] as "ms" | "s" | "m" | "h"]
  return Option.some(Duration.decode(`${n} ${unit}` as Duration.DurationInput))
}

const args = process.argv.slice(2)
const durationArg = args.indexOf("--duration")
const duration = durationArg === -1 ? Option.none() : parseDuration(args[durationArg + 1] ?? "")
if (durationArg !== -1 && Option.isNone(duration)) {
  console.error(`--duration takes a value like 20s, 90s, 5m (got ${JSON.stringify(args[durationArg + 1] ?? "")})`)
  process.exit(2)
}
const storeArg = args.indexOf("--store")
const storeKind = storeArg === -1 ? "memory" : args[storeArg + 1]
if (storeKind !== "memory" && storeKind !== "file") {
  console.error(`--store takes memory or file (got ${JSON.stringify(storeKind ?? "")})`)
  process.exit(2)
}

const faults = [
  { name: "503 Service Unavailable", fault: AuthServer.Fault.unavailable() },
  { name: "429 Too Many Requests, Retry-After: 1", fault: AuthServer.Fault.rateLimited(1) },
  { name: "dropped connection", fault: AuthServer.Fault.drop() }
]

const main = Effect.gen(function*() {
  const server = yield* AuthServer.make({ lifetimeSeconds: 6 })
  yield* Effect.logInfo("authorization server listening").pipe(Effect.annotateLogs({ token_url: server.tokenUrl }))

  // the worker's whole life: a token source, a protected call every 300 ms, a fault now and then
  const session = Effect.gen(function*() {
    const source = yield* TokenSource.make({
      url: server.tokenUrl,
      clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
      grant: Grant.clientCredentials({ scopes: ["api"] }),
      provider: "demo",
      // the token lives in the store provided below: this process's memory, or files
      store: true
    })

    // every other token, arm the next failure for the following refresh
    let received = 0
    yield* source.changes.pipe(
      Stream.filter((s) => s._tag === "Valid"),
      Stream.runForEach(() =>
        Effect.gen(function*() {
          received++
          if (received % 2 !== 0) return
          const next = faults[(received / 2 - 1) % faults.length]!
          yield* server.inject(next.fault)
          yield* Effect.logInfo("fault armed for the next refresh").pipe(Effect.annotateLogs({ fault: next.name }))
        })
      ),
      Effect.forkScoped
    )

    const stats = { calls: 0, ok: 0, rejected: 0, expired: 0, failed: 0 }
    const call = Effect.gen(function*() {
      stats.calls++
      const token = yield* source.get
      const now = yield* Clock.currentTimeMillis
      if (!AccessToken.isValidAt(token, now)) stats.expired++
      const response = yield* Effect.promise(() =>
        fetch(server.resourceUrl, { headers: { authorization: AccessToken.authorizationHeader(token) } })
      )
      if (response.ok) stats.ok++
      else stats.rejected++
    }).pipe(
      Effect.catchAll((error) => {
        stats.failed++
        return Effect.logWarning("worker could not get a token").pipe(Effect.annotateLogs({ error: error._tag }))
      })
    )
    const report = Effect.suspend(() =>
      Effect.logInfo(
        stats.expired === 0 && stats.rejected === 0
          ? "worker never used an expired token"
          : "worker used an expired or rejected token"
      ).pipe(Effect.annotateLogs({ ...stats }))
    )
    yield* Effect.addFinalizer(() => report)
    yield* report.pipe(Effect.delay("5 seconds"), Effect.forever, Effect.forkScoped)
    return yield* call.pipe(Effect.repeat(Schedule.spaced("300 millis")), Effect.asVoid)
  })

  if (storeKind === "memory") return yield* Effect.scoped(session).pipe(Effect.provide(TokenStore.layerMemory))

  // a file store: the worker is stopped after 8 seconds and started again, as a restarted daemon
  // would be, and picks up the stored token instead of asking for a new one
  const directory = mkdtempSync(join(tmpdir(), "tokenwarden-demo-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(directory, { recursive: true, force: true })))
  const store = FileTokenStore.layer({ directory }).pipe(Layer.provide(NodeFileSystem.layer), Layer.orDie)
  yield* Effect.logInfo("token store: files").pipe(Effect.annotateLogs({ directory }))
  yield* Effect.scoped(session).pipe(Effect.timeout("8 seconds"), Effect.ignore, Effect.provide(store))
  const before = yield* server.count()
  yield* Effect.logInfo("worker stopped; starting it again")
  yield* Effect.scoped(
    Effect.gen(function*() {
      const restarted = yield* Effect.fork(Effect.scoped(session))
      yield* Effect.sleep("100 millis")
      const sent = (yield* server.count()) - before
      yield* Effect.logInfo(sent === 0 ? "restart reused the stored token" : "restart fetched a new token").pipe(
        Effect.annotateLogs({ token_requests_during_restart: sent })
      )
      return yield* Fiber.join(restarted)
    })
  ).pipe(Effect.provide(store))
})

const program = Option.match(duration, {
  onNone: () => main,
  onSome: (d) =>
    main.pipe(
      Effect.timeoutTo({ duration: d, onTimeout: () => undefined, onSuccess: () => undefined }),
      Effect.zipRight(Effect.logInfo("duration reached; stopping"))
    )
})

program.pipe(
  Effect.scoped,
  // the HTTP client must outlive the token source: provide it to the whole program, not to `make`
  // one line per event for people: time, level, message, key=value (durations as 1s, 250ms)
  Effect.provide(Layer.merge(NodeHttpClient.layerUndici, LineLogger.layer)),
  Logger.withMinimumLogLevel(LogLevel.Info),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
