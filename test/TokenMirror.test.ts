/**
 * Thread sharing in real time (`it.live`): an owner's token source against the testing server, and
 * its mirrors, in this thread (the Effect form) and in 8 piscina worker threads (the plain-Node form,
 * bundled). Lifetimes of 2 seconds; every wait is bounded.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Redacted, Scope, Stream } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Piscina } from "piscina"
import { ClientAuth, Grant, RefreshPolicy, TokenMirror, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { bundleEntries } from "../bench/lib/bundle.js"
import type { Report } from "./fixtures/mirrorWorker.js"
import { CLIENT_SECRET } from "./secrets.js"
import { HttpLive } from "./util.js"

const root = Path.dirname(Path.dirname(fileURLToPath(import.meta.url)))
const value = (token: { readonly value: Redacted.Redacted }) => Redacted.value(token.value)
const HEARTBEAT = "100 millis"

/** A 2-second-token server and an owner's source against it, with a handle for its mirrors. */
const owner = (lifetimeSeconds = 2) =>
  Effect.gen(function*() {
    const server = yield* AuthServer.make({
      clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }],
      lifetimeSeconds
    })
    const source = yield* TokenSource.make({
      url: server.tokenUrl,
      clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
      grant: Grant.clientCredentials({ scopes: ["read"] }),
      policy: RefreshPolicy.make({ jitterFraction: 0 })
    })
    const handle = yield* TokenMirror.serve(source, { heartbeat: HEARTBEAT })
    return { server, source, handle }
  })

describe("TokenMirror", () => {
  describe("in this thread (the Effect form)", () => {
    it.live("a mirror hands out the owner's token, follows its refreshes, and never sends a request", () =>
      Effect.gen(function*() {
        const { handle, server, source } = yield* owner()
        const mirror = yield* TokenMirror.make(handle)
        const first = yield* mirror.get
        assert.strictEqual(value(first), value(yield* source.get))
        assert.isUndefined(first.refreshToken, "the refresh token stays with the owner")
        // the owner refreshes at 1.3-1.5 s of a 2 s token: the mirror gets the new token with no request
        yield* Effect.sleep("1600 millis")
        const second = yield* mirror.get
        assert.notStrictEqual(value(second), value(first))
        assert.strictEqual(value(second), value(yield* source.get))
        assert.strictEqual(yield* server.count(), 2)
        assert.strictEqual(mirror.identity, source.identity)
      }).pipe(Effect.provide(HttpLive), Effect.scoped, Effect.timeout("10 seconds")))

    it.live("a late mirror gets the current token at once", () =>
      Effect.gen(function*() {
        const { handle, server, source } = yield* owner(60)
        const token = yield* source.get
        const mirrors = yield* Effect.all(Array.from({ length: 5 }, () => TokenMirror.make(handle)))
        for (const mirror of mirrors) {
          const state = yield* mirror.state
          assert.strictEqual(state._tag, "Valid")
          assert.strictEqual(value(yield* mirror.get), value(token))
        }
        assert.strictEqual(yield* server.count(), 1)
      }).pipe(Effect.provide(HttpLive), Effect.scoped, Effect.timeout("10 seconds")))

    it.live("errors cross as the same classes: a forwarded InvalidRequest can be caught by its tag", () =>
      Effect.gen(function*() {
        const { handle, server, source } = yield* owner(60)
        const mirror = yield* TokenMirror.make(handle)
        const token = yield* mirror.get
        yield* server.inject(AuthServer.Fault.status(400))
        yield* mirror.invalidate(token)
        const caught = yield* mirror.get.pipe(
          Effect.map(() => "token"),
          Effect.catchTag("InvalidRequest", (error) => Effect.succeed(`caught ${error._tag} ${error.status}`))
        )
        assert.strictEqual(caught, "caught InvalidRequest 400")
        assert.strictEqual((yield* source.state)._tag, "Failed")
      }).pipe(Effect.provide(HttpLive), Effect.scoped, Effect.timeout("10 seconds")))

    it.live("an owner that closes while mirrors wait: they fail with OwnerGone, and do not hang", () =>
      Effect.gen(function*() {
        const ownerScope = yield* Scope.make()
        const { handle, server, source } = yield* owner(60).pipe(Scope.extend(ownerScope))
        const mirror = yield* TokenMirror.make(handle)
        // the owner's next request hangs at the server: the mirrors wait for it
        yield* server.inject(AuthServer.Fault.delay(60_000))
        yield* source.invalidate(yield* source.get)
        // the mirror hears of it (Pending: no usable token) before it asks
        yield* mirror.changes.pipe(Stream.filter((s) => s._tag === "Pending"), Stream.runHead)
        const waiting = yield* Effect.fork(Effect.exit(mirror.get))
        yield* Effect.sleep("200 millis")
        yield* Scope.close(ownerScope, Exit.void)
        const exit = yield* waiting.await.pipe(Effect.flatten)
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? exit.cause : undefined
        assert.include(String(error), "OwnerGone")
        const again = yield* Effect.flip(mirror.get)
        assert.strictEqual(again._tag, "OwnerGone")
      }).pipe(Effect.provide(HttpLive), Effect.scoped, Effect.timeout("10 seconds")))

    it.live("an owner that stops answering (its thread ended) is gone after three silent heartbeats", () =>
      Effect.gen(function*() {
        const silent: TokenMirror.Handle = {
          _tag: "tokenwarden/TokenMirror/Handle",
          channel: "tokenwarden/mirror/nobody-listens",
          provider: "nowhere",
          identity: undefined,
          heartbeatMillis: 100
        }
        const mirror = yield* TokenMirror.make(silent)
        const error = yield* Effect.flip(mirror.get)
        assert.strictEqual(error._tag, "OwnerGone")
      }).pipe(Effect.scoped, Effect.timeout("5 seconds")))
  })

  describe("8 piscina worker threads (the plain-Node form)", () => {
    let dir = ""
    let workerFile = ""
    beforeAll(async () => {
      dir = await bundleEntries(
        { mirrorWorker: Path.join(root, "test", "fixtures", "mirrorWorker.ts") },
        "tokenwarden-mirror-"
      )
      workerFile = Path.join(dir, "mirrorWorker.mjs")
    }, 120_000)
    afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

    const pool = (handle: TokenMirror.Handle) =>
      Effect.acquireRelease(
        // atomics "async": with piscina's default ("sync") an idle worker blocks its event loop in
        // Atomics.wait, so the owner's messages (and the mirror's clock) wait for its next task
        Effect.sync(() =>
          new Piscina({ filename: workerFile, workerData: { handle }, minThreads: 8, maxThreads: 8, atomics: "async" })
        ),
        (made) => Effect.promise(() => made.destroy())
      )
    const run = <A>(workers: Piscina, name: string, task?: unknown) =>
      Effect.promise(() => workers.run(task, { name }) as Promise<A>)

    it.live(
      "8 workers calling for 5 s of 2-second tokens: the requests of one source, never an expired token",
      () =>
        Effect.gen(function*() {
          const start = yield* Clock.currentTimeMillis
          const { handle, server } = yield* owner(2)
          // a lone source beside it, with the same policy and lifetime: what one process alone would send
          const { server: control } = yield* owner(2)
          const workers = yield* pool(handle)
          const reports = yield* Effect.all(
            Array.from({ length: 8 }, () => run<Report>(workers, "calls", { durationMs: 5000, intervalMs: 20 })),
            { concurrency: "unbounded" }
          )
          const [requests, alone] = [yield* server.count(), yield* control.count()]
          const lifetimes = ((yield* Clock.currentTimeMillis) - start) / 2000
          process.stderr.write(
            `thread sharing: 8 workers on one owner sent ${requests} requests over ${lifetimes.toFixed(1)} lifetimes ` +
              `(${(requests / lifetimes).toFixed(2)} per lifetime); a lone source beside them ${alone} ` +
              `(${(alone / lifetimes).toFixed(2)}): 2-second tokens refresh at half their lifetime\n`
          )
          assert.isAtMost(requests, alone + 1, "8 workers cost what one source costs")
          for (const report of reports) {
            assert.deepStrictEqual(report.failures, [])
            assert.strictEqual(report.expiredOnUse, 0)
            assert.isAtLeast(report.tokens.length, 3, "each worker followed the refreshes")
          }
        }).pipe(Effect.provide(HttpLive), Effect.scoped, Effect.timeout("30 seconds")),
      40_000
    )

    it.live("a 401 storm from every worker at once makes one request", () =>
      Effect.gen(function*() {
        const { handle, server, source } = yield* owner(60)
        const workers = yield* pool(handle)
        // every worker holds the token first
        yield* Effect.all(Array.from({ length: 8 }, () => run(workers, "waitForOwner")), { concurrency: "unbounded" })
        const before = yield* server.count()
        const refused = yield* source.get
        const header = `${refused.type} ${value(refused)}`
        const fresh = yield* Effect.all(
          Array.from({ length: 8 }, () => run<string>(workers, "unauthorized", header)),
          { concurrency: "unbounded" }
        )
        const requests = (yield* server.count()) - before
        process.stderr.write(`thread sharing: a 401 from each of 8 workers at once made ${requests} request(s)\n`)
        assert.strictEqual(requests, 1)
        assert.strictEqual(new Set(fresh).size, 1, "every worker got the one new token")
      }).pipe(Effect.provide(HttpLive), Effect.scoped, Effect.timeout("30 seconds")), 40_000)

    it.live("an owner that closes while workers wait: each gets OwnerGone, none hangs", () =>
      Effect.gen(function*() {
        const ownerScope = yield* Scope.make()
        const { handle, server, source } = yield* owner(60).pipe(Scope.extend(ownerScope))
        const workers = yield* pool(handle)
        yield* Effect.all(Array.from({ length: 8 }, () => run(workers, "waitForOwner")), { concurrency: "unbounded" })
        yield* server.inject(AuthServer.Fault.delay(60_000))
        yield* source.invalidate(yield* source.get)
        // the workers hear of it (no usable token) before they ask
        yield* Effect.sleep("300 millis")
        const waiting = yield* Effect.fork(
          Effect.all(Array.from({ length: 8 }, () => run<string>(workers, "waitForOwner")), {
            concurrency: "unbounded"
          })
        )
        yield* Effect.sleep("300 millis")
        yield* Scope.close(ownerScope, Exit.void)
        const outcomes = yield* waiting.await.pipe(Effect.flatten)
        assert.deepStrictEqual(outcomes, Array.from({ length: 8 }, () => "OwnerGone"))
      }).pipe(Effect.provide(HttpLive), Effect.scoped, Effect.timeout("30 seconds")), 40_000)
  })
})
