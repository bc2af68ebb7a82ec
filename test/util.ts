import { NodeHttpClient } from "@effect/platform-node"
import { Clock, Effect, HashMap, Logger, LogLevel, Option, Redacted, Stream, TestClock } from "effect"
import type { TokenState } from "tokenwarden"
import { ClientAuth, Grant, RefreshPolicy, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"

/** Real HTTP over loopback, as a user's program would have it. */
export const HttpLive = NodeHttpClient.layerUndici

export const noJitter = RefreshPolicy.make({ jitterFraction: 0 })

/** No jitter, and a caller never waits for a retry (`maxWait: 0`): it gets the last error at once. */
export const failFast = RefreshPolicy.make({ jitterFraction: 0, maxWait: 0 })

/** Lets real IO (a loopback request started by a TestClock wake-up) finish. */
export const settle = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))

/**
 * The test's Clock with a system clock that can be stepped: its wall time (`currentTimeMillis`) moves
 * by `step`, its monotonic time (`currentTimeNanos`) and its sleeps stay TestClock's, as a real system
 * clock step (NTP, a VM resumed) leaves the monotonic clock alone. `TestClock.adjust` still drives both.
 */
export const steppedClock = Effect.map(TestClock.testClock(), (testClock) => {
  let offset = 0
  const wall = () => testClock.unsafeCurrentTimeMillis() + offset
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: wall,
    currentTimeMillis: Effect.sync(wall),
    unsafeCurrentTimeNanos: () => testClock.unsafeCurrentTimeNanos(),
    currentTimeNanos: testClock.currentTimeNanos,
    sleep: (duration) => testClock.sleep(duration)
  }
  return {
    clock,
    /** Steps the wall clock by `millis` (negative: back). */
    step: (millis: number) => Effect.sync(() => void (offset += millis))
  }
})

/** A fake server and a client-credentials source against it, with the given overrides. */
export const setup = (
  server?: AuthServer.Options,
  source?: Partial<TokenSource.Options>
) =>
  Effect.gen(function*() {
    const fake = yield* AuthServer.make(server)
    const tokens = yield* TokenSource.make({
      url: fake.tokenUrl,
      clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
      grant: Grant.clientCredentials({ scopes: ["read"] }),
      // no jitter: a 1-hour token refreshes at exactly 45 minutes, so tests can step the clock to it
      policy: noJitter,
      // TestClock.adjust jumps over a request in flight on real IO: its timeout must outlast any jump
      timeout: "30 days",
      ...source
    })
    return { server: fake, source: tokens }
  })

/** The first state (current included) that matches. */
export const waitFor = (
  source: TokenSource.TokenSource,
  predicate: (state: TokenState.TokenState) => boolean
) => source.changes.pipe(Stream.filter(predicate), Stream.runHead, Effect.map(Option.getOrThrow))

/** Waits for a valid token other than `token`. */
export const waitForNewToken = (source: TokenSource.TokenSource, token: { readonly value: Redacted.Redacted }) =>
  waitFor(
    source,
    (s) => s._tag === "Valid" && Redacted.value(s.token.value) !== Redacted.value(token.value)
  ).pipe(Effect.map((s) => (s as Extract<TokenState.TokenState, { _tag: "Valid" }>).token))

/** A log line as a test sees it: level, message and annotations. */
export interface LogLine {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
}

/** Runs `effect` with every log line (any level) collected into `lines`. */
export const collectLogs = (lines: Array<LogLine>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.provide(
      Logger.replace(
        Logger.defaultLogger,
        Logger.make(({ annotations, logLevel, message }) => {
          lines.push({
            level: logLevel.label,
            message: (Array.isArray(message) ? message : [message]).map(String).join(" "),
            annotations: Object.fromEntries(HashMap.toEntries(annotations))
          })
        })
      )
    ),
    Logger.withMinimumLogLevel(LogLevel.All)
  )

/** Runs `effect`, with how long it took in real milliseconds. */
export const elapsed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    const result = yield* effect
    return [result, performance.now() - start] as const
  })
