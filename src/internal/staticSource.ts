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

/**
 * Reads the credential once (a failure fails `make` with the reader's own error, a `ConfigError` naming
 * the variable, or `InvalidConfiguration` for a value that cannot be sent) and serves it as a token
 * without expiry.
 *
 * @internal
 */
export const make = <E = never>(options: Options<E>): Effect.Effect<TokenSource, E | InvalidConfiguration> =>
  Effect.gen(function*() {
    const { credential, provider } = options
    const rereadable = Effect.isEffect(credential)
    // read again later from the caller's fiber: the ConfigProvider in force now is the one it is read from
    const configProvider = yield* Effect.configProviderWith(Effect.succeed)
    const read: Effect.Effect<string, E | InvalidConfiguration> = Effect.flatMap(
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
    const tokenOf = (value: string) =>
      Effect.map(Clock.currentTimeMillis, (now): AccessToken => ({
        value: Redacted.make(value),
        type: options.type ?? "Bearer",
        issuedAt: now,
        lifetimeSource: "none",
        scopes: [],
        extra: Redacted.make({})
      }))

    let lastRead = yield* Clock.currentTimeMillis
    let current: AccessToken | undefined = yield* tokenOf(yield* read)
    // the value the API last refused: reading it again is no new value
    let refused: string | undefined
    let stopped = false
    const state = yield* SubscriptionRef.make<TokenState>(TokenState.Valid({ token: current }))
    const lock = yield* Effect.makeSemaphore(1)
    const clock = yield* Effect.clock
    const log = Effect.annotateLogs({ provider })

    const failWith = (error: ReauthorizationRequired) =>
      Effect.suspend(() => {
        current = undefined
        return SubscriptionRef.set(state, TokenState.Failed({ error, token: Option.none() }))
      }).pipe(
        Effect.zipRight(
          Effect.logWarning("no usable token; reauthorization required").pipe(
            Effect.annotateLogs({ detail: error.detail }),
            log
          )
        ),
        Effect.zipRight(Effect.fail(error))
      )

    const stateError = Effect.flatMap(
      SubscriptionRef.get(state),
      (s): Effect.Effect<never, TokenError> =>
        Effect.fail(
          "error" in s ? s.error : new ReauthorizationRequired({ detail: "the source is stopped" })
        )
    )

    // Reads the credential again (the caller holds the lock): a new value is the token from now on; the
    // value last refused, or a failed read, leaves the source without a token (`Failed`). A failed read
    // while a token is held keeps it.
    const reread: Effect.Effect<AccessToken, TokenError> = Effect.suspend(() => {
      if (!rereadable || stopped) return current === undefined ? stateError : Effect.succeed(current)
      lastRead = clock.unsafeCurrentTimeMillis()
      return Effect.flatMap(Effect.either(read), (result) => {
        const held = current
        if (Either.isLeft(result)) {
          const reason = readProblem(result.left)
          if (held !== undefined) return Effect.fail(reason)
          return Effect.flatMap(
            SubscriptionRef.get(state),
            (s) =>
              s._tag === "Failed" && s.error._tag === "ReauthorizationRequired" && s.error.reason !== undefined
                ? Effect.fail(s.error)
                : failWith(
                  new ReauthorizationRequired({
                    reason,
                    detail: "the token was refused and a new one could not be read"
                  })
                )
          )
        }
        const value = result.right
        if (held !== undefined && (value === refused || value === Redacted.value(held.value))) {
          return Effect.succeed(held)
        }
        if (value === refused) {
          return Effect.flatMap(SubscriptionRef.get(state), (s) =>
            s._tag === "Failed"
              ? Effect.fail(s.error)
              : failWith(new ReauthorizationRequired({ detail: "the token was refused and no new one was given" })))
        }
        return Effect.tap(tokenOf(value), (token) => {
          current = token
          return Effect.zipRight(
            SubscriptionRef.set(state, TokenState.Valid({ token })),
            Effect.logInfo("a new token was read").pipe(log)
          )
        })
      })
    })

    // while Failed, a caller reads the credential again, but a loop of callers does not read it in a loop;
    // checked under the lock, so callers that waited for an `invalidate` take its outcome
    const readAgain = lock.withPermits(1)(Effect.suspend(() => {
      if (current !== undefined) return Effect.succeed(current)
      return clock.unsafeCurrentTimeMillis() - lastRead < REREAD_INTERVAL_MILLIS ? stateError : reread
    }))
    const get: Effect.Effect<AccessToken, TokenError> = dynamic(() =>
      current !== undefined ? Exit.succeed(current) : readAgain
    )

    const invalidate = (token?: AccessToken): Effect.Effect<void> =>
      lock.withPermits(1)(Effect.suspend(() => {
        const held = current
        // a token already replaced (or none held): many 401s for one token cause one read
        if (held === undefined || (token !== undefined && Redacted.value(token.value) !== Redacted.value(held.value))) {
          return Effect.void
        }
        refused = Redacted.value(held.value)
        current = undefined
        const refusedLog = Effect.logWarning(
          rereadable
            ? "token refused; reading it again"
            : "token refused; it was given as a value, so a new one needs a restart"
        ).pipe(log)
        if (!rereadable) {
          return Effect.zipRight(
            refusedLog,
            Effect.ignore(failWith(
              new ReauthorizationRequired({
                detail: "the token was refused and no new one can be read: it was given as a value"
              })
            ))
          )
        }
        return Effect.zipRight(refusedLog, Effect.ignore(reread))
      }))

    return {
      get,
      getValidFor: () => get,
      refresh: lock.withPermits(1)(reread),
      invalidate,
      unsafeCurrent: () => current,
      changes: state.changes,
      state: SubscriptionRef.get(state),
      provider,
      stop: Effect.sync(() => {
        stopped = true
      })
    } satisfies TokenSource
  })
