/**
 * A fleet of real processes sharing one credential through a real Redis: one refresh per token
 * lifetime for the whole fleet, a takeover when the refreshing process dies, and every process on its
 * own while Redis is down. Every wait is bounded.
 */
import { assert, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import type { Scope } from "effect"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Readline from "node:readline"
import { AuthServer } from "tokenwarden/testing"
import type { Runner } from "../fixtures/spawn.js"
import { runner } from "../fixtures/spawn.js"
import * as RedisServer from "./redis.js"

const N = 8
const LIFETIME = 3000
const LEASE_TTL = 1500
// the workers refresh 15-20% of a lifetime before expiry: two requests are at least this far apart
const MIN_INTERVAL = 0.8 * LIFETIME

interface Get {
  readonly worker: string
  readonly type: "get"
  readonly ok: boolean
  readonly at: number
  readonly waited: number
  readonly expiresAt?: number
  readonly valid?: boolean
  readonly status?: number
  readonly statusAt?: number
  readonly fp?: string
  readonly error?: string
}

interface Log {
  readonly worker: string
  readonly type: "log"
  readonly at: number
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, string>
}

interface Worker {
  readonly id: string
  readonly child: ChildProcess.ChildProcess
  readonly gets: Array<Get>
  readonly logs: Array<Log>
  ready: boolean
  stdout: string
  stderr: string
  exited: boolean
}

const fingerprint = (value: string) => Crypto.createHash("sha256").update(value).digest("hex").slice(0, 12)

const now = Clock.currentTimeMillis

const spawnWorker = (
  run: Runner,
  id: string,
  env: Record<string, string>
): Effect.Effect<Worker, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = ChildProcess.spawn(run.command, run.args, {
        env: { ...process.env, ...env, WORKER_ID: id },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const worker: Worker = { id, child, gets: [], logs: [], ready: false, stdout: "", stderr: "", exited: false }
      Readline.createInterface({ input: child.stdout! }).on("line", (line) => {
        worker.stdout += line + "\n"
        let record: { type?: string } = {}
        try {
          record = JSON.parse(line)
        } catch {
          return
        }
        if (record.type === "ready") worker.ready = true
        else if (record.type === "get") worker.gets.push(record as Get)
        else if (record.type === "log") worker.logs.push({ ...(record as Log), at: Date.now() })
      })
      child.stderr!.on(
        "data",
        (chunk: Buffer) => void (worker.stderr = (worker.stderr + chunk.toString()).slice(-8000))
      )
      child.once("exit", () => void (worker.exited = true))
      return worker
    }),
    (worker) =>
      Effect.async<void>((resume) => {
        if (worker.exited) return resume(Effect.void)
        const force = setTimeout(() => worker.child.kill("SIGKILL"), 3000)
        worker.child.once("exit", () => {
          clearTimeout(force)
          resume(Effect.void)
        })
        worker.child.kill("SIGTERM")
      })
  )

/** Polls `condition` every 25 ms; fails naming `what` after `millis`. */
const waitUntil = (what: string, millis: number, condition: () => Effect.Effect<boolean> | boolean) =>
  Effect.gen(function*() {
    const deadline = (yield* now) + millis
    while (true) {
      const result = condition()
      if (typeof result === "boolean" ? result : yield* result) return yield* now
      if ((yield* now) > deadline) return yield* Effect.die(new Error(`timed out after ${millis} ms: ${what}`))
      yield* Effect.sleep("25 millis")
    }
  })

const getsBetween = (workers: ReadonlyArray<Worker>, from: number, to: number) =>
  workers.flatMap((w) => w.gets.filter((g) => g.at >= from && g.at <= to))

const logsAfter = (worker: Worker, from: number, prefix: string) =>
  worker.logs.filter((l) => l.at >= from && l.message.startsWith(prefix))

RedisServer.describeRedis("a fleet of processes on one credential", () => {
  it.live(
    "one refresh per lifetime for 8 processes; a takeover when the refresher dies; alone while Redis is down",
    () =>
      Effect.gen(function*() {
        const redis = yield* RedisServer.make()
        const server = yield* AuthServer.make({ lifetimeSeconds: LIFETIME / 1000 })
        const env = {
          TOKEN_URL: server.tokenUrl,
          RESOURCE_URL: server.resourceUrl,
          REDIS_URL: redis.url,
          LEASE_TTL_MS: String(LEASE_TTL)
        }
        const run = yield* runner("test/fleet/worker.ts")
        const startedAt = yield* now
        const workers = yield* Effect.forEach(
          Array.from({ length: N }, (_, i) => `w${i}`),
          (id) => spawnWorker(run, id, env)
        )
        const report = (what: string) => `${what}\n${workers.map((w) => `${w.id}: ${w.stderr.slice(-600)}`).join("\n")}`
        yield* waitUntil(report("every worker ready"), 60_000, () => workers.every((w) => w.ready)).pipe(
          Effect.catchAllDefect((defect) => Effect.die(new Error(report(String(defect)))))
        )
        yield* waitUntil("every worker holding a token", 10_000, () => workers.every((w) => w.gets.some((g) => g.ok)))
        const startup = (yield* now) - startedAt

        // A token is expired when the server says so: its expiry as issued, on the server's clock (the
        // same machine's). A worker's own `expiresAt` runs late by the time the response took to reach
        // it, so `/resource` may refuse a token in its last moments when the machine is loaded; only a
        // refusal received before the server-side expiry is a wrong token.
        const serverExpiry = new Map<string, number>()
        const expiryOf = (fp: string | undefined) =>
          Effect.map(server.issued, (issued) => {
            for (const t of issued) {
              if (t.expiresAt !== undefined) serverExpiry.set(fingerprint(t.accessToken), t.expiresAt)
            }
            return fp === undefined ? undefined : serverExpiry.get(fp)
          })
        const badGets = (gets: ReadonlyArray<Get>) =>
          Effect.filter(gets, (g) =>
            g.ok
              ? Effect.map(expiryOf(g.fp), (expiry) =>
                g.valid !== true || expiry === undefined || g.at >= expiry ||
                (g.status !== 200 && g.statusAt! < expiry))
              : Effect.succeed(true))
        let lateRefusals = 0
        // how much later than the server a worker reckons a token's expiry: its response's way to the worker
        let maxSkew = 0
        const countLate = (gets: ReadonlyArray<Get>) => {
          for (const g of gets) {
            if (!g.ok) continue
            if (g.status !== 200) lateRefusals++
            const expiry = g.fp === undefined ? undefined : serverExpiry.get(g.fp)
            if (expiry !== undefined && g.expiresAt !== undefined) maxSkew = Math.max(maxSkew, g.expiresAt - expiry)
          }
        }

        // --- healthy: one request per refresh interval for the whole fleet ---
        const a0 = yield* now
        const c0 = yield* server.count()
        const r0 = (yield* server.requests).length
        yield* Effect.sleep(4 * LIFETIME)
        const a1 = yield* now
        const requestsA = (yield* server.count()) - c0
        const recordsA = (yield* server.requests).slice(r0)
        const lifetimesA = (a1 - a0) / LIFETIME
        const boundA = Math.floor((a1 - a0) / MIN_INTERVAL) + 1
        assert.isAtMost(requestsA, boundA, `${requestsA} token requests in ${lifetimesA.toFixed(1)} lifetimes`)
        assert.isAtLeast(requestsA, Math.floor(lifetimesA) - 1, "the fleet kept refreshing")
        assert.deepStrictEqual(recordsA.filter((r) => r.outcome !== "token").length, 0, "no invalid_grant, no error")
        assert.isTrue(recordsA.every((r) => r.grantType === "refresh_token"), "refresh tokens, not passwords")
        const getsA = getsBetween(workers, a0, a1)
        assert.isAtLeast(getsA.length, N * lifetimesA * 3, "every worker kept asking")
        assert.deepStrictEqual(yield* badGets(getsA), [], "every get a token valid on the server's clock")
        countLate(getsA)

        // --- the refresher dies mid-request: another process takes over after the lease TTL ---
        yield* server.inject(AuthServer.Fault.delay(5000))
        let holder = ""
        yield* waitUntil("a refresh held by the server", 3 * LIFETIME, () =>
          Effect.map(server.requests, (records) => {
            const held = records.slice(r0).find((r) => r.outcome === "fault")
            holder = held?.headers["x-worker-id"] ?? ""
            return held !== undefined
          }))
        const dead = workers.find((w) => w.id === holder)!
        const survivors = workers.filter((w) => w !== dead)
        const heldAt = (yield* server.requests).length
        dead.child.kill("SIGKILL")
        const killedAt = yield* now
        const takeoverAt = yield* waitUntil("another process's refresh", LEASE_TTL + 5000, () =>
          Effect.map(server.requests, (records) =>
            records.slice(heldAt).some((r) =>
              r.outcome === "token" && r.headers["x-worker-id"] !== holder
            )))
        const takeover = takeoverAt - killedAt
        assert.isAtLeast(takeover, 300, "nobody took a live lease")
        assert.isAtMost(takeover, LEASE_TTL + 1500, "taken over once the lease expired")
        const recovered = yield* waitUntil("every survivor with the new token", 10_000, () =>
          survivors.every((w) =>
            w.gets.some((g) =>
              g.at > takeoverAt && g.ok
            )
          ))
        const getsB = getsBetween(survivors, killedAt, recovered)
        assert.deepStrictEqual(
          yield* badGets(getsB.filter((g) =>
            g.ok
          )),
          []
        )
        countLate(getsB)
        const recordsB = (yield* server.requests).slice(heldAt)
        assert.isAtMost(recordsB.length, 2, "one takeover request (and perhaps the next refresh)")
        assert.isTrue(recordsB.every((r) => r.grantType === "refresh_token"))

        // --- Redis down: each process refreshes alone, logged once; back when Redis returns ---
        const downAt = yield* now
        yield* redis.stop
        yield* Effect.sleep(1.5 * LIFETIME)
        for (const w of survivors) {
          assert.strictEqual(logsAfter(w, downAt, "redis unreachable").length, 1, `${w.id}: logged once`)
          assert.isAtLeast(logsAfter(w, downAt, "token received").length, 1, `${w.id} refreshed alone`)
        }
        const upAt = yield* now
        const getsC = getsBetween(survivors, downAt, upAt)
        assert.deepStrictEqual(yield* badGets(getsC.filter((g) => g.ok)), [])
        countLate(getsC)
        assert.isAtLeast(getsC.filter((g) => g.ok).length, survivors.length * 10)
        yield* redis.start
        yield* waitUntil("every survivor reconnected", 10_000, () =>
          survivors.every((w) =>
            logsAfter(w, upAt, "redis connection restored").length > 0
          ))
        for (const w of survivors) {
          assert.strictEqual(logsAfter(w, upAt, "redis connection restored").length, 1, `${w.id}: logged once`)
        }

        // --- shared again: one request per refresh interval, one token for all ---
        yield* Effect.sleep(1.5 * LIFETIME)
        const d0 = yield* now
        const c2 = yield* server.count()
        yield* Effect.sleep(2 * LIFETIME)
        const d1 = yield* now
        const requestsD = (yield* server.count()) - c2
        assert.isAtMost(requestsD, Math.floor((d1 - d0) / MIN_INTERVAL) + 1, `${requestsD} requests after recovery`)
        const latest = survivors.map((w) =>
          w.gets.filter((g) => g.ok).at(-1)!
        )
        assert.isTrue(latest.every((g) => g.at > d0))
        assert.deepStrictEqual(yield* badGets(getsBetween(survivors, d0, d1)), [])
        yield* waitUntil("one token for all", LIFETIME, () =>
          new Set(survivors.map((w) =>
            w.gets.filter((g) => g.ok).at(-1)!.fp
          )).size === 1)

        // no token ever reached a log line or a report
        const issued = yield* server.issued
        const output = workers.map((w) => w.stdout + w.stderr).join("")
        for (const t of issued) {
          assert.notInclude(output, t.accessToken)
          if (t.refreshToken !== undefined) assert.notInclude(output, t.refreshToken)
        }

        yield* Effect.logInfo("fleet figures").pipe(Effect.annotateLogs({
          requests_per_lifetime: (requestsA / lifetimesA).toFixed(2),
          requests_healthy: requestsA,
          lifetimes_healthy: lifetimesA.toFixed(1),
          takeover_ms: takeover,
          startup_ms: startup,
          requests_after_recovery: requestsD
        }))
        process.stderr.write(
          `fleet: ${requestsA} token requests in ${lifetimesA.toFixed(1)} lifetimes (${
            (requestsA / lifetimesA).toFixed(2)
          } per lifetime, N=${N}); takeover ${takeover} ms after SIGKILL (lease TTL ${LEASE_TTL} ms); ${requestsD} requests in ${
            ((d1 - d0) / LIFETIME).toFixed(1)
          } lifetimes after Redis returned; ${lateRefusals} refusals by /resource in a token's last moments (expiry reckoned up to ${maxSkew} ms late); startup ${startup} ms (${
            run.bundled ? "bundled" : "tsx"
          })\n`
        )
      }).pipe(Effect.scoped),
    { timeout: 150_000 }
  )
})
