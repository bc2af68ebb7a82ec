/**
 * The contract every `TokenStore` keeps (memory, file, Redis): written once, declared per store by
 * `store.test.ts`, as @effect/platform runs one suite against every `KeyValueStore`. Two instances stand
 * for two processes over the same storage (the memory store's two are one: it is one process's).
 */
import { assert, it } from "@effect/vitest"
import { Effect, Fiber, Option, Redacted, Stream } from "effect"
import type { Scope } from "effect"
import type { TokenStore } from "tokenwarden"
import { token } from "./storeLease.js"

/** Two instances of one store over the same storage. */
export type MakePair = Effect.Effect<
  readonly [TokenStore.TokenStore, TokenStore.TokenStore],
  unknown,
  Scope.Scope
>

const value = (t: { readonly value: Redacted.Redacted }) => Redacted.value(t.value)

/** Collects a stream's elements as they come, in a fiber of the scope. */
const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.gen(function*() {
    const seen: Array<A> = []
    const fiber = yield* stream.pipe(Stream.runForEach((a) => Effect.sync(() => void seen.push(a))), Effect.forkScoped)
    // the subscription is up (a directory watch opens asynchronously)
    yield* Effect.sleep("150 millis")
    return { seen, fiber }
  })

/** Waits until `seen` holds `count` elements, 5 seconds at most. */
const until = (seen: ReadonlyArray<unknown>, count: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500 && seen.length < count; i++) yield* Effect.sleep("10 millis")
    assert.isAtLeast(seen.length, count, "in time")
  })

const live = (name: string, self: () => Effect.Effect<void, unknown, Scope.Scope>) =>
  it.live(name, () => self().pipe(Effect.scoped, Effect.timeout("20 seconds")))

/** Declares the contract's cases for one store. */
export const storeContract = (makePair: MakePair): void => {
  live("load and save: nothing at first; a save not above the stored version is refused", () =>
    Effect.gen(function*() {
      const [a, b] = yield* makePair
      assert.isTrue(Option.isNone(yield* a.load("k")))
      assert.isTrue(yield* a.save("k", { token: token("a1", "r1"), version: 2 }))
      assert.isFalse(yield* b.save("k", { token: token("late"), version: 1 }))
      assert.isFalse(yield* b.save("k", { token: token("same"), version: 2 }))
      for (const store of [a, b]) {
        const loaded = Option.getOrThrow(yield* store.load("k"))
        assert.strictEqual(loaded.version, 2)
        assert.strictEqual(value(loaded.token), "a1")
        assert.strictEqual(Redacted.value(loaded.token.refreshToken!), "r1")
      }
      assert.isTrue(yield* b.save("k", { token: token("a3"), version: 3 }))
      assert.strictEqual(value(Option.getOrThrow(yield* a.load("k")).token), "a3")
      assert.isTrue(Option.isNone(yield* a.load("other")), "keys are apart")
    }))

  live(
    "remove deletes the entry, only it; removing a missing one is not an error; the key starts over",
    () =>
      Effect.gen(function*() {
        const [a, b] = yield* makePair
        yield* a.save("k", { token: token("v3"), version: 3 })
        yield* a.save("other", { token: token("o"), version: 1 })
        yield* a.remove("k")
        assert.isTrue(Option.isNone(yield* a.load("k")))
        assert.isTrue(Option.isNone(yield* b.load("k")))
        assert.strictEqual(value(Option.getOrThrow(yield* b.load("other")).token), "o")
        yield* a.remove("k")
        assert.isTrue(yield* b.save("k", { token: token("v1"), version: 1 }), "a removed entry starts over")
      })
  )

  live(
    "refresh in one process: 10 concurrent refreshes share one fetch; a newer entry is adopted",
    () =>
      Effect.gen(function*() {
        const [a] = yield* makePair
        let fetches = 0
        const fetch = Effect.sleep("200 millis").pipe(Effect.zipRight(Effect.sync(() => token(`t${++fetches}`))))
        const results = yield* Effect.all(Array.from({ length: 10 }, () => a.refresh("k", 0, fetch)), {
          concurrency: "unbounded"
        })
        assert.strictEqual(fetches, 1)
        assert.strictEqual(results.filter((r) => r.fetched).length, 1)
        assert.isTrue(results.every((r) => r.entry.version === 1 && value(r.entry.token) === "t1"))
        assert.strictEqual(value(Option.getOrThrow(yield* a.load("k")).token), "t1", "written before returning")
        const next = yield* a.refresh("k", 1, fetch)
        assert.isTrue(next.fetched && next.entry.version === 2 && fetches === 2)
        const adopted = yield* a.refresh("k", 0, fetch)
        assert.isTrue(!adopted.fetched && adopted.entry.version === 2 && fetches === 2)
      })
  )

  live(
    "identity: another credential's entry is refused as Untrusted, by load and by changes",
    () =>
      Effect.gen(function*() {
        const [a, b] = yield* makePair
        const refreshed = yield* a.refresh("k", 0, Effect.succeed(token("for-a")), "identity-a")
        assert.strictEqual(refreshed.entry.identity, "identity-a")
        const foreign = yield* Effect.flip(b.load("k", "identity-other"))
        assert.deepStrictEqual([foreign._tag, foreign.reason], ["StoreError", "Untrusted"])
        assert.strictEqual(foreign.detail, "the entry was written for another credential")
        const own = Option.getOrThrow(yield* b.load("k", "identity-a"))
        assert.deepStrictEqual([value(own.token), own.identity], ["for-a", "identity-a"])
        assert.strictEqual(value(Option.getOrThrow(yield* b.load("k")).token), "for-a", "no identity, no check")
        const other = yield* collect(b.changes("k", "identity-other"))
        const mine = yield* collect(b.changes("k", "identity-a"))
        yield* a.save("k", { token: token("for-a-2"), version: 2, identity: "identity-a" })
        yield* until(mine.seen, 1)
        yield* Effect.sleep("200 millis")
        assert.deepStrictEqual(other.seen, [], "another credential's entry is left out")
        yield* Fiber.interrupt(other.fiber)
      })
  )

  live("changes: another writer's newer versions, each once, of this key only", () =>
    Effect.gen(function*() {
      const [a, b] = yield* makePair
      const { seen } = yield* collect(a.changes("k"))
      yield* b.save("k", { token: token("one"), version: 1 })
      yield* until(seen, 1)
      yield* b.save("other", { token: token("elsewhere"), version: 7 })
      assert.isFalse(yield* b.save("k", { token: token("late"), version: 1 }))
      yield* b.refresh("k", 1, Effect.succeed(token("two")))
      yield* until(seen, 2)
      // a notice heard twice, or a load racing the next write, must not repeat a version
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual(seen.map((e) => [e.version, value(e.token)]), [[1, "one"], [2, "two"]])
    }))

  live(
    "notices: one per write, naming the key as given (a key that is no file name too)",
    () =>
      Effect.gen(function*() {
        const [a, b] = yield* makePair
        const odd = "user/alice@example.com"
        // the reader met the key (a file store names a hashed file only by keys it has seen)
        yield* a.load(odd)
        const { seen } = yield* collect(a.notices)
        const writes: Array<readonly [string, number]> = [["k", 1], [odd, 1], ["k", 2], [odd, 5]]
        for (const [i, [key, version]] of writes.entries()) {
          assert.isTrue(yield* b.save(key, { token: token(`${key}-${version}`), version }))
          yield* until(seen, i + 1)
        }
        assert.isFalse(yield* b.save("k", { token: token("late"), version: 2 }), "a refused save is no write")
        yield* Effect.sleep("300 millis")
        assert.deepStrictEqual(seen.map((n) => n.key), writes.map(([key]) => key))
        // a store that knows the version says it
        seen.forEach((notice, i) => {
          if (notice.version !== undefined) assert.strictEqual(notice.version, writes[i]![1])
        })
      })
  )

  live("notices and changes: many listeners, each hears every write", () =>
    Effect.gen(function*() {
      const [a, b] = yield* makePair
      const listeners = yield* Effect.all(Array.from({ length: 20 }, () => collect(a.notices)))
      const followers = yield* Effect.all(Array.from({ length: 20 }, (_, i) => collect(a.changes(`k${i}`))))
      yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) =>
        b.save(`k${i}`, { token: token(`t${i}`), version: 1 }), { concurrency: 4, discard: true })
      for (const { seen } of listeners) {
        yield* until(seen, 20)
      }
      for (const [i, { seen }] of followers.entries()) {
        yield* until(seen, 1)
        assert.deepStrictEqual(
          seen.map((e) =>
            value(e.token)
          ),
          [`t${i}`]
        )
      }
      for (const { seen } of listeners) {
        assert.deepStrictEqual(new Set(seen.map((n) => n.key)), new Set(followers.map((_, i) => `k${i}`)))
      }
    }))
}
