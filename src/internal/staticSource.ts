/**
 * A token source for a credential a person issues and rotates, not an authorization server (Baack's
 * root API client token, an API key). It is never refreshed. Given as an effect that reads it (a
 * mounted secret through `Config.redacted`), it is read again when the API refuses it, so a rotated
 * credential needs no restart; a refusal with no new value leaves the source `Failed` with
 * `ReauthorizationRequired`, and while it is `Failed` a `get` reads the credential again (at most once a
 * second, and never a request to the provider), so a value written after the failure is picked up then.
 *
 * Self-contained on purpose: it shares the `TokenSource` interface, not the refresh engine, which has
 * nothing to do for a credential without a lifetime.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as ConfigError from "effect/ConfigError"
import type * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { AccessToken } from "../AccessToken.js"
import type { TokenError } from "../TokenError.js"
import { InvalidConfiguration, isTokenwardenError, ReauthorizationRequired } from "../TokenError.js"
import type { TokenSource } from "../TokenSource.js"
import { TokenState } from "../TokenState.js"
import { dynamic } from "./dynamicEffect.js"
import * as Monotonic from "./monotonic.js"

const REREAD_INTERVAL_MILLIS = 1000

/**
 * A credential: its value, or an effect that reads it (read at start, and again after a refusal).
 *
 * @internal
 */
export type Credential<E> = Redacted.Redacted<string> | Effect.Effect<Redacted.Redacted<string>, E>

/** @internal */
export interface Options<E> {
  readonly credential: Credential<E>
  /** The name in logs and metrics. */
  readonly provider: string
  /** Why a value cannot be sent (never quoting it), or undefined when it can. */
  readonly check: (value: string) => string | undefined
  /** The token type in the `Authorization` header; `Bearer` by default. */
  readonly type?: string | undefined
}

// what a failed read says: a ConfigError names the variable, our own errors say what was wrong; any other
// error is named only, since its text is the caller's and may quote what it read
const readProblem = (error: unknown): InvalidConfiguration => {
  if (error instanceof InvalidConfiguration) return error
  const what = ConfigError.isConfigError(error)
    ? String(error)
    : isTokenwardenError(error)
    ? error.message
    : typeof error === "object" && error !== null && "_tag" in error
    ? String(error._tag)
    : "the effect failed"
  return new InvalidConfiguration({ reason: `the credential could not be read: ${what.slice(0, 256)}` })
}

/** The credential's reader: read with the ConfigProvider given, trimmed, and refused when it cannot be sent. */
const readerOf = <E>(
  options: Options<E>,
  configProvider: ConfigProvider.ConfigProvider
): Effect.Effect<string, E | InvalidConfiguration> => {
  const { credential } = options
  return Effect.flatMap(
    Effect.isEffect(credential) ? Effect.withConfigProvider(credential, configProvider) : Effect.succeed(credential),
    (redacted) => {
      // a file's final newline is not part of the credential
      const value = Redacted.value(redacted).trim()
      const problem = options.check(value)
      return problem === undefined
        ? Effect.succeed(value)
        : Effect.fail(new InvalidConfiguration({ reason: problem }))
    }
  )
}

/** The credential as a token without expiry, issued now. */
const tokenOf = (value: string, type: string | undefined) =>
  Effect.map(Clock.currentTimeMillis, (now): AccessToken => ({
    value: Redacted.make(value),
    type: type ?? "Bearer",
    issuedAt: now,
    lifetimeSource: "none",
    scopes: [],
    extra: Redacted.make({})
  }))

/**
 * The source's token and state, and the moves between them: a refusal, a read again, a failure. Every
 * move but `failWith` runs under `lock`.
 */
class Holder<E> {
  current: AccessToken | undefined
  lastRead: number
  // the value the API last refused: reading it again is no new value
  refused: string | undefined = undefined
  stopped = false
  readonly read: Effect.Effect<string, E | InvalidConfiguration>
  readonly rereadable: boolean
  readonly type: string | undefined
  readonly state: SubscriptionRef.SubscriptionRef<TokenState>
  readonly lock: Effect.Semaphore
  readonly clock: Clock.Clock
  readonly provider: string
  /** While Failed, a caller reads the credential again, at most once per interval (see `make`). */
  readonly readAgain: Effect.Effect<AccessToken, TokenError>

  constructor(
    fields: Pick<Holder<E>, "current" | "lastRead" | "read" | "rereadable" | "type" | "state" | "lock" | "clock">,
    provider: string
  ) {
    this.current = fields.current
    this.lastRead = fields.lastRead
    this.read = fields.read
    this.rereadable = fields.rereadable
    this.type = fields.type
    this.state = fields.state
    this.lock = fields.lock
    this.clock = fields.clock
    this.provider = provider
    // checked under the lock, so callers that waited for an `invalidate` take its outcome
    this.readAgain = this.lock.withPermits(1)(Effect.suspend(() => {
      if (this.current !== undefined) return Effect.succeed(this.current)
      return Monotonic.unsafeNow(this.clock) - this.lastRead < REREAD_INTERVAL_MILLIS
        ? this.stateError()
        : this.reread()
    }))
  }

  /** Logs with the provider's name. */
  log<A, E1, R>(effect: Effect.Effect<A, E1, R>): Effect.Effect<A, E1, R> {
    return Effect.annotateLogs(effect, { provider: this.provider })
  }

  /** Leaves the source without a token, `Failed` with `error`, and fails with it. */
  failWith(error: ReauthorizationRequired): Effect.Effect<never, ReauthorizationRequired> {
    return Effect.suspend(() => {
      this.current = undefined
      return SubscriptionRef.set(this.state, TokenState.Failed({ error, token: Option.none() }))
    }).pipe(
      Effect.zipRight(
        this.log(
          Effect.logWarning("no usable token; reauthorization required").pipe(
            Effect.annotateLogs({ detail: error.detail })
          )
        )
      ),
      Effect.zipRight(Effect.fail(error))
    )
  }

  /** Fails with the error the state holds (a stopped source's own when it holds none). */
  stateError(): Effect.Effect<never, TokenError> {
    return Effect.flatMap(
      SubscriptionRef.get(this.state),
      (s): Effect.Effect<never, TokenError> =>
        Effect.fail(
          "error" in s ? s.error : new ReauthorizationRequired({ detail: "the source is stopped" })
        )
    )
  }

  /**
   * Reads the credential again (the caller holds the lock): a new value is the token from now on; the
   * value last refused, or a failed read, leaves the source without a token (`Failed`). A failed read
   * while a token is held keeps it.
   */
  reread(): Effect.Effect<AccessToken, TokenError> {
    return Effect.suspend(() => {
      if (!this.rereadable || this.stopped) {
        return this.current === undefined ? this.stateError() : Effect.succeed(this.current)
      }
      this.lastRead = Monotonic.unsafeNow(this.clock)
      return Effect.flatMap(
        Effect.either(this.read),
        (result) => Either.isLeft(result) ? this.readFailed(result.left) : this.readValue(result.right)
      )
    })
  }

  /** A read again that failed: the token held stays, else the source fails (once) saying why. */
  readFailed(error: unknown): Effect.Effect<AccessToken, TokenError> {
    const reason = readProblem(error)
    if (this.current !== undefined) return Effect.fail(reason)
    return Effect.flatMap(
      SubscriptionRef.get(this.state),
      (s) =>
        s._tag === "Failed" && s.error._tag === "ReauthorizationRequired" && s.error.reason !== undefined
          ? Effect.fail(s.error)
          : this.failWith(
            new ReauthorizationRequired({
              reason,
              detail: "the token was refused and a new one could not be read"
            })
          )
    )
  }

  /** A value read again: the token from now on, unless it is the one held or the one refused. */
  readValue(value: string): Effect.Effect<AccessToken, TokenError> {
    const held = this.current
    if (held !== undefined && (value === this.refused || value === Redacted.value(held.value))) {
      return Effect.succeed(held)
    }
    if (value === this.refused) {
      return Effect.flatMap(SubscriptionRef.get(this.state), (s) =>
        s._tag === "Failed"
          ? Effect.fail(s.error)
          : this.failWith(new ReauthorizationRequired({ detail: "the token was refused and no new one was given" })))
    }
    return Effect.tap(tokenOf(value, this.type), (token) => {
      this.current = token
      return Effect.zipRight(
        SubscriptionRef.set(this.state, TokenState.Valid({ token })),
        this.log(Effect.logInfo("a new token was read"))
      )
    })
  }

  /** The API refused `token` (or the one held): read the credential again, or fail when it was a value. */
  invalidate(token?: AccessToken): Effect.Effect<void> {
    return this.lock.withPermits(1)(Effect.suspend(() => {
      const held = this.current
      // a token already replaced (or none held): many 401s for one token cause one read
      if (held === undefined || (token !== undefined && Redacted.value(token.value) !== Redacted.value(held.value))) {
        return Effect.void
      }
      this.refused = Redacted.value(held.value)
      this.current = undefined
      const refusedLog = this.log(Effect.logWarning(
        this.rereadable
          ? "token refused; reading it again"
          : "token refused; it was given as a value, so a new one needs a restart"
      ))
      if (!this.rereadable) {
        return Effect.zipRight(
          refusedLog,
          Effect.ignore(this.failWith(
            new ReauthorizationRequired({
              detail: "the token was refused and no new one can be read: it was given as a value"
            })
          ))
        )
      }
      return Effect.zipRight(refusedLog, Effect.ignore(this.reread()))
    }))
  }
}

/**
 * Reads the credential once (a failure fails `make` with the reader's own error, a `ConfigError` naming
 * the variable, or `InvalidConfiguration` for a value that cannot be sent) and serves it as a token
 * without expiry.
 *
 * @internal
 */
export const make = <E = never>(options: Options<E>): Effect.Effect<TokenSource, E | InvalidConfiguration> =>
  Effect.gen(function*() {
    const { provider } = options
    // read again later from the caller's fiber: the ConfigProvider in force now is the one it is read from
    const configProvider = yield* Effect.configProviderWith(Effect.succeed)
    const read = readerOf(options, configProvider)
    const lastRead = yield* Monotonic.now
    const current = yield* tokenOf(yield* read, options.type)
    const holder = new Holder<E>({
      current,
      lastRead,
      read,
      rereadable: Effect.isEffect(options.credential),
      type: options.type,
      state: yield* SubscriptionRef.make<TokenState>(TokenState.Valid({ token: current })),
      lock: yield* Effect.makeSemaphore(1),
      clock: yield* Effect.clock
    }, provider)

    const get: Effect.Effect<AccessToken, TokenError> = dynamic(() =>
      holder.current !== undefined ? Exit.succeed(holder.current) : holder.readAgain
    )

    return {
      get,
      getValidFor: () => get,
      refresh: holder.lock.withPermits(1)(holder.reread()),
      invalidate: (token) => holder.invalidate(token),
      unsafeCurrent: () => holder.current,
      changes: holder.state.changes,
      state: SubscriptionRef.get(holder.state),
      provider,
      stop: Effect.sync(() => {
        holder.stopped = true
      })
    } satisfies TokenSource
  })
