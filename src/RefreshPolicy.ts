/**
 * When to refresh and how to retry: pure functions of a token's lifetime and a retry `Schedule`.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type { AccessToken } from "./AccessToken.js"
import type { TokenError } from "./TokenError.js"
import { InvalidConfiguration } from "./TokenError.js"

/**
 * A refresh policy.
 *
 * @since 0.1.0
 * @category models
 */
export interface RefreshPolicy {
  /**
   * The share of a token's lifetime left when it is refreshed: 0.25 refreshes a 1-hour token after
   * 45 minutes, a 366-day token after about 274 days, a 2-second token after 1.5 seconds.
   */
  readonly leadFraction: number
  /**
   * A random extra share of the lifetime added to the lead, so tokens issued together do not refresh
   * together.
   */
  readonly jitterFraction: number
  /** Refresh at least this long before expiry (capped at half the lifetime). */
  readonly minLead: Duration.Duration
  /** Refresh at most this long before expiry; unbounded by default. */
  readonly maxLead: Duration.Duration
  /**
   * A token is not handed out in the last stretch of its life (clock skew, time on the wire): at most
   * this long, and at most a tenth of its lifetime. While the provider is failing it still is, until
   * it expires: a token with seconds left serves a caller better than an error.
   */
  readonly expirySkew: Duration.Duration
  /** The retry schedule for transient failures; its delays, capped and jittered, space the attempts. */
  readonly retry: Schedule.Schedule<unknown, TokenError>
  /** The longest Retry-After honoured. */
  readonly maxRetryAfter: Duration.Duration
  /**
   * The longest lifetime believed: a token said to live longer (`expires_in: 1e12`, 31,700 years) is
   * taken to expire after this, with a warning.
   */
  readonly maxLifetime: Duration.Duration
  /**
   * How long a caller who finds no usable token waits for an attempt that is due (a retry after a
   * passing fault) before failing with the last error: a one-second blip never fails a caller.
   */
  readonly maxWait: Duration.Duration
  /**
   * The schedule after a permanent error, or after `retry` gave up: slow and jittered, so a source
   * that failed (a revoked client, a proxy's error page) heals by itself once the cause is gone.
   */
  readonly slowRetry: Schedule.Schedule<unknown, TokenError>
  /** How long closing the scope waits for a request under way, so its (rotated) token is kept. */
  readonly shutdownGrace: Duration.Duration
}

/**
 * The default retry schedule: exponential from 1 second, capped at 5 minutes, jittered, forever.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultRetry: Schedule.Schedule<unknown, TokenError> = Schedule.exponential("1 second").pipe(
  Schedule.union(Schedule.spaced("5 minutes")),
  Schedule.jittered
)

/**
 * The default slow schedule: from 1 minute, doubling up to an hour, jittered, forever.
 *
 * @since 0.2.0
 * @category constructors
 */
export const defaultSlowRetry: Schedule.Schedule<unknown, TokenError> = Schedule.exponential("1 minute").pipe(
  Schedule.union(Schedule.spaced("1 hour")),
  Schedule.jittered
)

/**
 * The default policy.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults: RefreshPolicy = {
  leadFraction: 0.25,
  jitterFraction: 0.1,
  minLead: Duration.seconds(30),
  maxLead: Duration.infinity,
  expirySkew: Duration.seconds(10),
  retry: defaultRetry,
  maxRetryAfter: Duration.hours(1),
  maxLifetime: Duration.days(366),
  maxWait: Duration.seconds(30),
  slowRetry: defaultSlowRetry,
  shutdownGrace: Duration.seconds(5)
}

/**
 * The settings of `make`, each optional over `defaults`; durations as `DurationInput` (milliseconds,
 * or a string such as `"30 seconds"`). Every field but `retry` is a plain value, which is what
 * `tokenwarden/node` passes through as its `policy` option.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The share of the lifetime left when a token is refreshed; 0.25 by default, at most 0.9. */
  readonly leadFraction?: number | undefined
  /** A random extra share of the lifetime added to the lead; 0.1 by default, at most 0.5. */
  readonly jitterFraction?: number | undefined
  /** Refresh at least this long before expiry (capped at half the lifetime); 30 seconds by default. */
  readonly minLead?: Duration.DurationInput | undefined
  /** Refresh at most this long before expiry; unbounded by default. */
  readonly maxLead?: Duration.DurationInput | undefined
  /** How long before expiry a token stops being handed out (at most a tenth of its lifetime); 10 seconds by default. */
  readonly expirySkew?: Duration.DurationInput | undefined
  /** The retry schedule for transient failures; `defaultRetry` by default. */
  readonly retry?: Schedule.Schedule<unknown, TokenError> | undefined
  /** The longest Retry-After honoured; 1 hour by default. */
  readonly maxRetryAfter?: Duration.DurationInput | undefined
  /** The longest lifetime believed (longer ones are clamped to it, with a warning); 366 days by default. */
  readonly maxLifetime?: Duration.DurationInput | undefined
  /** How long a caller waits for an attempt that is due, when no token is usable; 30 seconds by default. */
  readonly maxWait?: Duration.DurationInput | undefined
  /** The schedule after a permanent error; `defaultSlowRetry` (1 minute doubling to 1 hour) by default. */
  readonly slowRetry?: Schedule.Schedule<unknown, TokenError> | undefined
  /** How long closing the scope waits for a request under way; 5 seconds by default. */
  readonly shutdownGrace?: Duration.DurationInput | undefined
}

/**
 * A policy from partial options over the defaults.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: Options): RefreshPolicy => ({
  leadFraction: clamp(options?.leadFraction ?? defaults.leadFraction, 0, 0.9),
  jitterFraction: clamp(options?.jitterFraction ?? defaults.jitterFraction, 0, 0.5),
  minLead: options?.minLead === undefined ? defaults.minLead : Duration.decode(options.minLead),
  maxLead: options?.maxLead === undefined ? defaults.maxLead : Duration.decode(options.maxLead),
  expirySkew: options?.expirySkew === undefined ? defaults.expirySkew : Duration.decode(options.expirySkew),
  retry: options?.retry ?? defaults.retry,
  maxRetryAfter: options?.maxRetryAfter === undefined ? defaults.maxRetryAfter : Duration.decode(options.maxRetryAfter),
  maxLifetime: options?.maxLifetime === undefined ? defaults.maxLifetime : Duration.decode(options.maxLifetime),
  maxWait: options?.maxWait === undefined ? defaults.maxWait : Duration.decode(options.maxWait),
  slowRetry: options?.slowRetry ?? defaults.slowRetry,
  shutdownGrace: options?.shutdownGrace === undefined ? defaults.shutdownGrace : Duration.decode(options.shutdownGrace)
})

const optional = <A>(config: Config.Config<A>): Config.Config<A | undefined> => Config.withDefault(config, undefined)

/**
 * A policy read from configuration, every key optional over the defaults: `<prefix>_LEAD_FRACTION`,
 * `_JITTER_FRACTION`, `_MIN_LEAD`, `_MAX_LEAD`, `_EXPIRY_SKEW`, `_MAX_RETRY_AFTER`, `_MAX_LIFETIME`,
 * `_MAX_WAIT` and `_SHUTDOWN_GRACE` (durations such as `30 seconds`). For a source's `layerConfig`:
 * `policy: RefreshPolicy.config("CRM")`. A value that cannot be used fails `make` with
 * `InvalidConfiguration`, before any request.
 *
 * @since 0.2.0
 * @category constructors
 */
export const config = (prefix: string): Config.Config<RefreshPolicy> => {
  const name = (key: string) => `${prefix}_${key}`
  return Config.all({
    leadFraction: optional(Config.number(name("LEAD_FRACTION"))),
    jitterFraction: optional(Config.number(name("JITTER_FRACTION"))),
    minLead: optional(Config.duration(name("MIN_LEAD"))),
    maxLead: optional(Config.duration(name("MAX_LEAD"))),
    expirySkew: optional(Config.duration(name("EXPIRY_SKEW"))),
    maxRetryAfter: optional(Config.duration(name("MAX_RETRY_AFTER"))),
    maxLifetime: optional(Config.duration(name("MAX_LIFETIME"))),
    maxWait: optional(Config.duration(name("MAX_WAIT"))),
    shutdownGrace: optional(Config.duration(name("SHUTDOWN_GRACE")))
  }).pipe(Config.map(make))
}

/**
 * The policy if every duration in it can be used (not negative; a finite, positive `maxLifetime`; a
 * finite `maxWait` and `shutdownGrace`), else `InvalidConfiguration` naming the setting.
 *
 * @since 0.2.0
 * @category constructors
 */
export const validate = (policy: RefreshPolicy): Effect.Effect<RefreshPolicy, InvalidConfiguration> => {
  const refuse = (setting: string, rule: string) =>
    Effect.fail(new InvalidConfiguration({ reason: `RefreshPolicy.${setting} must be ${rule}` }))
  const millis = (d: Duration.Duration) => Duration.isFinite(d) ? Duration.toMillis(d) : Infinity
  for (const setting of ["minLead", "maxLead", "expirySkew", "maxRetryAfter"] as const) {
    if (!(millis(policy[setting]) >= 0)) return refuse(setting, "a duration of 0 or more")
  }
  for (const setting of ["maxWait", "shutdownGrace"] as const) {
    const value = millis(policy[setting])
    if (!(value >= 0) || !Number.isFinite(value)) return refuse(setting, "a finite duration of 0 or more")
  }
  const lifetime = millis(policy.maxLifetime)
  if (!(lifetime > 0) || !Number.isFinite(lifetime)) return refuse("maxLifetime", "a positive, finite duration")
  return Effect.succeed(policy)
}

const clamp = (n: number, min: number, max: number) => Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : min

/**
 * When to refresh a token, in Clock milliseconds, given a random number in [0, 1): undefined for a
 * token without expiry; never later than `usableUntil`.
 *
 * @since 0.1.0
 * @category getters
 */
export const refreshAt = (policy: RefreshPolicy, token: AccessToken, random: number): number | undefined => {
  if (token.expiresAt === undefined) return undefined
  const lifetime = Math.max(0, token.expiresAt - token.issuedAt)
  const lead = Math.min(
    Math.max(
      lifetime * (policy.leadFraction + random * policy.jitterFraction),
      Math.min(lifetime / 2, toMillis(policy.minLead))
    ),
    toMillis(policy.maxLead),
    lifetime
  )
  // never after the token stops being handed out (a `maxLead` under `expirySkew`): callers would wait
  return Math.min(token.expiresAt - lead, usableUntil(policy, token))
}

/**
 * Until when a token is handed out, in Clock milliseconds (`Infinity` without expiry).
 *
 * @since 0.1.0
 * @category getters
 */
export const usableUntil = (policy: RefreshPolicy, token: AccessToken): number => {
  if (token.expiresAt === undefined) return Infinity
  const lifetime = Math.max(0, token.expiresAt - token.issuedAt)
  return token.expiresAt - Math.min(toMillis(policy.expirySkew), lifetime / 10)
}

/**
 * How long to honour a Retry-After, capped by the policy.
 *
 * @since 0.1.0
 * @category getters
 */
export const retryAfterMillis = (policy: RefreshPolicy, error: TokenError): number => {
  const retryAfter = "retryAfter" in error ? error.retryAfter : undefined
  return retryAfter === undefined ? 0 : Math.min(Duration.toMillis(retryAfter), toMillis(policy.maxRetryAfter))
}

const toMillis = (d: Duration.Duration) => Duration.isFinite(d) ? Duration.toMillis(d) : Infinity
