/**
 * Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0): from an issuer URL to its
 * endpoints, checked, and from there to a token source.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Grant from "./Grant.js"
import { malformed } from "./internal/failure.js"
import { clean, MaxLength, Sent } from "./internal/scrub.js"
import { TaggedError } from "./internal/taggedError.js"
import { checkEndpoint, trimTrailingSlashes } from "./internal/url.js"
import * as TokenEndpoint from "./TokenEndpoint.js"
import type { TokenError } from "./TokenError.js"
import { InvalidConfiguration } from "./TokenError.js"
import * as TokenSource from "./TokenSource.js"

const Endpoint = Schema.NonEmptyString
const Names = Schema.Array(Schema.String)

/**
 * Authorization server metadata as the server writes it (RFC 8414 section 2): `issuer` and
 * `token_endpoint` are required here, the rest optional (`null` counts as absent); unknown fields are kept.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Metadata = Schema.Struct(
  {
    issuer: Schema.NonEmptyString,
    token_endpoint: Endpoint,
    authorization_endpoint: Schema.optionalWith(Endpoint, { nullable: true }),
    revocation_endpoint: Schema.optionalWith(Endpoint, { nullable: true }),
    introspection_endpoint: Schema.optionalWith(Endpoint, { nullable: true }),
    device_authorization_endpoint: Schema.optionalWith(Endpoint, { nullable: true }),
    jwks_uri: Schema.optionalWith(Endpoint, { nullable: true }),
    grant_types_supported: Schema.optionalWith(Names, { nullable: true }),
    token_endpoint_auth_methods_supported: Schema.optionalWith(Names, { nullable: true }),
    code_challenge_methods_supported: Schema.optionalWith(Names, { nullable: true }),
    scopes_supported: Schema.optionalWith(Names, { nullable: true }),
    response_types_supported: Schema.optionalWith(Names, { nullable: true })
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)

/**
 * The decoded metadata.
 *
 * @since 0.1.0
 * @category models
 */
export type Metadata = typeof Metadata.Type

/**
 * The metadata names another issuer than the one asked for: RFC 8414 section 3.3 forbids using it
 * (an attacker's metadata could point the client's secret at their own token endpoint).
 *
 * @since 0.1.0
 * @category errors
 */
export class IssuerMismatch extends TaggedError<IssuerMismatch>("Discovery")("IssuerMismatch", {
  url: Schema.String,
  expected: Schema.String,
  actual: Schema.String
}, {
  transient: false,
  message: (self) => `${self.url}: metadata of issuer "${self.actual}", expected "${self.expected}"`
}) {}

/**
 * No well-known URL of the issuer served metadata (each answered 4xx, or something that is not JSON).
 *
 * @since 0.1.0
 * @category errors
 */
export class MetadataNotFound extends TaggedError<MetadataNotFound>("Discovery")("MetadataNotFound", {
  issuer: Schema.String,
  tried: Schema.Array(Schema.String)
}, {
  transient: false,
  message: (self) => `no authorization server metadata for ${self.issuer} (tried ${self.tried.join(", ")})`
}) {}

/**
 * Every way discovery can fail.
 *
 * @since 0.1.0
 * @category models
 */
export type DiscoveryError = IssuerMismatch | MetadataNotFound | TokenError

/**
 * The URLs metadata is looked for at, in order: RFC 8414 section 3 (`/.well-known/oauth-authorization-server`
 * inserted between the host and the issuer's path), then OpenID Connect Discovery section 4
 * (`/.well-known/openid-configuration` appended to the issuer), then, for an issuer with a path, the
 * RFC 8414 section 5 form of the latter (inserted).
 *
 * @since 0.1.0
 * @category getters
 */
export const wellKnownUrls = (issuer: URL): ReadonlyArray<string> => {
  // RFC 8414 section 3: a terminating "/" is removed before inserting
  const path = trimTrailingSlashes(issuer.pathname)
  const urls = [
    `${issuer.origin}/.well-known/oauth-authorization-server${path}`,
    `${issuer.origin}${path}/.well-known/openid-configuration`,
    `${issuer.origin}/.well-known/openid-configuration${path}`
  ]
  return urls.filter((url, i) => urls.indexOf(url) === i)
}

const decodeMetadata = Schema.decodeUnknownEither(Metadata)

const endpointFields = [
  "token_endpoint",
  "authorization_endpoint",
  "revocation_endpoint",
  "introspection_endpoint",
  "device_authorization_endpoint",
  "jwks_uri"
] as const

/**
 * Options of a metadata request.
 *
 * @since 0.1.0
 * @category models
 */
export interface DiscoverOptions {
  /** How long each request may take; 30 seconds by default. */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * Fetches and checks the metadata of `issuer`: it must name exactly that issuer (the string given,
 * compared as is), and every endpoint in it must be https (or http on a loopback host). An answer of
 * 4xx (but 429), or a success that is not JSON (a web app's catch-all page), moves on to the next
 * well-known URL; a 5xx, a 429 or no answer fails at once with its transient error.
 *
 * @since 0.1.0
 * @category constructors
 */
export const discover = (
  issuer: string,
  options?: DiscoverOptions
): Effect.Effect<Metadata, DiscoveryError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const parsed = yield* checkEndpoint(issuer, "issuer")
    if (parsed.search !== "" || parsed.hash !== "" || issuer.includes("?") || issuer.includes("#")) {
      return yield* Effect.fail(new InvalidConfiguration({ reason: "issuer: must have no query or fragment" }))
    }
    const tried: Array<string> = []
    for (const url of wellKnownUrls(parsed)) {
      tried.push(url)
      const called = yield* TokenEndpoint.call({
        method: "GET",
        url,
        what: "metadata URL",
        timeout: options?.timeout ?? Duration.seconds(30)
      })
      const { status } = called.answer
      if (status >= 400 && status < 500 && status !== 429) continue
      const json = yield* TokenEndpoint.successJson(called)
      if (typeof json !== "object" || json === null || Array.isArray(json)) continue
      const decoded = decodeMetadata(json)
      if (Either.isLeft(decoded)) {
        return yield* Effect.fail(malformed(called.answer, json, "not valid authorization server metadata"))
      }
      const metadata = decoded.right
      if (metadata.issuer !== issuer) {
        return yield* Effect.fail(
          new IssuerMismatch({
            url: called.answer.url,
            expected: issuer,
            actual: clean(metadata.issuer, Sent.empty, MaxLength.description)
          })
        )
      }
      for (const field of endpointFields) {
        const endpoint = metadata[field]
        if (endpoint !== undefined) {
          // the reason quotes the server's URL: cleaned like anything else it says
          yield* checkEndpoint(endpoint, `${field} of ${issuer}`).pipe(
            Effect.mapError((e) =>
              new InvalidConfiguration({ reason: clean(e.reason, Sent.empty, MaxLength.description) })
            )
          )
        }
      }
      return metadata
    }
    return yield* Effect.fail(new MetadataNotFound({ issuer, tried }))
  }).pipe(Effect.withSpan("Discovery.discover", { attributes: { issuer } }))

/**
 * Options of a token source found by discovery: those of `TokenSource.make` without `url` (the
 * metadata's `token_endpoint`), and a grant that may be built from the metadata (the device flow
 * needs its `device_authorization_endpoint`).
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenSourceOptions extends Omit<TokenSource.Options, "url" | "grant"> {
  readonly grant: Grant.Grant | ((metadata: Metadata) => Grant.Grant)
  readonly discovery?: DiscoverOptions | undefined
}

/**
 * The `TokenSource.Options` for metadata already fetched.
 *
 * @since 0.1.0
 * @category constructors
 */
export const tokenSourceOptions = (metadata: Metadata, options: TokenSourceOptions): TokenSource.Options => {
  const { discovery: _, grant, ...rest } = options
  return { ...rest, url: metadata.token_endpoint, grant: typeof grant === "function" ? grant(metadata) : grant }
}

/**
 * Discovers `issuer`'s metadata, then builds a token source on its token endpoint.
 *
 * @example
 * ```ts
 * const source = yield* Discovery.tokenSource("https://login.example.com", {
 *   clientAuth: ClientAuth.basic("my-client", secret),
 *   grant: Grant.clientCredentials({ scopes: ["api"] })
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const tokenSource = (
  issuer: string,
  options: TokenSourceOptions
): Effect.Effect<TokenSource.TokenSource, DiscoveryError, HttpClient.HttpClient | Scope.Scope> =>
  Effect.flatMap(
    discover(issuer, options.discovery),
    (metadata) => TokenSource.make(tokenSourceOptions(metadata, options))
  )

/**
 * `tokenSource` as a layer, under a tag of the user's.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I>(
  tag: Context.Tag<I, TokenSource.TokenSource>,
  issuer: string,
  options: TokenSourceOptions
): Layer.Layer<I, DiscoveryError, HttpClient.HttpClient> => Layer.scoped(tag, tokenSource(issuer, options))
