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
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as AccessToken from "./AccessToken.js"
import { challengeParams } from "./internal/challenge.js"
import { cleanOptional, MaxLength, Sent } from "./internal/scrub.js"
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

const redactedValue = "<redacted>"

// the platform's errors keep the request (and the response keeps it too), and their String, JSON and
// inspect forms print its headers in clear outside a fiber: what reaches the user holds a copy whose
// credential-bearing headers say "<redacted>"
const withoutCredentials = (
  request: HttpClientRequest.HttpClientRequest,
  names: ReadonlyArray<string | RegExp>
): HttpClientRequest.HttpClientRequest => {
  let out = request
  for (const [name, value] of Object.entries(Headers.redact(request.headers, names))) {
    if (Redacted.isRedacted(value)) out = HttpClientRequest.setHeader(out, name, redactedValue)
  }
  return out
}

const redactedHeaders = (headers: Headers.Headers, names: ReadonlyArray<string | RegExp>): Headers.Headers =>
  Headers.fromInput(
    Object.fromEntries(
      Object.entries(Headers.redact(headers, names)).map((
        [name, value]
      ) => [name, Redacted.isRedacted(value) ? redactedValue : value])
    )
  )

// the response with the redacted request, printed with its credential-bearing headers redacted (and
// without its body); everything else (status, headers, body) is read from it as it was, and a failure
// to read the body is the same error with the redacted request and this response
const responseWithout = (
  response: HttpClientResponse.HttpClientResponse,
  request: HttpClientRequest.HttpClientRequest,
  names: ReadonlyArray<string | RegExp>
): HttpClientResponse.HttpClientResponse => {
  const json = () => ({
    _id: "@effect/platform/HttpClientResponse",
    request: request.toJSON(),
    status: response.status,
    headers: redactedHeaders(response.headers, names)
  })
  const self: HttpClientResponse.HttpClientResponse = Object.create(response, {
    request: { value: request },
    toJSON: { value: json },
    toString: { value: () => Inspectable.format(json()) },
    [Inspectable.NodeInspectSymbol]: { value: json }
  })
  const redact = (error: HttpClientError.ResponseError) =>
    new HttpClientError.ResponseError({
      request,
      response: self,
      reason: error.reason,
      ...(error.cause === undefined ? {} : { cause: error.cause }),
      ...(error.description === undefined ? {} : { description: error.description })
    })
  for (const body of ["json", "text", "arrayBuffer", "formData", "urlParamsBody"] as const) {
    Object.defineProperty(self, body, { get: () => Effect.mapError(response[body], redact) })
  }
  Object.defineProperty(self, "stream", { get: () => Stream.mapError(response.stream, redact) })
  return self
}

/**
 * The inner client's error with every credential-bearing header (`Headers.currentRedactedNames`,
 * `Authorization` among them) replaced by "<redacted>", in its request and its response.
 */
const redactError = (
  error: HttpClientError.HttpClientError,
  names: ReadonlyArray<string | RegExp>
): HttpClientError.HttpClientError => {
  const request = withoutCredentials(error.request, names)
  const fields = {
    request,
    ...(error.cause === undefined ? {} : { cause: error.cause }),
    ...(error.description === undefined ? {} : { description: error.description })
  }
  return error._tag === "RequestError"
    ? new HttpClientError.RequestError({ ...fields, reason: error.reason })
    : new HttpClientError.ResponseError({
      ...fields,
      reason: error.reason,
      response: responseWithout(error.response, request, names)
    })
}

// the platform's span around an API request records the response headers: a challenge can echo the
// token, a redirect's Location can carry one
const tracedNames = (names: ReadonlyArray<string | RegExp>) => [...names, "www-authenticate", "location"]

/**
 * Runs a request on the inner client. Its response and its errors come back holding the request
 * without credentials (so do the errors made from that response later, by `filterStatusOk` or a
 * schema), and its span records neither `WWW-Authenticate` nor `Location`.
 */
const executeRedacted = (
  inner: HttpClient.HttpClient,
  request: HttpClientRequest.HttpClientRequest
): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError> =>
  Effect.flatMap(FiberRef.get(Headers.currentRedactedNames), (names) =>
    inner.execute(request).pipe(
      Effect.mapBoth({
        onFailure: (error) => redactError(error, names),
        onSuccess: (response) => responseWithout(response, withoutCredentials(request, names), names)
      }),
      Effect.locally(Headers.currentRedactedNames, tracedNames(names))
    ))

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
      executeRedacted(
        inner,
        HttpClientRequest.setHeader(request, "authorization", AccessToken.authorizationHeader(token))
      ).pipe(
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

    // what the API's challenge says, cleaned of the tokens this request and the one before it carried
    const refused = (
      request: HttpClientRequest.HttpClientRequest,
      response: HttpClientResponse.HttpClientResponse,
      tokens: ReadonlyArray<AccessToken.AccessToken>
    ) => {
      const params = challengeParams(response.headers["www-authenticate"] ?? "")
      const sent = Sent.of(tokens.map((token) =>
        token.value
      ))
      return new Unauthorized({
        method: request.method,
        url: publicUrl(request.url),
        status: response.status,
        error: cleanOptional(params.get("error"), sent, MaxLength.code),
        description: cleanOptional(params.get("error_description"), sent, MaxLength.description)
      })
    }

    const execute = (
      request: HttpClientRequest.HttpClientRequest
    ): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError | AuthorizedClientError> =>
      Effect.gen(function*() {
        if (originOf(request.url) !== origin) {
          if (otherOrigins === "withoutToken") {
            return yield* executeRedacted(inner, request)
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
          return yield* Effect.fail(refused(request, first, [token]))
        }
        yield* Effect.logInfo("API refused the token; retrying with a fresh one").pipe(
          Effect.annotateLogs({ method: request.method, url: publicUrl(request.url) })
        )
        const fresh = yield* source.get
        const second = yield* send(request, fresh)
        if (second.status !== 401) {
          return second
        }
        yield* discard(second)
        return yield* Effect.fail(refused(request, second, [fresh, token]))
      })

    return HttpClient.makeWith(
      (effect: Effect.Effect<HttpClientRequest.HttpClientRequest>) => Effect.flatMap(effect, execute),
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
          HttpClientError.isHttpClientError(error)
            ? Effect.fail(error)
            : Effect.flatMap(FiberRef.get(Headers.currentRedactedNames), (names) =>
              Effect.fail(
                new HttpClientError.RequestError({
                  request: withoutCredentials(request, names),
                  reason: "Transport",
                  cause: error,
                  description: error.message
                })
              )))
      return HttpClient.makeWith(
        (effect: Effect.Effect<HttpClientRequest.HttpClientRequest>) => Effect.flatMap(effect, execute),
        Effect.succeed
      ) satisfies HttpClient.HttpClient
    })
  )
