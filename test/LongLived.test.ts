// A 366-day token under the live Clock with faked Node timers. TestClock fires sleeps longer than
// 2^31-1 ms, while effect's live Clock never does, so only this test proves the refresh happens in
// production. Time here is vitest's fake timers; no real sleeping. The live Clock's monotonic time
// reads a `process.hrtime` it captured when loaded, which fake timers cannot reach: the source runs on
// the live Clock with its monotonic time read from the (faked) `Date.now` instead, its sleeps untouched.
import { HttpClient, HttpClientResponse } from "@effect/platform"
import { Clock, Duration, Effect, Exit, Fiber, Layer, Redacted, Scope } from "effect"
import { ClientAuth, Grant, RefreshPolicy, TokenSource } from "tokenwarden"
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest"

const DAY = 86_400_000

// a token endpoint in memory: barapi.cloud's 366-day tokens, with refresh tokens
const stubEndpoint = () => {
  const grants: Array<string> = []
  const layer = Layer.succeed(
    HttpClient.HttpClient,
    HttpClient.make((request) =>
      Effect.sync(() => {
        const body = request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""
        grants.push(new URLSearchParams(body).get("grant_type") ?? "")
        const token = {
          token_type: "Bearer",
          expires_in: 31_622_400,
          access_token: `access-${grants.length}`,
          refresh_token: `refresh-${grants.length}`
        }
        return HttpClientResponse.fromWeb(
          request,
          new Response(JSON.stringify(token), { status: 200, headers: { "content-type": "application/json" } })
        )
      })
    )
  )
  return { grants, layer }
}

// effect's live Clock (sleeps on setTimeout), its monotonic time from the faked Date.now
const liveClockOnFakeTime = (): Clock.Clock => {
  const live = Clock.make()
  const nanos = () => BigInt(Date.now()) * 1_000_000n
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => live.unsafeCurrentTimeMillis(),
    currentTimeMillis: live.currentTimeMillis,
    unsafeCurrentTimeNanos: nanos,
    currentTimeNanos: Effect.sync(nanos),
    sleep: (duration) => live.sleep(duration)
  }
}

// drives the fake timers until a promise settles (Effect yields to setTimeout(0) now and then)
const settle = async <A>(promise: Promise<A>): Promise<A> => {
  let done = false
  const result = promise.finally(() => {
    done = true
  })
  for (let i = 0; i < 100 && !done; i++) await vi.advanceTimersByTimeAsync(1)
  return result
}

describe("a 366-day token under the live Clock", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"], now: 0 })
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it("is refreshed on time, although one timer cannot wait that long", async () => {
    const { grants, layer } = stubEndpoint()
    const scope = Effect.runSync(Scope.make())
    const source = await settle(Effect.runPromise(
      TokenSource.make({
        url: "https://barapi.cloud/oauth/token",
        clientAuth: ClientAuth.post("332269999912132097", Redacted.make("937it3ow87i4ery69876wqire")),
        grant: Grant.password({ username: "john@doe.com", password: Redacted.make("mypassword123") }),
        policy: RefreshPolicy.make({ jitterFraction: 0 })
      }).pipe(Scope.extend(scope), Effect.provide(layer), Effect.withClock(liveClockOnFakeTime()))
    ))
    expect(grants).toEqual(["password"])

    // the refresh is due at 75% of 366 days: 274.5 days, ten 24.8-day timers away
    await vi.advanceTimersByTimeAsync(274 * DAY)
    expect(grants).toEqual(["password"])
    await vi.advanceTimersByTimeAsync(DAY)
    expect(grants).toEqual(["password", "refresh_token"])
    const token = await settle(Effect.runPromise(source.get))
    expect(Redacted.value(token.value)).toBe("access-2")
    expect(token.expiresAt).toBe(token.issuedAt + 31_622_400_000)

    // and the next one, another 274.5 days on
    await vi.advanceTimersByTimeAsync(275 * DAY)
    expect(grants).toEqual(["password", "refresh_token", "refresh_token"])
    await settle(Effect.runPromise(Scope.close(scope, Exit.void)))
  })

  it("(why sleepUntil exists) one plain 274-day sleep never fires under the live Clock", async () => {
    const fiber = Effect.runFork(Effect.sleep(Duration.days(274)))
    await vi.advanceTimersByTimeAsync(400 * DAY)
    expect(fiber.unsafePoll()).toBeNull()
    await settle(Effect.runPromise(Fiber.interrupt(fiber)))
  })
})
