/**
 * Buddy (buddy.works): the web application flow (`authorization_code`, secret in the form body) and
 * client credentials (HTTP Basic, plain `base64(id:secret)`), both at `/oauth2/token`.
 *
 * Buddy documents no refresh token and lets users revoke a token at any time, and its sample response
 * has no `expires_in`. So a token is valid until the API refuses it (unless the response, a JWT
 * `exp` or the `defaultLifetime` option says otherwise); call `source.invalidate(token)` on the API's
 * 401. A client-credentials source then runs its grant again; a web-flow source cannot without the
 * user, and fails with `ReauthorizationRequired` (its `changes` show `Failed`).
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type { Scope as ResourceScope } from "effect/Scope"
import type { AccessToken } from "../AccessToken.js"
import * as AuthorizationCode from "../AuthorizationCode.js"
import * as ClientAuth from "../ClientAuth.js"
import * as Grant from "../Grant.js"
import { checkEndpoint, trimTrailingSlashes } from "../internal/url.js"
import type * as RefreshPolicy from "../RefreshPolicy.js"
import type { InvalidRequest, OAuthError, StateMismatch, TokenError } from "../TokenError.js"
import { InvalidConfiguration } from "../TokenError.js"
import * as TokenSource from "../TokenSource.js"
import { allScopes, isScope, type Scope } from "./BuddyScope.js"
import { rotatingSecret } from "./internal/config.js"
import { checkScopes } from "./internal/scopes.js"

/**
 * The scopes and their containments: `KnownScope`, `Scope`, `allScopes`, `isKnownScope`, `isScope`,
 * `implied`, `expand`, `covers`, `normalize`.
 *
 * @since 0.1.0
 */
export * from "./BuddyScope.js"

/**
 * `https://api.buddy.works`: the authorize and token endpoints are `/oauth2/authorize` and `/oauth2/token` below it.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBaseUrl = "https://api.buddy.works"

/**
 * What both flows' token sources share.
 *
 * @since 0.1.0
 * @category models
 */
export interface SourceOptions {
  readonly clientId: string
  /**
   * A `Redacted`, or an effect that reads it (`Config.redacted` over a mounted file): read again for
   * the attempt after the server refuses it, so a rotated secret needs no restart.
   */
  readonly clientSecret: ClientAuth.Secret
  /** `https://api.buddy.works` by default; https, or http on a loopback host (tests). */
  readonly baseUrl?: string | URL | undefined
  /**
   * The lifetime of a token whose response has no `expires_in` (Buddy's sample has none) and that is
   * not a JWT. None by default: such a token is valid until `invalidate`, since Buddy tokens end when
   * a user revokes them rather than on a schedule.
   */
  readonly defaultLifetime?: Duration.DurationInput | undefined
  readonly policy?: RefreshPolicy.RefreshPolicy | undefined
  readonly timeout?: Duration.DurationInput | undefined
  /** The name in logs and metrics; `buddy` by default. */
  readonly provider?: string | undefined
}

/**
 * Options of a client-credentials source (Buddy: "mainly to test the app by a developer").
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends SourceOptions {
  /**
   * Required by Buddy: at least one. The documented scopes are autocompleted; any other is sent as given,
   * with one warning when the source is built.
   */
  readonly scopes: ReadonlyArray<Scope>
  /** `plain` (`base64(id:secret)`, as Buddy's document shows) by default; `form` is RFC 6749 section 2.3.1. */
  readonly basicEncoding?: ClientAuth.BasicEncoding | undefined
}

/**
 * Options of the authorize step of the web flow.
 *
 * @since 0.1.0
 * @category models
 */
export interface AuthorizeOptions {
  readonly clientId: string
  /** Required by Buddy: at least one; a scope the document does not list is sent as given, with a warning. */
  readonly scopes: ReadonlyArray<Scope>
  /** The authorization callback URL registered with the application; required with `redirectUri`. */
  readonly callbackUrl?: string | undefined
  /**
   * Where Buddy sends the user back; without it, to the registered callback. It must have the
   * callback's scheme, host and port, and the callback's path or a path below it.
   */
  readonly redirectUri?: string | undefined
  readonly baseUrl?: string | URL | undefined
}

/**
 * Options of a web-flow source: the grant is the one `callback` gave.
 *
 * @since 0.1.0
 * @category models
 */
export interface WebFlowOptions extends SourceOptions {
  readonly grant: Grant.Grant
  /** Whose token this is; needed with a `TokenStore`, so two users' tokens are never shared. */
  readonly subject?: string | undefined
}

const endpoint = (baseUrl: string | URL | undefined, path: string) =>
  Effect.map(checkEndpoint(baseUrl ?? defaultBaseUrl, "Buddy base URL"), (url) => {
    url.pathname = trimTrailingSlashes(url.pathname) + path
    url.search = ""
    url.hash = ""
    return url.toString()
  })

// one warning per source (or authorization request) for the scopes the document does not list
const checkBuddyScopes = (scopes: ReadonlyArray<Scope>, provider: string | undefined) =>
  checkScopes({
    name: "Buddy",
    provider: provider ?? "buddy",
    scopes,
    known: allScopes,
    isValid: isScope,
    required: true
  })

// the raw path, percent-decoded until stable, so "%2e%2e" and "%252e%252e" count as ".." too
const hasDotSegment = (uri: string): boolean => {
  let path = /^[a-z][a-z0-9+.-]*:\/\/[^/?#\\]*([^?#]*)/i.exec(uri)?.[1] ?? ""
  for (let i = 0; i < 3; i++) {
    try {
      const decoded = decodeURIComponent(path)
      if (decoded === path) break
      path = decoded
    } catch {
      break
    }
  }
  return path.split(/[/\\]/).some((segment) => segment === "." || segment === "..")
}

const redirectProblem = (callbackUrl: string, redirectUri: string): string | undefined => {
  let callback: URL
  let redirect: URL
  try {
    callback = new URL(callbackUrl)
  } catch {
    return "the registered callback URL is not a valid URL"
  }
  try {
    redirect = new URL(redirectUri)
  } catch {
    return "redirect_uri is not a valid URL"
  }
  if (redirect.username !== "" || redirect.password !== "") return "redirect_uri must not carry credentials"
  // RFC 6749 section 3.1.2
  if (redirectUri.includes("#")) return "redirect_uri must not have a fragment"
  if (redirect.protocol !== callback.protocol) return "redirect_uri must have the callback URL's scheme"
  if (redirect.hostname !== callback.hostname) return "redirect_uri must have the callback URL's host"
  // the URL parser writes a scheme's default port as "", so https://h:443 and https://h compare equal
  if (redirect.port !== callback.port) return "redirect_uri must have the callback URL's port"
  if (hasDotSegment(redirectUri)) return "redirect_uri must not have '.' or '..' path segments"
  const base = callback.pathname.replace(/\/$/, "")
  const path = redirect.pathname
  if (path === callback.pathname || path === base || path.startsWith(base + "/")) return undefined
  return "redirect_uri must have the callback URL's path or a path below it"
}

/**
 * Buddy's redirect rule, made precise: the same scheme, host and port as the registered callback URL;
 * the callback's path or a path below it at a segment boundary (`/cb/x` is below `/cb`, `/cbx` is
 * not); no `.` or `..` segments, even percent-encoded; no fragment, no credentials.
 *
 * @since 0.1.0
 * @category guards
 */
export const isRedirectAllowed = (callbackUrl: string, redirectUri: string): boolean =>
  redirectProblem(callbackUrl, redirectUri) === undefined

/**
 * Checks a `redirect_uri` against the registered callback URL by `isRedirectAllowed`'s rule; the error
 * says which part differs.
 *
 * @since 0.1.0
 * @category validation
 */
export const checkRedirectUri = (callbackUrl: string, redirectUri: string): Effect.Effect<void, InvalidConfiguration> =>
  Effect.suspend(() => {
    const problem = redirectProblem(callbackUrl, redirectUri)
    return problem === undefined ? Effect.void : Effect.fail(new InvalidConfiguration({ reason: `Buddy: ${problem}` }))
  })

/**
 * The web flow's first step: the URL to send the user to, with `type=web_server`, `response_type=code`,
 * the scopes joined by `+` on the wire (the form encoding of a space), a fresh unguessable `state`, and
 * `redirect_uri` when given (checked first). Buddy documents no PKCE, so none is sent. Keep the request
 * until the callback arrives.
 *
 * @since 0.1.0
 * @category constructors
 */
export const authorize = (
  options: AuthorizeOptions
): Effect.Effect<AuthorizationCode.AuthorizationRequest, InvalidConfiguration> =>
  Effect.gen(function*() {
    if (options.clientId === "") return yield* new InvalidConfiguration({ reason: "Buddy: client id is empty" })
    const scopes = yield* checkBuddyScopes(options.scopes, undefined)
    if (options.redirectUri !== undefined) {
      if (options.callbackUrl === undefined) {
        return yield* new InvalidConfiguration({
          reason: "Buddy: a redirectUri needs the registered callbackUrl to be checked against"
        })
      }
      yield* checkRedirectUri(options.callbackUrl, options.redirectUri)
    }
    return yield* AuthorizationCode.authorize({
      authorizationEndpoint: yield* endpoint(options.baseUrl, "/oauth2/authorize"),
      clientId: options.clientId,
      redirectUri: options.redirectUri,
      scopes,
      // URLSearchParams writes a space as "+": the wire reads scope=A+B, never %2B
      scopeSeparator: " ",
      pkce: false,
      extraParams: { type: "web_server" }
    })
  })

/**
 * The web flow's second step: checks the callback's `state` against the request in constant time (a
 * mismatch fails with `StateMismatch` and nothing is sent) and gives the `authorization_code` grant,
 * carrying `redirect_uri` exactly when it was sent to authorize.
 *
 * @since 0.1.0
 * @category combinators
 */
export const callback: (
  request: AuthorizationCode.AuthorizationRequest,
  callback: string | URL | URLSearchParams
) => Effect.Effect<Grant.Grant, StateMismatch | OAuthError | InvalidRequest> = AuthorizationCode.callback

const sourceOptions = (options: SourceOptions, url: string) => ({
  url,
  provider: options.provider ?? "buddy",
  defaultLifetime: options.defaultLifetime,
  policy: options.policy,
  timeout: options.timeout
})

/**
 * A token source for the web flow: exchanges the code from `callback` once (secret in the form body).
 * Without a refresh token it cannot renew by itself: when the token is invalidated or expires, it
 * fails with `ReauthorizationRequired` and the user must go through `authorize` again.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWebFlow = (
  options: WebFlowOptions
): Effect.Effect<TokenSource.TokenSource, TokenError, HttpClient.HttpClient | ResourceScope> =>
  Effect.gen(function*() {
    if (options.grant._tag !== "AuthorizationCode") {
      return yield* new InvalidConfiguration({
        reason: "Buddy: the web flow takes the authorization_code grant that callback gives"
      })
    }
    const url = yield* endpoint(options.baseUrl, "/oauth2/token")
    return yield* TokenSource.make({
      ...sourceOptions(options, url),
      clientAuth: ClientAuth.post(options.clientId, options.clientSecret),
      grant: options.grant,
      subject: options.subject
    })
  })

/**
 * A layer with a web-flow source under the user's tag.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWebFlow = <I>(
  tag: Context.Tag<I, TokenSource.TokenSource>,
  options: WebFlowOptions
): Layer.Layer<I, TokenError, HttpClient.HttpClient> => Layer.scoped(tag, makeWebFlow(options))

/**
 * A client-credentials token source: HTTP Basic (plain encoding by default), `grant_type=client_credentials`,
 * `scope=A+B`. A refused token (`invalidate`) is replaced by running the grant again.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<TokenSource.TokenSource, TokenError, HttpClient.HttpClient | ResourceScope> =>
  Effect.gen(function*() {
    const scopes = yield* checkBuddyScopes(options.scopes, options.provider)
    const url = yield* endpoint(options.baseUrl, "/oauth2/token")
    return yield* TokenSource.make({
      ...sourceOptions(options, url),
      clientAuth: ClientAuth.basic(options.clientId, options.clientSecret, {
        encoding: options.basicEncoding ?? "plain"
      }),
      grant: Grant.clientCredentials({ scopes })
    })
  })

/**
 * A layer with a client-credentials source under the user's tag.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I>(
  tag: Context.Tag<I, TokenSource.TokenSource>,
  options: Options
): Layer.Layer<I, TokenError, HttpClient.HttpClient> => Layer.scoped(tag, make(options))

const optional = <A>(config: Config.Config<A>): Config.Config<A | undefined> => Config.withDefault(config, undefined)

// Buddy writes scope lists "divided with + character"; spaces and commas are accepted too. Any scope is
// read: the source checks them, and warns about those the document does not list, when it is built.
const scopesConfig = (name: string): Config.Config<ReadonlyArray<Scope>> =>
  Config.mapOrFail(Config.string(name), (text) => {
    const scopes = text.split(/[\s+,]+/).filter((scope) => scope !== "")
    return scopes.length === 0
      ? Either.left(ConfigError.InvalidData([name], "at least one Buddy scope is required"))
      : Either.right(scopes)
  })

/**
 * Client-credentials options from variables under a prefix (`BUDDY` by default): `BUDDY_CLIENT_ID`,
 * `BUDDY_CLIENT_SECRET` (redacted), `BUDDY_SCOPES` (`WORKSPACE+EXECUTION_RUN`, spaces or commas also
 * work; a scope the document does not list is accepted, with a warning when the source is built), and optionally `BUDDY_BASE_URL`, `BUDDY_BASIC_ENCODING` (`plain` or `form`) and
 * `BUDDY_DEFAULT_LIFETIME` (a duration such as `12 hours`).
 *
 * @since 0.1.0
 * @category config
 */
export const config = (prefix = "BUDDY"): Config.Config<Options> => {
  const name = (key: string) => prefix === "" ? key : `${prefix}_${key}`
  return Config.all({
    clientId: Config.nonEmptyString(name("CLIENT_ID")),
    clientSecret: rotatingSecret(name("CLIENT_SECRET")),
    scopes: scopesConfig(name("SCOPES")),
    baseUrl: optional(Config.string(name("BASE_URL"))),
    basicEncoding: optional(Config.literal("plain", "form")(name("BASIC_ENCODING"))),
    defaultLifetime: optional(Config.duration(name("DEFAULT_LIFETIME")))
  })
}

/**
 * A client-credentials layer whose options come from `Config` (`config("BUDDY")` by default). Missing
 * or invalid configuration fails with a `ConfigError` naming the variable, before any request.
 *
 * @example
 * ```ts
 * import { Context } from "effect"
 * import { Buddy, type TokenSource } from "tokenwarden"
 *
 * class CiToken extends Context.Tag("app/CiToken")<CiToken, TokenSource.TokenSource>() {}
 * // BUDDY_CI_CLIENT_ID, BUDDY_CI_CLIENT_SECRET, BUDDY_CI_SCOPES=EXECUTION_RUN+REPOSITORY_READ
 * const CiTokenLive = Buddy.layerConfig(CiToken, Buddy.config("BUDDY_CI"))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <I>(
  tag: Context.Tag<I, TokenSource.TokenSource>,
  options: Config.Config.Wrap<Options> = config()
): Layer.Layer<I, TokenError | ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.scoped(tag, Effect.flatMap(Config.unwrap(options), make))

/**
 * The scopes a token was granted: the response's `scope` when it had one, else those asked for. A
 * `+` inside an entry (a server writing Buddy's joiner in JSON) separates scopes too.
 *
 * @since 0.1.0
 * @category getters
 */
export const grantedScopes = (token: AccessToken): ReadonlyArray<string> =>
  token.scopes.flatMap((entry) => entry.split("+")).filter((scope) => scope !== "")
