/**
 * A fleet of real processes sharing one credential through a real Redis: one refresh per token
 * lifetime for the whole fleet, a takeover when the refreshing process dies, and every process on its
 * own while Redis is down. Every wait is bounded.
 */
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { AuthServer } from "tokenwarden/testing"
import { runner } from "../fixtures/spawn.js"
import * as RedisServer from "./redis.js"
import type { Get } from "./workers.js"
import { fingerprint, getsBetween, logsAfter, now, spawnWorker, waitUntil } from "./workers.js"

const N = 8
const LIFETIME = 3000
const LEASE_TTL = 1500
// the workers refresh 15-20% of a lifetime before expiry: two requests are at least this far apart
const MIN_INTERVAL = 0.8 * LIFETIME
// and hand a token out until its last tenth of life (the policy's `expirySkew` is capped at a tenth)
const HOLD_BACK = LIFETIME / 10

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

        // What the server knows of a token: when it issued it and when it stops accepting it. What the
        // fleet knows: the process that asked for it reckons its lifetime from when it sent the request
        // (`AccessToken.issuedAt`), so never later than the server's issue, and the others adopt that
        // reckoning through Redis. `late` is that reckoning minus the server's issue: never above 0. A
        // token handed out after its reckoned life, or refused by `/resource` before its server-side
        // expiry, is a wrong token; so is one the server never issued, or one whose reckoning the
        // server's record or the fleet's contradicts. A `get` decides between `started` and `at`, which
        // under load lie a few hundred ms apart: judged at `started`.
        const serverSide = new Map<string, { readonly issuedAt: number; readonly expiresAt: number }>()
        // how the fleet reckons each token: the first report of it, and when it was first handed out
        const reckoned = new Map<
          string,
          { readonly issuedAt: number | undefined; readonly expiresAt: number | undefined; first: number }
        >()
        const learn = Effect.map(server.issued, (issued) => {
          for (const t of issued) {
            if (t.expiresAt !== undefined) {
              serverSide.set(fingerprint(t.accessToken), { issuedAt: t.expiresAt - LIFETIME, expiresAt: t.expiresAt })
            }
          }
          for (const g of workers.flatMap((w) => w.gets)) {
            if (!g.ok || g.fp === undefined) continue
            const known = reckoned.get(g.fp)
            if (known === undefined) reckoned.set(g.fp, { issuedAt: g.issuedAt, expiresAt: g.expiresAt, first: g.at })
            else known.first = Math.min(known.first, g.at)
          }
        })
        const wrong = (g: Get): string | undefined => {
          if (!g.ok) return `no token: ${g.error}`
          const issued = g.fp === undefined ? undefined : serverSide.get(g.fp)
          const fleet = g.fp === undefined ? undefined : reckoned.get(g.fp)
          if (issued === undefined || fleet === undefined) return "not a token the server issued"
          if (g.status !== 200 && g.statusAt! < issued.expiresAt) {
            return `/resource answered ${g.status} ${issued.expiresAt - g.statusAt!} ms before the server-side expiry`
          }
          if (g.issuedAt === undefined || g.expiresAt === undefined) return "no lifetime"
          if (g.issuedAt !== fleet.issuedAt || g.expiresAt !== fleet.expiresAt) return "reckoned unlike elsewhere"
          if (g.expiresAt - g.issuedAt !== LIFETIME) return `a lifetime of ${g.expiresAt - g.issuedAt} ms`
          const late = g.issuedAt - issued.issuedAt
          // a lifetime counts from the request, so it starts no later than the server's issue
          if (late > 0) return `reckoned from ${late} ms after the server issued it`
          if (g.issuedAt > fleet.first) {
            return `reckoned from ${g.issuedAt - fleet.first} ms after it was first handed out`
          }
          const usableUntil = issued.expiresAt + late - HOLD_BACK
          if (g.started >= usableUntil) {
            return `handed out ${
              g.started - usableUntil
            } ms after its usable life (server-side expiry + ${late} ms late - ${HOLD_BACK} ms)`
          }
          return undefined
        }
        const badGets = (gets: ReadonlyArray<Get>) =>
          Effect.map(learn, () =>
            gets.flatMap((g) => {
              const why = wrong(g)
              const expiry = g.fp === undefined ? undefined : serverSide.get(g.fp)?.expiresAt
              return why === undefined ? [] : [{ why, serverExpiresAt: expiry, ...g }]
            }))
        // refused in their last moments, as explained above, and how late a token's life was reckoned
        let lateRefusals = 0
        let afterServerExpiry = 0
        let maxLate = 0
        const countLate = (gets: ReadonlyArray<Get>) => {
          for (const g of gets) {
            const issued = g.fp === undefined ? undefined : serverSide.get(g.fp)
            if (!g.ok || issued === undefined) continue
            if (g.status !== 200) lateRefusals++
            if (g.started >= issued.expiresAt) afterServerExpiry++
            if (g.issuedAt !== undefined) maxLate = Math.max(maxLate, g.issuedAt - issued.issuedAt)
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
        assert.deepStrictEqual(
          yield* badGets(getsA),
          [],
          "every get a token within its life as the fleet could know it"
        )
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
          Effect.map(
            server.requests,
            (records) => records.slice(heldAt).some((r) => r.outcome === "token" && r.headers["x-worker-id"] !== holder)
          ))
        const takeover = takeoverAt - killedAt
        assert.isAtLeast(takeover, 300, "nobody took a live lease")
        assert.isAtMost(takeover, LEASE_TTL + 1500, "taken over once the lease expired")
        const recovered = yield* waitUntil("every survivor with the new token", 10_000, () =>
          survivors.every((w) =>
            w.gets.some((g) => g.at > takeoverAt && g.ok)
          ))
        const getsB = getsBetween(survivors, killedAt, recovered)
        assert.deepStrictEqual(
          yield* badGets(getsB.filter((g) => g.ok)),
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
          } lifetimes after Redis returned; ${lateRefusals} refusals by /resource in a token's last moments, ${afterServerExpiry} gets after the server-side expiry (lifetimes reckoned up to ${maxLate} ms late, ${HOLD_BACK} ms held back); startup ${startup} ms (${
            run.bundled ? "bundled" : "tsx"
          })\n`
        )
      }).pipe(Effect.scoped),
    { timeout: 150_000 }
  )
})
