/**
 * The authorization code flow's user-agent half (RFC 6749 section 4.1, RFC 7636 PKCE): build the
 * authorize URL with a fresh `state` and code verifier, then check the callback and turn it into a
 * grant for `TokenSource`.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import * as Grant from "./Grant.js"
import { cleanOptional, MaxLength, Sent } from "./internal/scrub.js"
import { checkEndpoint, publicUrl } from "./internal/url.js"
import type { InvalidConfiguration } from "./TokenError.js"
import { InvalidRequest, OAuthError, StateMismatch } from "./TokenError.js"

/**
 * An authorization request under way: the URL to send the user to, and what the callback is checked
 * against. Keep it (in the user's session) until the callback arrives.
 *
 * @since 0.1.0
 * @category models
 */
export interface AuthorizationRequest {
  readonly url: string
  /** The unguessable `state` sent; the callback must bring it back unchanged. */
  readonly state: Redacted.Redacted<string>
  /** The PKCE code verifier (RFC 7636), when PKCE is used. */
  readonly codeVerifier: Redacted.Redacted<string> | undefined
  readonly redirectUri: string | undefined
  readonly scopes: ReadonlyArray<string>
}

/**
 * Options of an authorize URL.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly authorizationEndpoint: string | URL
  readonly clientId: string
  readonly redirectUri?: string | undefined
  readonly scopes?: ReadonlyArray<string> | undefined
  /** How scopes are joined; a space by default. */
  readonly scopeSeparator?: string | undefined
  /** PKCE with S256; on by default (RFC 9700 recommends it for every client). */
  readonly pkce?: boolean | undefined
  /** Extra query parameters some providers want (Buddy's `type=web_server`). */
  readonly extraParams?: Readonly<Record<string, string>> | undefined
}

const random = () => randomBytes(32).toString("base64url")

/**
 * Builds the authorize URL with a fresh `state` (and a PKCE S256 challenge unless turned off).
 *
 * @since 0.1.0
 * @category constructors
 */
export const authorize = (options: Options): Effect.Effect<AuthorizationRequest, InvalidConfiguration> =>
  Effect.gen(function*() {
    const url = yield* checkEndpoint(options.authorizationEndpoint, "authorization endpoint")
    const state = random()
    const scopes = options.scopes ?? []
    url.searchParams.set("response_type", "code")
    url.searchParams.set("client_id", options.clientId)
    if (options.redirectUri !== undefined) url.searchParams.set("redirect_uri", options.redirectUri)
    if (scopes.length > 0) url.searchParams.set("scope", scopes.join(options.scopeSeparator ?? " "))
    url.searchParams.set("state", state)
    let codeVerifier: Redacted.Redacted<string> | undefined
    if (options.pkce ?? true) {
      const verifier = random()
      codeVerifier = Redacted.make(verifier)
      url.searchParams.set("code_challenge", createHash("sha256").update(verifier).digest("base64url"))
      url.searchParams.set("code_challenge_method", "S256")
    }
    for (const [key, value] of Object.entries(options.extraParams ?? {})) url.searchParams.set(key, value)
    return {
      url: url.toString(),
      state: Redacted.make(state),
      codeVerifier,
      redirectUri: options.redirectUri,
      scopes
    }
  })

// constant time whatever the lengths: compare digests, so a wrong guess teaches nothing
const sameSecret = (a: string, b: string) =>
  timingSafeEqual(createHash("sha256").update(a).digest(), createHash("sha256").update(b).digest())

/**
 * Checks a callback (its URL, the request target a server sees such as `/callback?code=…`, or its
 * query) against the request: a different `state` fails with `StateMismatch` before anything is sent;
 * an `error` in the callback fails with the OAuth error it names. Gives the `authorization_code` grant
 * to exchange, with `redirect_uri` and the verifier.
 *
 * @since 0.1.0
 * @category combinators
 */
export const callback = (
  request: AuthorizationRequest,
  callback: string | URL | URLSearchParams
): Effect.Effect<Grant.Grant, StateMismatch | OAuthError | InvalidRequest> =>
  Effect.suspend((): Effect.Effect<Grant.Grant, StateMismatch | OAuthError | InvalidRequest> => {
    let params: URLSearchParams
    let where = "callback"
    try {
      // a server sees the callback as its request target ("/callback?code=…"), not an absolute URL
      const relative = typeof callback === "string" && !URL.canParse(callback)
      const url = typeof callback === "string"
        ? new URL(callback, relative ? "http://callback.invalid" : undefined)
        : callback instanceof URL
        ? callback
        : undefined
      params = url === undefined ? (callback as URLSearchParams) : url.searchParams
      if (url !== undefined) where = relative ? url.pathname : publicUrl(url)
    } catch {
      return Effect.fail(new InvalidRequest({ method: "GET", url: where, status: 0, error: "invalid_request" }))
    }
    const state = params.get("state")
    if (state === null || !sameSecret(state, Redacted.value(request.state))) return Effect.fail(new StateMismatch())
    const error = params.get("error")
    if (error !== null) {
      return Effect.fail(
        new OAuthError({
          method: "GET",
          url: where,
          status: 0,
          error: cleanOptional(error, Sent.empty, MaxLength.code) ?? "unknown",
          description: cleanOptional(params.get("error_description"), Sent.empty, MaxLength.description)
        })
      )
    }
    const code = params.get("code")
    if (code === null || code === "") {
      return Effect.fail(
        new InvalidRequest({
          method: "GET",
          url: where,
          status: 0,
          error: "invalid_request",
          description: "callback has no code"
        })
      )
    }
    return Effect.succeed(
      Grant.authorizationCode({
        code: Redacted.make(code),
        redirectUri: request.redirectUri,
        codeVerifier: request.codeVerifier,
        scopes: request.scopes
      })
    )
  })
