/**
 * The one place a token request is built, sent, decoded and classified. Everything above it deals
 * only in `AccessToken` and tagged errors.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { AccessToken, LifetimeSource } from "./AccessToken.js"
import * as ClientAuth from "./ClientAuth.js"
import * as Grant from "./Grant.js"
import * as Assertion from "./internal/assertion.js"
import * as ClientSecret from "./internal/clientSecret.js"
import { exchange, type Exchanged, successJson as acceptedJson } from "./internal/exchange.js"
import { fromErrorAnswer, fromOAuthError, malformed, serverClockOffset } from "./internal/failure.js"
import { peekExpiry } from "./internal/jwt.js"
import { isHeaderSafe, Sent } from "./internal/scrub.js"
import { checkEndpoint, publicUrl } from "./internal/url.js"
import { InvalidConfiguration, type TokenError, type TransportError } from "./TokenError.js"
import * as TokenMetrics from "./TokenMetrics.js"
import { ErrorResponse, TokenResponse } from "./TokenResponse.js"

/**
 * Options of a token endpoint.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The token endpoint; https, or http on a loopback host. */
  readonly url: string | URL
  readonly clientAuth: ClientAuth.ClientAuth
  /** How scopes are joined in the `scope` parameter; a space by default (RFC 6749 section 3.3). */
  readonly scopeSeparator?: string | undefined
  /** How long a request may take, answer included, before it fails as `TransportError`; 30 seconds by default. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The lifetime of a token whose response has no `expires_in` and whose value carries no JWT `exp`. */
  readonly defaultLifetime?: Duration.DurationInput | undefined
  /**
   * The longest lifetime believed: a token said to live longer is taken to expire after this, with a
   * warning; 366 days by default (a source passes its policy's `maxLifetime`).
   */
  readonly maxLifetime?: Duration.DurationInput | undefined
  /** Extra headers for every token request. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** A name for logs, spans and metrics; the endpoint's host by default. */
  readonly provider?: string | undefined
}

/**
 * A configured token endpoint.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenEndpoint {
  /** The endpoint as errors and logs show it (no query). */
  readonly url: string
  /** The name used in logs, spans and metrics. */
  readonly provider: string
  readonly clientAuth: ClientAuth.ClientAuth
  /**
   * Sends one token request. `previous` is the token this one replaces: its lifetime stands in when
   * the response gives none, and its refresh token is kept when the response carries no new one.
   */
  readonly request: (grant: Grant.Grant, previous?: AccessToken | undefined) => Effect.Effect<AccessToken, TokenError>
}

const decodeToken = Schema.decodeUnknownEither(TokenResponse)
const decodeError = Schema.decodeUnknownOption(ErrorResponse)
const knownFields = new Set(["access_token", "token_type", "expires_in", "refresh_token", "scope"])

// RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
const b64token = /^[\w.~+/-]+=*$/

// what a body that is no valid token response fails on, when it can be said without quoting a value
const whyInvalid = (json: object): string => {
  const { access_token, token_type } = json as { readonly access_token?: unknown; readonly token_type?: unknown }
  if (typeof access_token === "string" && access_token !== "" && !isHeaderSafe(access_token)) {
    return "not a valid token response: access_token holds characters a header cannot carry"
  }
  if (typeof token_type === "string" && token_type !== "" && !isHeaderSafe(token_type)) {
    return "not a valid token response: token_type holds characters a header cannot carry"
  }
  return "not a valid token response"
}

const scopesOf = (grant: Grant.Grant): ReadonlyArray<string> => grant.scopes

// the options of an endpoint, read and checked once by `make`
interface Settings {
  /** The endpoint as errors and logs show it (no query). */
  readonly url: string
  /** The endpoint requests are sent to. */
  readonly target: string
  readonly provider: string
  readonly clientAuth: ClientAuth.ClientAuth
  readonly separator: string
  readonly timeout: Duration.Duration
  readonly defaultLifetime: number | undefined
  readonly maxLifetime: number
  readonly headers: Readonly<Record<string, string>> | undefined
}

/** Reads the options, refusing an unusable URL, client authentication or `maxLifetime`. */
const settingsOf = (options: Options): Effect.Effect<Settings, InvalidConfiguration> =>
  Effect.gen(function*() {
    const parsed = yield* checkEndpoint(options.url)
    const clientAuth = yield* ClientAuth.validate(options.clientAuth)
    const maxLifetime = Duration.toMillis(options.maxLifetime ?? Duration.days(366))
    if (!(maxLifetime > 0) || !Number.isFinite(maxLifetime)) {
      return yield* new InvalidConfiguration({ reason: "maxLifetime must be a positive, finite duration" })
    }
    return {
      url: publicUrl(parsed),
      target: parsed.toString(),
      provider: options.provider ?? parsed.host,
      clientAuth,
      separator: options.scopeSeparator ?? " ",
      timeout: Duration.decode(options.timeout ?? Duration.seconds(30)),
      defaultLifetime: options.defaultLifetime === undefined ? undefined : Duration.toMillis(options.defaultLifetime),
      maxLifetime,
      headers: options.headers
    }
  })

/** A form-encoded POST of `params` to `target`. */
const formPost = (
  target: string,
  headers: Readonly<Record<string, string>>,
  params: ReadonlyArray<readonly [string, string]>
): HttpClientRequest.HttpClientRequest => {
  const form = new URLSearchParams()
  for (const [key, value] of params) form.append(key, value)
  // URLSearchParams writes a space as "+", the form encoding some providers' scope joiners rely on
  return HttpClientRequest.post(target).pipe(
    HttpClientRequest.setHeaders(headers),
    HttpClientRequest.bodyText(form.toString(), "application/x-www-form-urlencoded")
  )
}

/** Builds one token request (the grant's parameters, then client authentication) and what it sends, to scrub. */
const buildRequest = (
  settings: Settings,
  keys: Assertion.Keys,
  secrets: ClientSecret.Secrets,
  grant: Grant.Grant,
  previous: AccessToken | undefined
) =>
  Effect.gen(function*() {
    const context = { url: settings.url, now: yield* Clock.currentTimeMillis, keys, secrets }
    const auth = yield* ClientAuth.apply(settings.clientAuth, context)
    const params = [
      ...Grant.params(grant, settings.separator),
      ...yield* Grant.requestParams(grant, context),
      ...auth.params
    ]
    const headers = { ...settings.headers, ...auth.headers, accept: "application/json" }
    const request = formPost(settings.target, headers, params)
    return { request, sent: Sent.fromRequest({ params, headers, also: [previous?.value] }) }
  })

/**
 * Reads a token response out of an answer: a JSON object that decodes as one; otherwise the error it
 * is (an error status, an RFC 6749 error body under 200, a malformed body).
 */
const readAnswer = (
  exchanged: Exchanged
): Effect.Effect<{ readonly decoded: TokenResponse; readonly json: Record<string, unknown> }, TokenError> =>
  Effect.gen(function*() {
    const { answer } = exchanged
    const json = yield* successJson(exchanged)
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return yield* Effect.fail(malformed(answer, json, "not a token response"))
    }
    const decoded = decodeToken(json)
    if (Either.isLeft(decoded)) {
      // some servers answer errors with 200 and an RFC 6749 error body
      const error = decodeError(json)
      if (Option.isSome(error) && !("access_token" in json)) {
        return yield* Effect.fail(fromOAuthError(answer, error.value))
      }
      // never the ParseError's message: it prints the offending wire value, maybe a live token
      return yield* Effect.fail(malformed(answer, json, whyInvalid(json)))
    }
    return { decoded: decoded.right, json: json as Record<string, unknown> }
  })

/**
 * When a token expires and what says so: `expires_in`, else a JWT's `exp`, else the lifetime of the
 * token it replaces, else the default lifetime.
 */
const lifetimeOf = (
  decoded: TokenResponse,
  now: number,
  previous: AccessToken | undefined,
  offset: number | undefined,
  defaultLifetime: number | undefined
): { readonly expiresAt: number | undefined; readonly lifetimeSource: LifetimeSource } => {
  if (decoded.expires_in !== undefined) {
    return { expiresAt: now + decoded.expires_in * 1000, lifetimeSource: "expires_in" }
  }
  // a JWT's `exp` is on the server's clock: moved onto ours by the offset its Date header shows
  const jwtExpiry = peekExpiry(Redacted.value(decoded.access_token))
  if (jwtExpiry !== undefined) return { expiresAt: jwtExpiry + (offset ?? 0), lifetimeSource: "jwt" }
  const previousLifetime = previous?.expiresAt === undefined ? undefined : previous.expiresAt - previous.issuedAt
  if (previousLifetime !== undefined && previous?.lifetimeSource !== "default") {
    // a later response without expires_in never erases a lifetime the server told us before
    return { expiresAt: now + previousLifetime, lifetimeSource: "previous" }
  }
  if (defaultLifetime !== undefined) return { expiresAt: now + defaultLifetime, lifetimeSource: "default" }
  return { expiresAt: undefined, lifetimeSource: "none" }
}

/** The `AccessToken` a decoded response gives, its scopes and refresh token carried over when it has none. */
const toToken = (
  grant: Grant.Grant,
  decoded: TokenResponse,
  raw: Record<string, unknown>,
  now: number,
  previous: AccessToken | undefined,
  lifetime: { readonly expiresAt: number | undefined; readonly lifetimeSource: LifetimeSource },
  clockOffset: number | undefined
): AccessToken => {
  const extra: Record<string, unknown> = {}
  for (const key of Object.keys(raw)) if (!knownFields.has(key)) extra[key] = raw[key]
  return {
    value: decoded.access_token,
    type: decoded.token_type,
    issuedAt: now,
    expiresAt: lifetime.expiresAt,
    lifetimeSource: lifetime.lifetimeSource,
    scopes: decoded.scope ?? (grant._tag === "RefreshToken" && previous ? previous.scopes : scopesOf(grant)),
    // RFC 6749 section 6: a response without a new refresh token leaves the old one in force
    refreshToken: decoded.refresh_token ??
      (grant._tag === "RefreshToken" ? grant.refreshToken : previous?.refreshToken),
    extra: Redacted.make(extra),
    ...(clockOffset === undefined ? {} : { clockOffset })
  }
}

/**
 * The token as believed: one dead on arrival fails, one said to live longer than `maxLifetime` is
 * taken to end then, with a warning.
 */
const bounded = (
  settings: Settings,
  token: AccessToken,
  fail: () => TokenError,
  start: number,
  end: number
): Effect.Effect<AccessToken, TokenError> =>
  Effect.gen(function*() {
    // a token dead on arrival (a JWT whose `exp` has passed) would only be fetched again at once: a
    // transient failure instead, retried on the schedule
    if (token.expiresAt !== undefined && token.expiresAt <= end) return yield* Effect.fail(fail())
    if (token.expiresAt !== undefined && token.expiresAt - start > settings.maxLifetime) {
      yield* Effect.logWarning("token lifetime longer than maxLifetime; taken to end then").pipe(
        Effect.annotateLogs({ provider: settings.provider, lifetime_s: Math.round((token.expiresAt - start) / 1000) })
      )
      return { ...token, expiresAt: start + settings.maxLifetime }
    }
    return token
  })

/**
 * Builds a token endpoint; refuses an http:// URL on a non-loopback host and an unusable client
 * authentication before any request is sent.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<TokenEndpoint, InvalidConfiguration, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const settings = yield* settingsOf(options)
    const { clientAuth, provider, url } = settings
    const client = yield* HttpClient.HttpClient
    // RFC 6750 allows fewer characters than real providers put in their tokens: say so once, then go on
    let warnedSyntax = false
    const checkSyntax = (decoded: TokenResponse) =>
      Effect.suspend(() => {
        if (warnedSyntax || b64token.test(Redacted.value(decoded.access_token))) return Effect.void
        warnedSyntax = true
        return Effect.logWarning(
          "the access token is outside RFC 6750 b64token syntax; it is sent as it is (warned once per endpoint)"
        ).pipe(Effect.annotateLogs({ provider }))
      })

    // keys of JWT assertions, imported once; a key read from an effect is read again after a refusal
    const keys = new Assertion.Keys()
    // a client secret read from an effect, read at the first request and again after a refusal
    const secrets = new ClientSecret.Secrets()

    const send = (grant: Grant.Grant, previous: AccessToken | undefined) =>
      Effect.flatMap(
        buildRequest(settings, keys, secrets, grant, previous),
        ({ request, sent }) => exchange(client, request, { url, timeout: settings.timeout, sent })
      )

    const request = (grant: Grant.Grant, previous?: AccessToken) =>
      Effect.gen(function*() {
        const start = yield* Clock.currentTimeMillis
        const exit = yield* Effect.either(send(grant, previous))
        const end = yield* Clock.currentTimeMillis
        yield* Metric.update(TokenMetrics.refreshLatency.pipe(Metric.tagged("provider", provider)), end - start)
        if (Either.isLeft(exit)) return yield* Effect.fail(exit.left)
        const { answer } = exit.right
        const { decoded, json } = yield* readAnswer(exit.right)
        yield* checkSyntax(decoded)
        // the lifetime counts from when the request was sent: the server started it no earlier, so our
        // expiry is never later than the server's, however long the answer took to arrive
        const offset = serverClockOffset(answer.date, end)
        const lifetime = lifetimeOf(decoded, start, previous, offset, settings.defaultLifetime)
        const token = toToken(grant, decoded, json, start, previous, lifetime, offset)
        return yield* bounded(
          settings,
          token,
          () => malformed(answer, json, "the token had expired on arrival", true),
          start,
          end
        )
      }).pipe(
        // a refused assertion may be signed with a key rotated since, a refused client may hold a secret
        // rotated since: read them again next time
        Effect.tapError((error) =>
          error._tag === "InvalidClient"
            ? Effect.sync(() => {
              keys.forget()
              secrets.forget()
            })
            : error._tag === "InvalidGrant" && grant._tag === "JwtBearer"
            ? Effect.sync(() => keys.forget())
            : Effect.void
        ),
        Effect.withSpan("TokenEndpoint.request", {
          attributes: { provider, url, grant_type: Grant.grantType(grant) },
          kind: "client"
        })
      )

    return { url, provider, clientAuth, request } satisfies TokenEndpoint
  })

/**
 * One request to another endpoint of the authorization server (device authorization, revocation,
 * metadata): the same rules as token requests (https or loopback, no redirects, no trace headers, the
 * body read up to 1 MiB, a timeout), with client authentication when given.
 *
 * @internal
 */
export interface Call {
  readonly method: "GET" | "POST"
  readonly url: string | URL
  /** What the endpoint is, for configuration errors ("revocation endpoint"). */
  readonly what: string
  readonly clientAuth?: ClientAuth.ClientAuth | undefined
  readonly params?: ReadonlyArray<readonly [string, string]> | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * An answer to a `Call`, its body read (or found larger than the cap).
 *
 * @internal
 */
export type Called = Exchanged

/**
 * Sends a `Call`; fails only when no answer came (or the URL is refused before sending).
 *
 * @internal
 */
export const call = (
  options: Call
): Effect.Effect<Called, TransportError | InvalidConfiguration, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const parsed = yield* checkEndpoint(options.url, options.what)
    const auth = options.clientAuth === undefined
      ? { headers: {}, params: [] }
      : yield* ClientAuth.apply(yield* ClientAuth.validate(options.clientAuth), {
        url: publicUrl(parsed),
        now: yield* Clock.currentTimeMillis,
        keys: new Assertion.Keys(),
        secrets: new ClientSecret.Secrets()
      })
    const headers = { ...options.headers, ...auth.headers, accept: "application/json" }
    const params = [...(options.params ?? []), ...auth.params]
    const request = options.method === "GET"
      ? HttpClientRequest.get(parsed.toString()).pipe(HttpClientRequest.setHeaders(headers))
      : formPost(parsed.toString(), headers, params)
    return yield* exchange(yield* HttpClient.HttpClient, request, {
      url: publicUrl(parsed),
      timeout: options.timeout ?? Duration.seconds(30),
      sent: Sent.fromRequest({ params, headers })
    })
  })

/**
 * The JSON body of a 2xx answer (`undefined` when empty or not JSON); any other answer is classified
 * as token errors are: redirects and oversized bodies refused, error bodies by their OAuth `error`.
 *
 * @internal
 */
export const successJson = (called: Called): Effect.Effect<unknown, TokenError> => acceptedJson(called, fromErrorAnswer)
