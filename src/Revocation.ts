/**
 * Token revocation (RFC 7009): tell the authorization server a token is no longer needed, and do it
 * when a token source's scope closes, so a daemon that shuts down leaves no live credential behind.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as ClientAuth from "./ClientAuth.js"
import * as TokenEndpoint from "./TokenEndpoint.js"
import type { TokenError } from "./TokenError.js"
import type { TokenSource } from "./TokenSource.js"
import * as TokenState from "./TokenState.js"

/**
 * `token_type_hint` (RFC 7009 section 2.1): which kind of token is revoked, to spare the server a search.
 *
 * @since 0.1.0
 * @category models
 */
export type TokenTypeHint = "refresh_token" | "access_token"

/**
 * Revokes one token (RFC 7009 section 2.1) at the revocation endpoint, with the client's
 * authentication. An HTTP 200 is success, also for a token the server did not know (section 2.2);
 * errors are classified as token endpoint errors are (`unsupported_token_type` is an `OAuthError`, a
 * 503 a transient `ServerError`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const revoke = (
  endpoint: string | URL,
  token: Redacted.Redacted<string>,
  hint: TokenTypeHint | undefined,
  clientAuth: ClientAuth.ClientAuth,
  options?: { readonly timeout?: Duration.DurationInput | undefined }
): Effect.Effect<void, TokenError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const params: Array<readonly [string, string]> = [["token", Redacted.value(token)]]
    if (hint !== undefined) params.push(["token_type_hint", hint])
    const called = yield* TokenEndpoint.call({
      method: "POST",
      url: endpoint,
      what: "revocation endpoint",
      clientAuth,
      params,
      timeout: options?.timeout
    })
    // RFC 7009 section 2.2: the content of a success is ignored
    yield* TokenEndpoint.successJson(called)
  }).pipe(Effect.withSpan("Revocation.revoke", { attributes: { token_type_hint: hint ?? "none" } }))

/**
 * Options of `revokeOnClose`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The revocation endpoint (a discovered `revocation_endpoint`). */
  readonly url: string | URL
  readonly clientAuth: ClientAuth.ClientAuth
  /**
   * Also revoke the access token after the refresh token; true by default. A server may revoke the
   * access tokens of a grant with its refresh token (RFC 7009 section 2.1), but need not.
   */
  readonly accessToken?: boolean | undefined
  /** How long each revocation may take at shutdown; 5 seconds by default. */
  readonly timeout?: Duration.DurationInput | undefined
}

const revokeCurrent = (source: TokenSource, options: Options) =>
  Effect.gen(function*() {
    const timeout = options.timeout ?? Duration.seconds(5)
    // no refresh may start once we revoke (it would bring a fresh live token, or fail on the revoked
    // one); one under way may rotate the refresh token: stop waits for it, so we revoke what it brings
    yield* source.stop.pipe(Effect.timeout(timeout), Effect.ignore)
    const token = TokenState.token(yield* source.state)
    if (Option.isNone(token)) return
    const tokens: Array<readonly [Redacted.Redacted<string>, TokenTypeHint]> = []
    if (token.value.refreshToken !== undefined) tokens.push([token.value.refreshToken, "refresh_token"])
    if (options.accessToken ?? true) tokens.push([token.value.value, "access_token"])
    for (const [value, hint] of tokens) {
      const exit = yield* Effect.exit(revoke(options.url, value, hint, options.clientAuth, { timeout }))
      if (Exit.isSuccess(exit)) {
        yield* Effect.logInfo("token revoked").pipe(Effect.annotateLogs({ token_type: hint }))
        continue
      }
      // only the error's tag and message: they carry the URL without query, the status and what the
      // server said, never the token
      const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
      yield* Effect.logWarning("token revocation failed; the token stays valid until it expires").pipe(
        Effect.annotateLogs({
          token_type: hint,
          error: Option.match(failure, { onNone: () => "defect", onSome: (e) => e._tag }),
          detail: Option.match(failure, { onNone: () => "unexpected failure", onSome: (e) => e.message })
        })
      )
    }
  }).pipe(Effect.annotateLogs({ provider: source.provider }))

/**
 * Adds a finalizer to the current scope that revokes the source's tokens when the scope closes: the
 * refresh token, then the access token. It stops the source's refresh first (after a request under
 * way, if any, has ended), so it revokes the tokens held then, rotated ones included, and no refresh
 * can bring a new live token after it. A failure is logged (without the token) and never
 * fails the shutdown. Call it after `TokenSource.make` in the same scope, so it runs while the
 * source is still open.
 *
 * @example
 * ```ts
 * const source = yield* TokenSource.make(options).pipe(
 *   Effect.flatMap(Revocation.revokeOnClose({ url: metadata.revocation_endpoint!, clientAuth }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const revokeOnClose: {
  (options: Options): (self: TokenSource) => Effect.Effect<TokenSource, never, HttpClient.HttpClient | Scope.Scope>
  (self: TokenSource, options: Options): Effect.Effect<TokenSource, never, HttpClient.HttpClient | Scope.Scope>
} = dual(
  2,
  (self: TokenSource, options: Options): Effect.Effect<TokenSource, never, HttpClient.HttpClient | Scope.Scope> =>
    Effect.as(
      Effect.flatMap(
        Effect.context<HttpClient.HttpClient>(),
        (context) =>
          Effect.addFinalizer(() =>
            revokeCurrent(self, options).pipe(
              Effect.provide(context),
              // a defect's cause may print what was sent: it is not logged
              Effect.catchAllCause(() => Effect.logWarning("token revocation failed unexpectedly"))
            )
          )
      ),
      self
    )
)

/**
 * A layer that revokes the tokens of the source under `tag` when it is released. Release runs in
 * reverse order of acquisition, so build it on top of the source's layer:
 * `Revocation.layer(Tag, options).pipe(Layer.provideMerge(sourceLayer))`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I>(
  tag: Context.Tag<I, TokenSource>,
  options: Options
): Layer.Layer<never, never, HttpClient.HttpClient | I> =>
  Layer.scopedDiscard(Effect.flatMap(tag, revokeOnClose(options)))
