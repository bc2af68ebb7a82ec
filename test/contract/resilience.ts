/**
 * The resilience contract (issue 14): a source that never gives up and never hands out a dead token,
 * written once and declared per face by `resilience.test.ts`. Under TestClock, against the testing
 * server over real loopback HTTP, with 1-hour tokens refreshed at 45 minutes (no jitter). Each case
 * failed on the code before the refresh engine learnt its rule.
 */
import type { HttpClient } from "@effect/platform"
import { assert, it } from "@effect/vitest"
import {
  Config,
  ConfigProvider,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Option,
  Redacted,
  Scope,
  TestClock
} from "effect"
import type { AccessToken, TokenError } from "tokenwarden"
import { ClientAuth, Grant, TokenStore } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { CLIENT_SECRET, WRONG_SECRET } from "../secrets.js"
import { HttpLive, settle, steppedClock } from "../util.js"

/** What a face offers; `refresh` and `getValidFor` where it has them (the Promise facade has not). */
export interface Face {
  readonly get: Effect.Effect<AccessToken.AccessToken, TokenError.TokenError>
  readonly invalidate: (token: AccessToken.AccessToken) => Effect.Effect<void>
  readonly refresh?: Effect.Effect<AccessToken.AccessToken, TokenError.TokenError> | undefined
  readonly getValidFor?:
    | ((duration: Duration.DurationInput) => Effect.Effect<AccessToken.AccessToken, TokenError.TokenError>)
    | undefined
}

/** What a case may change in the face's credential: its client authentication, a store to keep tokens in. */
export interface FaceOptions {
  readonly clientAuth?: ClientAuth.ClientAuth | undefined
  readonly store?: TokenStore.TokenStore | undefined
}

/**
 * Builds one face over a credential of the testing server (client "client", CLIENT_SECRET by Basic
 * unless `clientAuth` says otherwise, scope read), with no jitter and a request timeout longer than
 * any TestClock jump; with `store`, kept in it (`store: true`). A face that fetches at start (a
 * `TokenSource`) has made its first request when this returns.
 */
export type MakeFace = (
  server: AuthServer.AuthServer,
  options?: FaceOptions
) => Effect.Effect<Face, unknown, HttpClient.HttpClient | Scope.Scope>

const value = (token: { readonly value: Redacted.Redacted }) => Redacted.value(token.value)

const server = (faults: ReadonlyArray<AuthServer.Fault> = [], options?: AuthServer.Options) =>
  Effect.gen(function*() {
    const made = yield* AuthServer.make({
      clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }],
      lifetimeSeconds: 3600,
      ...options
    })
    if (faults.length > 0) yield* made.inject(...faults)
    return made
  })

const scoped = (name: string, self: () => Effect.Effect<void, unknown, HttpClient.HttpClient | Scope.Scope>) =>
  it.scoped(name, () => self().pipe(Effect.provide(HttpLive)))

/** Steps the clock (a minute at a time, or `step` minutes), letting real IO finish in between. */
const advance = (minutes: number, step = 1) =>
  Effect.gen(function*() {
    for (let i = 0; i < minutes; i += step) {
      yield* TestClock.adjust(Duration.minutes(step)).pipe(Effect.zipRight(settle))
    }
  })

/** Declares the contract's cases for one face; those of `refresh` and `getValidFor` only where it has them. */
export const resilienceSuite = (makeFace: MakeFace, options: { readonly refresh: boolean }) => {
  scoped(
    "a passing fault on the first request: get waits for the retry and gets its token",
    () =>
      Effect.gen(function*() {
        const auth = yield* server([AuthServer.Fault.unavailable()])
        const face = yield* makeFace(auth)
        const waiting = yield* Effect.fork(face.get)
        yield* settle
        yield* TestClock.adjust("2 seconds")
        const token = yield* Fiber.join(waiting)
        assert.strictEqual(value(yield* face.get), value(token))
        assert.strictEqual(yield* auth.count(), 2)
      })
  )

  scoped(
    "a retry due later than maxWait (Retry-After: 1 hour) fails the caller at once with the typed error",
    () =>
      Effect.gen(function*() {
        const auth = yield* server([AuthServer.Fault.rateLimited(3600)])
        const face = yield* makeFace(auth)
        const error = yield* Effect.flip(face.get)
        assert.strictEqual(error._tag, "RateLimited")
        yield* advance(30)
        assert.strictEqual(yield* auth.count(), 1, "nothing before Retry-After")
        yield* advance(31)
        assert.strictEqual(value(yield* face.get).length > 0, true)
        assert.strictEqual(yield* auth.count(), 2)
      })
  )

  scoped(
    "an HTML 403 from a proxy at refresh time is passing: retried, and get works throughout a day",
    () =>
      Effect.gen(function*() {
        const auth = yield* server()
        const face = yield* makeFace(auth)
        const first = yield* face.get
        yield* auth.inject(AuthServer.Fault.body("<html><h1>Access denied</h1></html>", { status: 403 }))
        let failures = 0
        for (let hour = 0; hour < 24; hour++) {
          yield* advance(60, 15)
          const outcome = yield* Effect.either(face.get)
          if (outcome._tag === "Left") failures++
        }
        assert.strictEqual(failures, 0)
        assert.notStrictEqual(value(yield* face.get), value(first))
        // one refresh per 45 minutes, and the one retry of the 403
        const requests = yield* auth.count()
        assert.isTrue(requests >= 30 && requests <= 36, `requests in a day: ${requests}`)
      })
  )

  scoped(
    "a permanent error after start: Failed, get fails at once, then the slow schedule heals it",
    () =>
      Effect.gen(function*() {
        const auth = yield* server()
        const face = yield* makeFace(auth)
        const first = yield* face.get
        // the refused token's replacement is refused too: invalid_scope is permanent
        yield* auth.inject(AuthServer.Fault.status(400, { body: JSON.stringify({ error: "invalid_scope" }) }))
        yield* face.invalidate(first)
        yield* settle
        const error = yield* Effect.flip(face.get)
        assert.strictEqual(error._tag, "InvalidScope")
        const started = yield* auth.count()
        // in Failed nobody waits: a get fails at once, and sends nothing
        assert.strictEqual((yield* Effect.flip(face.get))._tag, "InvalidScope")
        assert.strictEqual(yield* auth.count(), started)
        // the slow schedule's first step: about a minute (jittered)
        yield* advance(2)
        const healed = yield* face.get
        assert.notStrictEqual(value(healed), value(first))
        assert.strictEqual(yield* auth.count(), started + 1)
      })
  )

  clockSteps(makeFace)
  deadTokens(makeFace)
  rotatingSecret(makeFace)
  shutdown(makeFace)
  if (!options.refresh) return interrupting(makeFace)

  scoped(
    "during a Retry-After of an hour, 50 refreshes and 50 getValidFor calls send no request",
    () =>
      Effect.gen(function*() {
        const auth = yield* server()
        const face = yield* makeFace(auth)
        const first = yield* face.get
        yield* auth.inject(AuthServer.Fault.rateLimited(3600))
        // the proactive refresh at 45 minutes meets the 429
        yield* advance(46)
        assert.strictEqual(yield* auth.count(), 2)
        const refreshes = yield* Effect.fork(Effect.all(Array.from({ length: 50 }, () => face.refresh!), {
          concurrency: "unbounded"
        }))
        const valid = yield* Effect.all(Array.from({ length: 50 }, () => face.getValidFor!("2 hours")), {
          concurrency: "unbounded"
        })
        assert.isTrue(valid.every((token) => value(token) === value(first)), "the valid token, shorter than asked")
        yield* settle
        assert.strictEqual(yield* auth.count(), 2, "no caller defeats the Retry-After")
        yield* advance(61)
        const refreshed = yield* Fiber.join(refreshes)
        assert.strictEqual(new Set(refreshed.map(value)).size, 1)
        assert.notStrictEqual(value(refreshed[0]!), value(first))
        assert.strictEqual(yield* auth.count(), 3)
      })
  )

  scoped("100 getValidFor(2 hours) against 1-hour tokens send one request, not 100", () =>
    Effect.gen(function*() {
      const auth = yield* server()
      const face = yield* makeFace(auth)
      const first = yield* face.get
      const before = yield* auth.count()
      let last = first
      for (let i = 0; i < 100; i++) last = yield* face.getValidFor!("2 hours")
      assert.notStrictEqual(value(last), value(first), "one request for a fresher token")
      assert.strictEqual(yield* auth.count(), before + 1)
    }))

  interrupting(makeFace)
}

const interrupting = (makeFace: MakeFace) =>
  scoped("interrupting a caller never cancels the shared request", () =>
    Effect.gen(function*() {
      const auth = yield* server()
      const face = yield* makeFace(auth)
      const first = yield* face.get
      yield* auth.inject(AuthServer.Fault.delay(300))
      yield* face.invalidate(first)
      const impatient = yield* Effect.fork(face.get)
      yield* settle
      yield* Fiber.interrupt(impatient)
      const token = yield* face.get
      assert.notStrictEqual(value(token), value(first))
      assert.strictEqual(yield* auth.count(), 2)
    }))

// Whether a token is usable, and when to refresh it, is measured on the monotonic clock: a step of the
// system clock (NTP, a VM resumed) changes neither. The face runs on a Clock whose wall time is stepped
// by `step` hours after its first token is 10 minutes old.
const clockSteps = (makeFace: MakeFace) => {
  const stepped = (hours: number) =>
    Effect.gen(function*() {
      const auth = yield* server()
      const system = yield* steppedClock
      const face = yield* makeFace(auth).pipe(Effect.withClock(system.clock))
      const first = yield* face.get
      yield* advance(10)
      yield* system.step(hours * HOUR)
      return { auth, face, first }
    })

  scoped(
    "a system clock stepped back 2 hours: refreshed at 45 minutes all the same, no dead token",
    () =>
      Effect.gen(function*() {
        const { auth, face, first } = yield* stepped(-2)
        yield* advance(36)
        assert.strictEqual(yield* auth.count(), 2, "the refresh at 45 minutes")
        assert.notStrictEqual(value(yield* face.get), value(first))
        // the first token expired at 60 minutes: never handed out after, whatever the wall clock says
        yield* advance(15)
        assert.notStrictEqual(value(yield* face.get), value(first))
      })
  )

  scoped(
    "a system clock stepped forward 2 hours: the token is still handed out, no early request",
    () =>
      Effect.gen(function*() {
        const { auth, face, first } = yield* stepped(2)
        yield* advance(1)
        assert.strictEqual(value(yield* face.get), value(first))
        assert.strictEqual(yield* auth.count(), 1)
        yield* advance(35)
        assert.strictEqual(yield* auth.count(), 2, "the refresh at 45 minutes")
      })
  )
}

const HOUR = 3600_000
const DAY = 24 * HOUR
// a December noon, in whole seconds, as a Date header states time
const NOON = Date.UTC(2026, 11, 2, 12, 0, 0)

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
/** An unsigned JWT access token expiring at `exp` (epoch ms), as some servers issue without `expires_in`. */
const jwt = (exp: number) => `${base64url({ alg: "none" })}.${base64url({ sub: "svc", exp: exp / 1000 })}.`

/** Steps the clock a second at a time, letting real IO finish in between. */
const advanceSeconds = (seconds: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < seconds; i++) yield* TestClock.adjust("1 second").pipe(Effect.zipRight(settle))
  })

// Never a dead token: one dead on arrival is a transient error on the retry schedule, a JWT's `exp` is
// read on our clock, a lifetime past belief is clamped.
const deadTokens = (makeFace: MakeFace) => {
  scoped(
    "a server issuing only dead tokens is asked on the retry schedule, not in a loop; no caller gets one",
    () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(NOON)
        const auth = yield* server([], {
          expiresIn: "omit",
          // every token it issues expired an hour before (the same clock: no Date offset)
          shapeToken: (body) => ({ ...body, access_token: jwt(NOON - HOUR) })
        })
        const face = yield* makeFace(auth)
        const caller = yield* Effect.fork(Effect.either(face.get))
        // 40 seconds of the exponential schedule (1 s, 2 s, 4 s …, jittered), past maxWait (30 s)
        yield* advanceSeconds(40)
        const outcome = yield* Fiber.join(caller)
        assert.isTrue(Either.isLeft(outcome) && outcome.left._tag === "MalformedResponse")
        const requests = yield* auth.count()
        assert.isTrue(requests >= 4 && requests <= 8, `requests in 40 s: ${requests}`)
      })
  )

  scoped(
    "a JWT without expires_in from a server 2 hours behind: its exp read on our clock by the Date header",
    () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(NOON)
        const auth = yield* server()
        // the server's clock says 10:00; its token expires an hour after that, at 11:00 its time
        yield* auth.inject(AuthServer.Fault.status(200, {
          body: JSON.stringify({ access_token: jwt(NOON - HOUR), token_type: "Bearer" }),
          contentType: "application/json",
          headers: { Date: new Date(NOON - 2 * HOUR).toUTCString() }
        }))
        const face = yield* makeFace(auth)
        const token = yield* face.get
        assert.strictEqual(token.expiresAt, NOON + HOUR)
        assert.strictEqual(token.clockOffset, 2 * HOUR)
        yield* advance(46)
        assert.strictEqual(yield* auth.count(), 2, "refreshed at 45 minutes of its hour")
      })
  )

  scoped(
    "expires_in: 1e12 is believed for maxLifetime (366 days), and the token refreshed before then",
    () =>
      Effect.gen(function*() {
        const auth = yield* server([], { shapeToken: (body) => ({ ...body, expires_in: 1e12 }) })
        const face = yield* makeFace(auth)
        const first = yield* face.get
        assert.strictEqual(first.expiresAt! - first.issuedAt, 366 * DAY)
        // asked for daily (a pool keeps a key asked for), refreshed at 75 % of 366 days
        let last = first
        for (let day = 0; day < 280; day++) {
          yield* TestClock.adjust(Duration.days(1)).pipe(Effect.zipRight(settle))
          last = yield* face.get
        }
        assert.strictEqual(yield* auth.count(), 2)
        assert.notStrictEqual(value(last), value(first))
      })
  )
}

// A client secret given as an effect (a mounted file): read again after InvalidClient, so an operator
// who rotates it at the server and in the file needs no restart.
const rotatingSecret = (makeFace: MakeFace) =>
  scoped(
    "a client secret rotated at the server and in its file: healed by the slow schedule, no restart",
    () =>
      Effect.gen(function*() {
        const env = new Map([["CLIENT_SECRET", CLIENT_SECRET]])
        let reads = 0
        const secret = Effect.suspend(() =>
          Config.redacted("CLIENT_SECRET").pipe(
            Effect.withConfigProvider(ConfigProvider.fromMap(env)),
            Effect.tap(() => void reads++)
          )
        )
        const auth = yield* server()
        const face = yield* makeFace(auth, { clientAuth: ClientAuth.basic("client", secret) })
        const first = yield* face.get
        yield* auth.setClientSecret("client", WRONG_SECRET)
        env.set("CLIENT_SECRET", WRONG_SECRET)
        // the API refuses the token; its replacement is refused with the secret kept from the first read
        yield* face.invalidate(first)
        yield* settle
        assert.strictEqual((yield* Effect.flip(face.get))._tag, "InvalidClient")
        assert.strictEqual(reads, 1)
        // the slow schedule's first step (about a minute) reads the secret again
        yield* advance(2)
        const healed = yield* face.get
        assert.notStrictEqual(value(healed), value(first))
        assert.strictEqual(reads, 2)
        assert.strictEqual(yield* auth.count(), 3)
      })
  )

// Closing the scope during a request waits for it (shutdownGrace) and stores its token.
const shutdown = (makeFace: MakeFace) =>
  scoped(
    "closing the scope during a request waits for it, and its token is in the store",
    () =>
      Effect.gen(function*() {
        const auth = yield* server()
        const store = yield* TokenStore.makeMemory
        const scope = yield* Scope.make()
        const face = yield* makeFace(auth, { store }).pipe(Scope.extend(scope))
        const first = yield* face.get
        // the replacement is held at the server for 300 ms of real time, and the scope closes meanwhile
        yield* auth.inject(AuthServer.Fault.delay(300))
        yield* face.invalidate(first)
        yield* settle
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(yield* auth.count(), 2)
        const key = TokenStore.key({
          url: auth.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
          grant: Grant.clientCredentials({ scopes: ["read"] })
        })
        const stored = Option.getOrThrow(yield* store.load(key))
        assert.strictEqual(stored.version, 2)
        assert.notStrictEqual(value(stored.token), value(first))
      })
  )
