/**
 * Token exchange (RFC 8693) that follows another token source: an agent acting for a user trades the
 * user's token for a downstream one. The downstream token is requested with the upstream source's
 * current token, refreshed when that token changes, and keyed by the upstream credential's identity,
 * never by its token.
 *
 * @since 0.2.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { AccessToken } from "./AccessToken.js"
import * as Grant from "./Grant.js"
import { InvalidConfiguration, type TokenError } from "./TokenError.js"
import * as TokenSource from "./TokenSource.js"
import * as TokenState from "./TokenState.js"

/**
 * Options of an exchange: the downstream endpoint and client, the upstream source, and the RFC 8693
 * parameters.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options extends Omit<TokenSource.Options, "grant">, Grant.TokenExchangeOptions {
  /** The source whose token is the subject token. */
  readonly upstream: TokenSource.TokenSource
}

// a new token from upstream: another value, or the same value issued again
const sameToken = (a: AccessToken, b: AccessToken): boolean =>
  a.issuedAt === b.issuedAt && Redacted.value(a.value) === Redacted.value(b.value)

/**
 * A token source whose grant is a token exchange of the upstream source's current token. A failing
 * upstream fails the exchange with the upstream's own typed error; each new upstream token triggers
 * one refresh of the downstream token.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<TokenSource.TokenSource, TokenError, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const { upstream } = options
    const subject = options.subject ?? (upstream.identity === undefined ? undefined : `upstream:${upstream.identity}`)
    if (subject === undefined) {
      return yield* new InvalidConfiguration({
        reason: "the upstream source has no credential identity: give the exchange a subject"
      })
    }
    const grant = Grant.tokenExchange({
      subjectToken: Effect.map(upstream.get, (token) => token.value),
      subjectTokenType: options.subjectTokenType,
      actorToken: options.actorToken,
      actorTokenType: options.actorTokenType,
      audience: options.audience,
      resource: options.resource,
      requestedTokenType: options.requestedTokenType,
      subject,
      scopes: options.scopes,
      extraParams: options.extraParams
    })
    const source = yield* TokenSource.make({ ...options, grant, subject: undefined })
    // the first state is the token the first request used; each later token is a new subject
    yield* upstream.changes.pipe(
      Stream.filterMap(TokenState.token),
      Stream.changesWith(sameToken),
      Stream.drop(1),
      Stream.runForEach(() => Effect.ignore(source.refresh)),
      Effect.forkScoped
    )
    return source
  }).pipe(Effect.withSpan("TokenExchange.make"))

/**
 * A layer that provides the exchanged source under the user's tag, following the source provided
 * under `upstream`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <I, U>(
  tag: Context.Tag<I, TokenSource.TokenSource>,
  upstream: Context.Tag<U, TokenSource.TokenSource>,
  options: Omit<Options, "upstream">
): Layer.Layer<I, TokenError, HttpClient.HttpClient | U> =>
  Layer.scoped(tag, Effect.flatMap(upstream, (source) => make({ ...options, upstream: source })))
