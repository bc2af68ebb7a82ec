/**
 * The lease contract every store sharing one refresher between processes keeps (the file store on one
 * host, the Redis store across hosts): two store instances stand for two processes.
 */
import { assert, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Redacted } from "effect"
import type { Duration, Scope } from "effect"
import type { AccessToken, TokenStore } from "tokenwarden"
import { elapsed } from "../util.js"

/** Two instances of one store over the same storage, as two processes would have them. */
export type MakePair = (options: { readonly leaseTtl: Duration.DurationInput }) => Effect.Effect<
  readonly [TokenStore.TokenStore, TokenStore.TokenStore],
  unknown,
  Scope.Scope
>

/** A stored token of an hour, with a refresh token when given. */
export const token = (value: string, refreshToken?: string): AccessToken.AccessToken => ({
  value: Redacted.make(value),
  type: "Bearer",
  issuedAt: 1_000,
  expiresAt: 3_601_000,
  lifetimeSource: "expires_in",
  scopes: ["read"],
  ...(refreshToken === undefined ? {} : { refreshToken: Redacted.make(refreshToken) }),
  extra: Redacted.make({})
})

const value = (t: { readonly value: Redacted.Redacted }) => Redacted.value(t.value)

/** Declares the contract's tests for one store. */
export const leaseContract = (makePair: MakePair): void => {
  it.live("one refresher across processes: 2 stores × 5 concurrent refreshes, one fetch", () =>
    Effect.gen(function*() {
      const [a, b] = yield* makePair({ leaseTtl: "15 seconds" })
      let fetches = 0
      const fetch = Effect.sleep("300 millis").pipe(Effect.zipRight(Effect.sync(() => token(`t${++fetches}`))))
      const results = yield* Effect.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).refresh("k", 0, fetch)),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(fetches, 1)
      assert.strictEqual(results.filter((r) => r.fetched).length, 1)
      assert.deepStrictEqual(new Set(results.map((r) => value(r.entry.token))), new Set(["t1"]))
      assert.isTrue(results.every((r) => r.entry.version === 1))
      // a process that knows version 1 refreshes again; one that knew 0 adopts version 1
      const next = yield* b.refresh("k", 1, fetch)
      assert.isTrue(next.fetched && next.entry.version === 2 && fetches === 2)
      const adopted = yield* a.refresh("k", 0, fetch)
      assert.isTrue(!adopted.fetched && adopted.entry.version === 2 && fetches === 2)
    }).pipe(Effect.scoped))

  it.live("a waiting process wakes on the holder's write, well before the lease would expire", () =>
    Effect.gen(function*() {
      const [a, b] = yield* makePair({ leaseTtl: "10 seconds" })
      const started = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(
        a.refresh(
          "k",
          0,
          Deferred.succeed(started, undefined).pipe(
            Effect.zipRight(Effect.sleep("200 millis")),
            Effect.as(token("by-a"))
          )
        )
      )
      yield* Deferred.await(started)
      const [adopted, millis] = yield* elapsed(b.refresh("k", 0, Effect.die("b must not fetch")))
      assert.isFalse(adopted.fetched)
      assert.strictEqual(value(adopted.entry.token), "by-a")
      assert.isBelow(millis, 1500)
      assert.isTrue((yield* Fiber.join(holder)).fetched)
    }).pipe(Effect.scoped))

  it.live("a holder whose request failed releases the lease: a waiter refreshes at once, not at expiry", () =>
    Effect.gen(function*() {
      const [a, b] = yield* makePair({ leaseTtl: "10 seconds" })
      const started = yield* Deferred.make<void>()
      const failing = Deferred.succeed(started, undefined).pipe(
        Effect.zipRight(Effect.sleep("200 millis")),
        Effect.zipRight(Effect.fail("provider down" as const))
      )
      const holder = yield* Effect.fork(a.refresh("k", 0, failing))
      yield* Deferred.await(started)
      const [result, millis] = yield* elapsed(b.refresh("k", 0, Effect.succeed(token("by-b"))))
      assert.strictEqual(yield* Effect.flip(Fiber.join(holder)), "provider down", "the failure passes through")
      assert.isTrue(result.fetched)
      assert.strictEqual(value(result.entry.token), "by-b")
      assert.isBelow(millis, 2000)
    }).pipe(Effect.scoped))

  it.live("the lease renews while a slow request runs: nobody takes over a live holder", () =>
    Effect.gen(function*() {
      const [a, b] = yield* makePair({ leaseTtl: "300 millis" })
      const started = yield* Deferred.make<void>()
      let fetches = 0
      const slow = Deferred.succeed(started, undefined).pipe(
        Effect.zipRight(Effect.sleep("1200 millis")),
        Effect.map(() => token(`slow${++fetches}`))
      )
      const holder = yield* Effect.fork(a.refresh("k", 0, slow))
      yield* Deferred.await(started)
      const adopted = yield* b.refresh("k", 0, Effect.sync(() => token(`b${++fetches}`)))
      assert.strictEqual(fetches, 1)
      assert.strictEqual(value(adopted.entry.token), "slow1")
      yield* Fiber.join(holder)
    }).pipe(Effect.scoped))
}
