/**
 * An `HttpClient` that authorizes every request to one API origin with a token from a `TokenSource`,
 * and recovers from a refused token: on an HTTP 401 it invalidates that token, takes a fresh one and
 * sends the request once more.
 *
 * The token goes only to the configured origin (scheme, host and port). A request for another origin
 * fails with `ForeignOrigin` by default, or is sent as it is, without the token, with
 * `otherOrigins: "withoutToken"`. Requests are sent with redirects not followed (fetch's are set to
 * `redirect: "manual"`; undici and node:http never follow), so a redirect comes back as a 3xx
 * response. To follow redirects, pipe the authorized client through `HttpClient.followRedirects`:
 * every hop then passes the origin check again, and a redirect to another origin never carries the
 * token. Do not wrap a client that follows redirects itself: it would carry the header along.
 *
 * @since 0.1.0
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as AccessToken from "./AccessToken.js"
import { cleanDescription } from "./internal/excerpt.js"
import { TaggedError } from "./internal/taggedError.js"
import { checkEndpoint, publicUrl } from "./internal/url.js"
import type { InvalidConfiguration, TokenError } from "./TokenError.js"
import type { TokenSource } from "./TokenSource.js"

/**
 * The API refused the request twice: with the token it had, and with a fresh one (or once, for a
 * request whose streamed body cannot be sent again). `error` and `description` are what the API's
 * `WWW-Authenticate` challenge said (RFC 6750 section 3), when it said anything.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthorized extends TaggedError<Unauthorized>("AuthorizedClient")("Unauthorized", {
  method: Schema.String,
  url: Schema.String,
  status: Schema.Number,
  error: Schema.optional(Schema.String),
  description: Schema.optional(Schema.String)
}, {
  transient: false,
  message: (self) => {
    const code = self.error === undefined ? "" : `: ${self.error}`
    const description = self.description === undefined ? "" : ` - ${self.description}`
    return `${self.method} ${self.url} (HTTP ${self.status}) refused a fresh token${code}${description}`
  }
}) {}

/**
 * A request for another origin than the one the client authorizes: refused before anything is sent,
 * so the token never leaves for a host it was not meant for.
 *
 * @since 0.1.0
 * @category errors
 */
export class ForeignOrigin extends TaggedError<ForeignOrigin>("AuthorizedClient")("ForeignOrigin", {
  method: Schema.String,
  url: Schema.String,
  origin: Schema.String
}, {
  transient: false,
  message: (self) => `${self.method} ${self.url}: not the authorized origin ${self.origin}; the token was not sent`
}) {}

/**
 * What an authorized request can fail with, besides the platform's `HttpClientError`.
 *
 * @since 0.1.0
 * @category models
 */
export type AuthorizedClientError = Unauthorized | ForeignOrigin | TokenError

/**
 * Options of an authorized client.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The API's origin (`https://api.example.com`; a path is ignored): https, or http on a loopback host. */
  readonly origin: string | URL
  /**
   * Requests for any other origin: `"fail"` with `ForeignOrigin` (the default), or `"withoutToken"`:
   * sent as they are, with no token (a redirect to a download host, say).
   */
  readonly otherOrigins?: "fail" | "withoutToken" | undefined
}

const MAX_DRAIN_BYTES = 64 * 1024

// read and drop (up to a cap) the body of a refused response, so its connection can be reused
const discard = (response: HttpClientResponse.HttpClientResponse) =>
  response.stream.pipe(
    Stream.runFoldWhile(0, (size) => size < MAX_DRAIN_BYTES, (size, chunk) => size + chunk.length),
    Effect.ignore
  )

// RFC 6750 section 3: `Bearer realm="x", error="invalid_token", error_description="expired"`
const challenge = (header: string | undefined, name: string): string | undefined => {
  if (header === undefined) return undefined
  const match = new RegExp(`(?:^|[\\s,])${name}="((?:[^"\\\\]|\\\\.)*)"`, "i").exec(header) ??
    new RegExp(`(?:^|[\\s,])${name}=([^\\s,"]+)`, "i").exec(header)
  return cleanDescription(match?.[1]?.replace(/\\(.)/g, "$1"))
}

// a streamed body is read once: such a request cannot be sent again
const replayable = (request: HttpClientRequest.HttpClientRequest) =>
  request.body._tag !== "Stream" && request.body._tag !== "Raw"

const originOf = (url: string): string | undefined => {
  try {
    return new URL(url).origin
  } catch {
    return undefined
  }
}

const isUnauthorizedStatus = (error: HttpClientError.HttpClientError) =>
  error._tag === "ResponseError" && error.response.status === 401

/**
 * Wraps the `HttpClient` in context: requests for `origin` carry `Authorization: <type> <token>`
 * from `source`; a 401 invalidates that token and the request is sent once more with a fresh one; a
 * second 401 fails with `Unauthorized`. Fails with `InvalidConfiguration` for an origin that is
 * neither https nor loopback.
 *
 * @example
 * ```ts
 * const api = yield* AuthorizedClient.make(source, { origin: "https://api.example.com" })
 * const me = yield* api.get("https://api.example.com/v1/me").pipe(
 *   Effect.flatMap(HttpClientResponse.schemaBodyJson(Me))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  source: TokenSource,
  options: Options
): Effect.Effect<
  HttpClient.HttpClient.With<HttpClientError.HttpClientError | AuthorizedClientError>,
  InvalidConfiguration,
  HttpClient.HttpClient
> =>
  Effect.gen(function*() {
    const origin = (yield* checkEndpoint(options.origin, "API origin")).origin
    const otherOrigins = options.otherOrigins ?? "fail"
    const inner = yield* HttpClient.HttpClient

    // the one place the token's value is unwrapped: its header on a request for `origin`
    const send = (request: HttpClientRequest.HttpClientRequest, token: AccessToken.AccessToken) =>
      inner.execute(HttpClientRequest.setHeader(request, "authorization", AccessToken.authorizationHeader(token))).pipe(
        // a client that fails on error statuses (filterStatusOk) still lets us see the 401
        Effect.catchIf(isUnauthorizedStatus, (error) =>
          Effect.succeed((error as HttpClientError.ResponseError).response)),
        Effect.provideServiceEffect(
          FetchHttpClient.RequestInit,
          Effect.map(Effect.serviceOption(FetchHttpClient.RequestInit), (init): globalThis.RequestInit => ({
            ...Option.getOrUndefined(init),
            redirect: "manual"
          }))
        )
      )

    const refused = (request: HttpClientRequest.HttpClientRequest, response: HttpClientResponse.HttpClientResponse) => {
      const header = response.headers["www-authenticate"]
      return new Unauthorized({
        method: request.method,
        url: publicUrl(request.url),
        status: response.status,
        error: challenge(header, "error"),
        description: challenge(header, "error_description")
      })
    }

    const execute = (
      request: HttpClientRequest.HttpClientRequest
    ): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError | AuthorizedClientError> =>
      Effect.gen(function*() {
        if (originOf(request.url) !== origin) {
          if (otherOrigins === "withoutToken") {
            return yield* inner.execute(request)
          }
          return yield* Effect.fail(new ForeignOrigin({ method: request.method, url: publicUrl(request.url), origin }))
        }
        const token = yield* source.get
        const first = yield* send(request, token)
        if (first.status !== 401) {
          return first
        }
        yield* discard(first)
        // given the refused token, concurrent 401s for it cause one refresh
        yield* source.invalidate(token)
        if (!replayable(request)) {
          return yield* Effect.fail(refused(request, first))
        }
        yield* Effect.logInfo("API refused the token; retrying with a fresh one").pipe(
          Effect.annotateLogs({ method: request.method, url: publicUrl(request.url) })
        )
        const second = yield* send(request, yield* source.get)
        if (second.status !== 401) {
          return second
        }
        yield* discard(second)
        return yield* Effect.fail(refused(request, second))
      })

    return HttpClient.makeWith(
      (effect: Effect.Effect<HttpClientRequest.HttpClientRequest>) =>
        Effect.flatMap(effect, execute),
      Effect.succeed
    )
  })

/**
 * Provides `HttpClient.HttpClient` as the authorized client around the one in context, with the
 * token source under the user's tag. Since that service can fail only with `HttpClientError`,
 * tokenwarden's errors arrive as a `RequestError` (reason `Transport`) whose `cause` is the typed
 * error (`Unauthorized`, `ForeignOrigin`, a `TokenError`); its `request` is the one given, without
 * the token.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <I>(
  tag: Context.Tag<I, TokenSource>,
  options: Options
): Layer.Layer<HttpClient.HttpClient, InvalidConfiguration, HttpClient.HttpClient | I> =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.gen(function*() {
      const source = yield* tag
      const client = yield* make(source, options)
      const execute = (request: HttpClientRequest.HttpClientRequest) =>
        Effect.catchAll(client.execute(request), (error) =>
          Effect.fail(
            HttpClientError.isHttpClientError(error)
              ? error
              : new HttpClientError.RequestError({
                request,
                reason: "Transport",
                cause: error,
                description: error.message
              })
          ))
      return HttpClient.makeWith(
        (effect: Effect.Effect<HttpClientRequest.HttpClientRequest>) => Effect.flatMap(effect, execute),
        Effect.succeed
      ) satisfies HttpClient.HttpClient
    })
  )
