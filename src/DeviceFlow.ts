/**
 * The device authorization grant (RFC 8628) for programs without a browser: ask the server for a
 * device code and a user code, show the user where to enter it, and poll the token endpoint until
 * they approve. A token source runs this for `Grant.deviceCode` and shows the prompt through
 * `changes` as `TokenState.AwaitingUser`; the functions here are for running the flow by hand.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { AccessToken } from "./AccessToken.js"
import type * as ClientAuth from "./ClientAuth.js"
import * as Grant from "./Grant.js"
import { malformed } from "./internal/failure.js"
import * as Monotonic from "./internal/monotonic.js"
import * as TokenEndpoint from "./TokenEndpoint.js"
import type { TokenError } from "./TokenError.js"
import { type AccessDenied, DeviceCodeExpired } from "./TokenError.js"
import { ExpiresIn } from "./TokenResponse.js"

// what is shown to the user and logged: no control character (a forged log line, a terminal escape)
const Shown = Schema.NonEmptyString.pipe(
  Schema.maxLength(2048),
  Schema.pattern(/^[^\u0000-\u001f\u007f-\u009f\u2028-\u202e\u2066-\u2069]+$/)
)

/**
 * The device authorization response (RFC 8628 section 3.2). `verification_url` is Google's spelling
 * of `verification_uri`; either is accepted. Unknown fields are kept; an optional field sent as `null`
 * counts as absent. The user code and the URIs are shown and logged, so a control character in them
 * is refused.
 *
 * @since 0.1.0
 * @category schemas
 */
export const DeviceAuthorizationResponse = Schema.Struct(
  {
    device_code: Schema.Redacted(Schema.NonEmptyString),
    user_code: Shown,
    verification_uri: Schema.optionalWith(Shown, { nullable: true }),
    verification_url: Schema.optionalWith(Shown, { nullable: true }),
    verification_uri_complete: Schema.optionalWith(Shown, { nullable: true }),
    expires_in: ExpiresIn,
    interval: Schema.optionalWith(ExpiresIn, { nullable: true })
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)

/**
 * What the user has to do: open `verificationUri` and enter `userCode` (or open
 * `verificationUriComplete`, which carries the code) before `expiresAt` (Clock milliseconds). None of
 * it is secret: it is meant to be shown.
 *
 * @since 0.1.0
 * @category models
 */
export interface Prompt {
  readonly userCode: string
  readonly verificationUri: string
  readonly verificationUriComplete: Option.Option<string>
  readonly expiresAt: number
}

/**
 * A device authorization under way: the prompt, the secret device code to poll with, and the
 * polling interval the server asked for.
 *
 * @since 0.1.0
 * @category models
 */
export interface DeviceAuthorization {
  readonly prompt: Prompt
  readonly deviceCode: Redacted.Redacted<string>
  readonly interval: Duration.Duration
}

type DeviceCodeGrant = Extract<Grant.Grant, { readonly _tag: "DeviceCode" }>

/** RFC 8628 section 3.2: the interval when the server names none. */
const DEFAULT_INTERVAL_MILLIS = 5_000
/** RFC 8628 section 3.5: each `slow_down` adds 5 seconds to the interval. */
const SLOW_DOWN_MILLIS = 5_000
/** Transient failures double the interval (RFC 8628 section 3.5), up to this. */
const MAX_INTERVAL_MILLIS = 5 * 60_000

const decodeAuthorization = Schema.decodeUnknownEither(DeviceAuthorizationResponse)

/**
 * Sends the device authorization request (RFC 8628 section 3.1) with the client's authentication,
 * the grant's scopes and extra parameters.
 *
 * @since 0.1.0
 * @category constructors
 */
export const authorize = (options: {
  readonly grant: Grant.Grant
  readonly clientAuth: ClientAuth.ClientAuth
  readonly scopeSeparator?: string | undefined
  readonly timeout?: Duration.DurationInput | undefined
}): Effect.Effect<DeviceAuthorization, TokenError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const grant = options.grant
    if (grant._tag !== "DeviceCode") return yield* Effect.dieMessage("DeviceFlow.authorize needs a device code grant")
    const params: Array<readonly [string, string]> = []
    if (grant.scopes.length > 0) params.push(["scope", grant.scopes.join(options.scopeSeparator ?? " ")])
    for (const [key, value] of Object.entries(grant.extraParams)) params.push([key, value])
    const called = yield* TokenEndpoint.call({
      method: "POST",
      url: grant.deviceAuthorizationEndpoint,
      what: "device authorization endpoint",
      clientAuth: options.clientAuth,
      params,
      timeout: options.timeout
    })
    const json = yield* TokenEndpoint.successJson(called)
    const decoded = decodeAuthorization(json)
    const verificationUri = Either.isRight(decoded)
      ? decoded.right.verification_uri ?? decoded.right.verification_url
      : undefined
    if (Either.isLeft(decoded) || verificationUri === undefined) {
      // never the ParseError's message: it would print the device code
      return yield* Effect.fail(malformed(called.answer, json, "not a device authorization response"))
    }
    const body = decoded.right
    const now = yield* Clock.currentTimeMillis
    return {
      prompt: {
        userCode: body.user_code,
        verificationUri,
        verificationUriComplete: Option.fromNullable(body.verification_uri_complete),
        expiresAt: now + body.expires_in * 1000
      },
      deviceCode: body.device_code,
      interval: Duration.millis(body.interval === undefined ? DEFAULT_INTERVAL_MILLIS : body.interval * 1000)
    } satisfies DeviceAuthorization
  }).pipe(Effect.withSpan("DeviceFlow.authorize"))

const isCode = (error: TokenError, code: string) => error._tag === "OAuthError" && error.error === code

/**
 * Whether the user refused the device authorization (`access_denied`, RFC 8628 section 3.5).
 *
 * @deprecated The error is an `AccessDenied`: use `Effect.catchTag("AccessDenied", …)` or test `_tag`.
 * @since 0.1.0
 * @category guards
 */
export const isAccessDenied = (error: TokenError): error is AccessDenied => error._tag === "AccessDenied"

/**
 * Whether the device code expired before the user approved (`expired_token`, RFC 8628 section 3.5,
 * or the `expires_in` of the device authorization passed).
 *
 * @deprecated The error is a `DeviceCodeExpired`: use `Effect.catchTag("DeviceCodeExpired", …)` or test `_tag`.
 * @since 0.1.0
 * @category guards
 */
export const isExpired = (error: TokenError): error is DeviceCodeExpired => error._tag === "DeviceCodeExpired"

/**
 * Polls the token endpoint until the user approves (RFC 8628 section 3.4 and 3.5):
 * `authorization_pending` polls again after the interval, `slow_down` adds 5 seconds to it, a
 * transient failure (5xx, 429, no answer) doubles it; `access_denied`, `expired_token` and every other
 * error end the flow. Time comes from the Clock, so it runs under TestClock.
 *
 * @since 0.1.0
 * @category combinators
 */
export const poll = (
  endpoint: TokenEndpoint.TokenEndpoint,
  grant: Grant.Grant,
  authorization: DeviceAuthorization,
  previous?: AccessToken | undefined
): Effect.Effect<AccessToken, TokenError> =>
  Effect.gen(function*() {
    if (grant._tag !== "DeviceCode") return yield* Effect.dieMessage("DeviceFlow.poll needs a device code grant")
    const request = Grant.withDeviceCode(grant, authorization.deviceCode)
    // the code's expiry, moved onto the monotonic clock once: a system clock step changes nothing
    const clock = yield* Effect.clock
    const expiresAt = Monotonic.fromWall(clock, authorization.prompt.expiresAt)
    let interval = Duration.toMillis(authorization.interval)
    while (true) {
      const at = (yield* Monotonic.now) + interval
      if (at >= expiresAt) {
        yield* Monotonic.sleepUntil(expiresAt)
        return yield* Effect.fail(
          new DeviceCodeExpired({
            method: "POST",
            url: endpoint.url,
            status: 0,
            error: "expired_token",
            description: "the device code expired before the user approved"
          })
        )
      }
      yield* Monotonic.sleepUntil(at)
      const result = yield* Effect.either(endpoint.request(request, previous))
      if (Either.isRight(result)) return result.right
      const error = result.left
      if (isCode(error, "authorization_pending")) continue
      if (isCode(error, "slow_down")) {
        interval += SLOW_DOWN_MILLIS
        yield* Effect.logWarning("device flow: the server asked to slow down").pipe(
          Effect.annotateLogs({ interval_s: interval / 1000 })
        )
        continue
      }
      if (!error.transient) return yield* Effect.fail(error)
      const retryAfter = "retryAfter" in error && error.retryAfter !== undefined
        ? Duration.toMillis(error.retryAfter)
        : 0
      interval = Math.min(Math.max(interval * 2, retryAfter), MAX_INTERVAL_MILLIS)
      yield* Effect.logWarning("device flow: token request failed; polling less often").pipe(
        Effect.annotateLogs({ error: error._tag, detail: error.message, interval_s: interval / 1000 })
      )
    }
  }).pipe(Effect.withSpan("DeviceFlow.poll"))

/**
 * The whole flow: the device authorization request, `onPrompt` with what to show the user, then
 * polling until a token comes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = (
  endpoint: TokenEndpoint.TokenEndpoint,
  grant: Grant.Grant,
  options: {
    readonly onPrompt: (prompt: Prompt) => Effect.Effect<void>
    readonly previous?: AccessToken | undefined
  }
): Effect.Effect<AccessToken, TokenError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const authorization = yield* authorize({ grant, clientAuth: endpoint.clientAuth })
    const now = yield* Clock.currentTimeMillis
    yield* Effect.logInfo("device flow: waiting for the user").pipe(
      Effect.annotateLogs({
        user_code: authorization.prompt.userCode,
        verification_uri: authorization.prompt.verificationUri,
        expires_in_s: Math.round((authorization.prompt.expiresAt - now) / 1000)
      })
    )
    yield* options.onPrompt(authorization.prompt)
    return yield* poll(endpoint, grant, authorization, options.previous)
  })

/**
 * `run` for a token source, whose refresh fiber inherits the context `TokenSource.make` ran in, the
 * `HttpClient` included (`make` requires it).
 *
 * @internal
 */
export const runInSource = (
  endpoint: TokenEndpoint.TokenEndpoint,
  grant: DeviceCodeGrant,
  options: {
    readonly onPrompt: (prompt: Prompt) => Effect.Effect<void>
    readonly previous?: AccessToken | undefined
  }
): Effect.Effect<AccessToken, TokenError> =>
  Effect.flatMap(
    Effect.serviceOption(HttpClient.HttpClient),
    Option.match({
      onNone: () => Effect.dieMessage("DeviceFlow: the token source runs without an HttpClient"),
      onSome: (client) => Effect.provideService(run(endpoint, grant, options), HttpClient.HttpClient, client)
    })
  )
