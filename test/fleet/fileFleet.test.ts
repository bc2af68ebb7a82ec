/**
 * Processes on one host sharing one credential through a file store's directory, with no Redis: one
 * refresh per token lifetime for all of them (a lease file with a fencing counter), and a takeover
 * when the refreshing process is killed (SIGKILL) mid-request, with a server that rotates refresh
 * tokens and answers a reused one with invalid_grant. Every wait is bounded.
 */
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { AuthServer } from "tokenwarden/testing"
import { runner } from "../fixtures/spawn.js"
import { fingerprint, getsBetween, now, spawnWorker, waitUntil } from "./workers.js"

const N = 8
const LIFETIME = 3000
const LEASE_TTL = 1500
// the workers refresh 12-15% of a lifetime before expiry: two refreshes are at least 0.85 lifetimes
// apart, so one refresher for all makes at most 1.18 requests per lifetime, plus one at the window's edge
const LEAD_FRACTION = 0.12
const JITTER_FRACTION = 0.03

it.live(
  "8 processes on one file store: at most 1.25 requests per lifetime; after a SIGKILL of the lease holder another takes over within the lease, no invalid_grant",
  () =>
    Effect.gen(function*() {
      const directory = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "tokenwarden-fleet-"))),
        (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
      )
      const server = yield* AuthServer.make({ lifetimeSeconds: LIFETIME / 1000, rotateRefreshTokens: true })
      const env = {
        TOKEN_URL: server.tokenUrl,
        RESOURCE_URL: server.resourceUrl,
        STORE_DIRECTORY: directory,
        LEASE_TTL_MS: String(LEASE_TTL),
        LEAD_FRACTION: String(LEAD_FRACTION),
        JITTER_FRACTION: String(JITTER_FRACTION)
      }
      const run = yield* runner("test/fleet/worker.ts")
      const workers = yield* Effect.forEach(
        Array.from({ length: N }, (_, i) => `f${i}`),
        (id) => spawnWorker(run, id, env)
      )
      const report = (what: string) => `${what}\n${workers.map((w) => `${w.id}: ${w.stderr.slice(-600)}`).join("\n")}`
      yield* waitUntil(report("every worker ready"), 60_000, () => workers.every((w) => w.ready)).pipe(
        Effect.catchAllDefect((defect) => Effect.die(new Error(report(String(defect)))))
      )
      yield* waitUntil("every worker holding a token", 10_000, () => workers.every((w) => w.gets.some((g) => g.ok)))
      assert.strictEqual(yield* server.count("password"), 1, "one password grant for all 8 at start")

      const issuedFingerprints = Effect.map(server.issued, (issued) =>
        new Set(issued.map((t) => fingerprint(t.accessToken))))

      // --- healthy: one refresher for the whole host ---
      const a0 = yield* now
      const c0 = yield* server.count()
      const r0 = (yield* server.requests).length
      yield* Effect.sleep(5 * LIFETIME)
      const a1 = yield* now
      const requestsA = (yield* server.count()) - c0
      const lifetimesA = (a1 - a0) / LIFETIME
      const perLifetime = requestsA / lifetimesA
      const recordsA = (yield* server.requests).slice(r0)
      assert.isAtMost(perLifetime, 1.25, `${requestsA} token requests in ${lifetimesA.toFixed(1)} lifetimes`)
      assert.isAtLeast(requestsA, Math.floor(lifetimesA) - 1, "the processes kept refreshing")
      assert.deepStrictEqual(
        recordsA.filter((r) =>
          r.outcome !== "token"
        ).length,
        0,
        "no invalid_grant, no error"
      )
      assert.isTrue(recordsA.every((r) => r.grantType === "refresh_token"), "refresh tokens, not passwords")
      const getsA = getsBetween(workers, a0, a1)
      assert.isAtLeast(getsA.length, N * lifetimesA * 3, "every worker kept asking")
      const known = yield* issuedFingerprints
      assert.deepStrictEqual(getsA.filter((g) => !g.ok || !known.has(g.fp!)), [], "every get a token the server issued")

      // --- the lease holder hangs in its request: nobody takes a live lease; SIGKILL: another takes over ---
      yield* server.inject(AuthServer.Fault.delay(60_000, AuthServer.Fault.drop()))
      let holder = ""
      let heldIndex = -1
      yield* waitUntil("a refresh held by the server", 3 * LIFETIME, () =>
        Effect.map(server.requests, (records) => {
          heldIndex = records.findIndex((r, i) => i >= r0 && r.outcome === "fault")
          holder = records[heldIndex]?.headers["x-worker-id"] ?? ""
          return heldIndex >= 0
        }))
      // twice the lease TTL: the holder's renewals keep the lease, and every other process waits
      yield* Effect.sleep(2 * LEASE_TTL)
      const whileHeld = (yield* server.requests).slice(heldIndex + 1)
      assert.deepStrictEqual(whileHeld.length, 0, "nobody took a live holder's lease")
      const dead = workers.find((w) => w.id === holder)!
      const survivors = workers.filter((w) => w !== dead)
      dead.child.kill("SIGKILL")
      const killedAt = yield* now
      const takeoverAt = yield* waitUntil("another process's refresh", LEASE_TTL + 5000, () =>
        Effect.map(
          server.requests,
          (records) =>
            records.slice(heldIndex + 1).some((r) => r.outcome === "token" && r.headers["x-worker-id"] !== holder)
        ))
      const takeover = takeoverAt - killedAt
      assert.isAtMost(takeover, LEASE_TTL + 500, "taken over within the lease")
      yield* waitUntil(
        "every survivor with the new token",
        10_000,
        () => survivors.every((w) => w.gets.some((g) => g.at > takeoverAt && g.ok))
      )

      // two more lifetimes: still one refresher, and no refresh token ever refused
      yield* Effect.sleep(2 * LIFETIME)
      const records = yield* server.requests
      assert.deepStrictEqual(
        records.filter((r) => r.outcome === "error").map((r) => r.headers["x-worker-id"]),
        [],
        "no invalid_grant"
      )
      // a refresh token the server redeemed is never presented again (the held request never reached it)
      const redeemed = records.filter((r) => r.grantType === "refresh_token" && r.outcome === "token")
        .map((r) => r.form.refresh_token)
      assert.strictEqual(new Set(redeemed).size, redeemed.length, "each rotated refresh token sent once")
      const afterKill = records.slice(heldIndex + 1)
      assert.isAtMost(afterKill.length, Math.floor((takeoverAt - killedAt + 2 * LIFETIME) / (0.85 * LIFETIME)) + 2)
      const getsB = getsBetween(survivors, takeoverAt, yield* now)
      const knownB = yield* issuedFingerprints
      assert.deepStrictEqual(getsB.filter((g) => !g.ok || !knownB.has(g.fp!)), [])

      // no token ever reached a log line or a report
      const output = workers.map((w) => w.stdout + w.stderr).join("")
      for (const t of yield* server.issued) {
        assert.notInclude(output, t.accessToken)
        if (t.refreshToken !== undefined) assert.notInclude(output, t.refreshToken)
      }
      process.stderr.write(
        `file fleet: ${requestsA} token requests in ${lifetimesA.toFixed(1)} lifetimes (${
          perLifetime.toFixed(2)
        } per lifetime, N=${N}, one file store); takeover ${takeover} ms after SIGKILL of the lease holder (lease TTL ${LEASE_TTL} ms); ${afterKill.length} requests after the kill, none refused (${
          run.bundled ? "bundled" : "tsx"
        })\n`
      )
    }).pipe(Effect.scoped),
  { timeout: 120_000 }
)
