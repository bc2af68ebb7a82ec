/**
 * The life of a token source, as a tagged union a consumer can match on (`TokenState.$match`).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Option from "effect/Option"
import type { AccessToken } from "./AccessToken.js"
import type { TokenError } from "./TokenError.js"

/**
 * - `Pending`: no token yet (or the last one was invalidated), a request is under way;
 * - `Valid`: a token;
 * - `Refreshing`: a request for the next token is under way, the token is still valid;
 * - `Retrying`: the last request failed transiently; the next attempt is at `nextAttemptAt` (Clock
 *   milliseconds), and `token` is there while it is still valid;
 * - `Failed`: a permanent error; the source waits for `refresh` and does not hammer the provider;
 * - `AwaitingUser`: a device flow (RFC 8628) waits for the user to open `verificationUri` (or
 *   `verificationUriComplete`, which carries the code) and enter `userCode` before `expiresAt` (Clock
 *   milliseconds). The user code is meant to be shown; it is not a secret.
 *
 * @since 0.1.0
 * @category models
 */
export type TokenState = Data.TaggedEnum<{
  Pending: {}
  Valid: { readonly token: AccessToken }
  Refreshing: { readonly token: AccessToken }
  Retrying: {
    readonly error: TokenError
    readonly attempt: number
    readonly nextAttemptAt: number
    readonly token: Option.Option<AccessToken>
  }
  Failed: { readonly error: TokenError; readonly token: Option.Option<AccessToken> }
  AwaitingUser: {
    readonly userCode: string
    readonly verificationUri: string
    readonly verificationUriComplete: Option.Option<string>
    readonly expiresAt: number
  }
}>

/**
 * Constructors, guards (`$is`) and `$match` for `TokenState`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const TokenState = Data.taggedEnum<TokenState>()

/**
 * The token a state holds, if any (it may have expired since: check `expiresAt`).
 *
 * @since 0.1.0
 * @category getters
 */
export const token = (self: TokenState): Option.Option<AccessToken> => {
  switch (self._tag) {
    case "Pending":
    case "AwaitingUser":
      return Option.none()
    case "Valid":
    case "Refreshing":
      return Option.some(self.token)
    case "Retrying":
    case "Failed":
      return self.token
  }
}
