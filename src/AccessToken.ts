/**
 * The token model: what a token source hands to its callers.
 *
 * @since 0.1.0
 */
import * as Redacted from "effect/Redacted"

/**
 * An access token, its type and lifetime. The value and the refresh token are `Redacted`: they print
 * as `<redacted>` in logs, errors and JSON, and are unwrapped only where they go on the wire.
 *
 * @since 0.1.0
 * @category models
 */
export interface AccessToken {
  /** The access token itself. */
  readonly value: Redacted.Redacted<string>
  /** The token type, `Bearer` for nearly every provider (normalised from any casing). */
  readonly type: string
  /** When it was requested, in Clock milliseconds: its lifetime counts from then, never later than the server's. */
  readonly issuedAt: number
  /** When it expires, in Clock milliseconds; absent when the provider gave no lifetime and none could be inferred. */
  readonly expiresAt?: number | undefined
  /** Where `expiresAt` came from. */
  readonly lifetimeSource: LifetimeSource
  /** The scopes granted: the response's `scope`, else those requested (RFC 6749 section 5.1). */
  readonly scopes: ReadonlyArray<string>
  /** The refresh token that came with it (or an earlier one the response did not replace). */
  readonly refreshToken?: Redacted.Redacted<string> | undefined
  /**
   * The response's other fields (`id_token`, vendor fields), kept whole but redacted, since an unknown
   * field may be a credential.
   */
  readonly extra: Redacted.Redacted<Readonly<Record<string, unknown>>>
  /**
   * How far our clock was ahead of the token server's when the token arrived (milliseconds, negative
   * when behind; 0 within 5 seconds), from the response's `Date` header; absent without one. A process
   * that reads the token from a store moves its times onto its own clock by the difference.
   */
  readonly clockOffset?: number | undefined
}

/**
 * Where a token's expiry came from: the response's `expires_in`, the JWT's `exp` claim, the lifetime
 * of an earlier response, the configured default, or nowhere (valid until invalidated).
 *
 * @since 0.1.0
 * @category models
 */
export type LifetimeSource = "expires_in" | "jwt" | "previous" | "default" | "none"

/**
 * The value of an `Authorization` header for this token: `{tokenType} {accessToken}`.
 *
 * @since 0.1.0
 * @category getters
 */
export const authorizationHeader = (token: AccessToken): string => `${token.type} ${Redacted.value(token.value)}`

/**
 * Milliseconds left before the token expires at `now`, or `Infinity` when it has no known expiry.
 *
 * @since 0.1.0
 * @category getters
 */
export const remainingMillis = (token: AccessToken, now: number): number =>
  token.expiresAt === undefined ? Infinity : token.expiresAt - now

/**
 * Whether the token is still valid at `now` (always, when it has no known expiry).
 *
 * @since 0.1.0
 * @category guards
 */
export const isValidAt = (token: AccessToken, now: number): boolean =>
  token.expiresAt === undefined || now < token.expiresAt

/**
 * The token's lifetime as issued, in milliseconds, when it has one.
 *
 * @since 0.1.0
 * @category getters
 */
export const lifetimeMillis = (token: AccessToken): number | undefined =>
  token.expiresAt === undefined ? undefined : token.expiresAt - token.issuedAt
