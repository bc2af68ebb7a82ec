/**
 * Every way getting a token can fail, one tagged class per failure a user would handle differently.
 *
 * An error keeps what the server said about the failure (status, OAuth `error` code, a capped and
 * cleaned `error_description`, an API's own error representation, Retry-After), the method and the
 * URL without its query. It never keeps anything we sent, a token, or the platform's request or
 * response objects (their `String`/`JSON` forms print headers and bodies in clear).
 *
 * @since 0.1.0
 */
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { formatDuration } from "./internal/duration.js"
import * as internal from "./internal/taggedError.js"

const TaggedError = internal.TaggedError
const module = "TokenError"

/**
 * The mark every error of the library carries, from whatever module: `TokenError`, `AuthorizedClient`,
 * `Discovery`, `TokenStore`, the providers.
 *
 * @since 0.1.0
 * @category symbols
 */
export const TypeId: typeof internal.TypeId = internal.TypeId

/**
 * What every error of the library has: a `_tag` to `Effect.catchTag`, `transient` (whether the same
 * call may succeed later), a `message`, and the `TypeId` mark.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenwardenError extends internal.TokenwardenError {}

/**
 * Whether a value is any error the library fails with, from any module (an `Unauthorized` of
 * `AuthorizedClient`, a `StoreError`, a `MetadataNotFound`, …). `isTokenError` is narrower: the
 * token endpoint's errors only, the `TokenError` union.
 *
 * @since 0.1.0
 * @category guards
 */
export const isTokenwardenError: (u: unknown) => u is TokenwardenError = internal.isTokenwardenError

// where a failed request went: the method and the URL without its query or credentials
const Endpoint = {
  method: Schema.String,
  url: Schema.String
}

// what an authorization server said in an RFC 6749 section 5.2 error body
const OAuthFields = {
  ...Endpoint,
  status: Schema.Number,
  error: Schema.String,
  description: Schema.optional(Schema.String),
  errorUri: Schema.optional(Schema.String)
}

const describe = (self: {
  readonly method: string
  readonly url: string
  readonly status?: number | undefined
  readonly error?: string | undefined
  readonly description?: string | undefined
}): string => {
  const status = self.status === undefined ? "" : ` (HTTP ${self.status})`
  const code = self.error === undefined ? "" : `: ${self.error}`
  const description = self.description === undefined ? "" : ` - ${self.description}`
  return `${self.method} ${self.url}${status}${code}${description}`
}

// the rules of every RFC 6749 error a server sends: permanent, described by what the server said
const oauthRules = { transient: false, message: describe }

/**
 * RFC 6749 `invalid_request`: a parameter is missing, repeated or malformed.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRequest extends TaggedError<InvalidRequest>(module)("InvalidRequest", OAuthFields, oauthRules) {}

/**
 * RFC 6749 `invalid_client`, or an HTTP 401 from the token endpoint: the client id or secret is wrong.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidClient extends TaggedError<InvalidClient>(module)("InvalidClient", OAuthFields, oauthRules) {}

/**
 * RFC 6749 `invalid_grant`: the code, password or refresh token was refused (expired, revoked, used).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidGrant extends TaggedError<InvalidGrant>(module)("InvalidGrant", OAuthFields, oauthRules) {}

/**
 * RFC 6749 `unauthorized_client`: this client may not use this grant.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnauthorizedClient
  extends TaggedError<UnauthorizedClient>(module)("UnauthorizedClient", OAuthFields, oauthRules)
{}

/**
 * RFC 6749 `unsupported_grant_type`: the server does not know this grant.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedGrantType
  extends TaggedError<UnsupportedGrantType>(module)("UnsupportedGrantType", OAuthFields, oauthRules)
{}

/**
 * RFC 6749 `invalid_scope`: a requested scope is unknown or exceeds what the client may have.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidScope extends TaggedError<InvalidScope>(module)("InvalidScope", OAuthFields, oauthRules) {}

/**
 * Any other OAuth error code, kept verbatim (`access_denied`, `authorization_pending`, a vendor code).
 *
 * @since 0.1.0
 * @category errors
 */
export class OAuthError extends TaggedError<OAuthError>(module)("OAuthError", OAuthFields, oauthRules) {}

/**
 * RFC 8628 `access_denied`: the user refused the device authorization. The flow ends; a new one
 * needs the user again.
 *
 * @since 0.1.0
 * @category errors
 */
export class AccessDenied extends TaggedError<AccessDenied>(module)("AccessDenied", OAuthFields, oauthRules) {}

/**
 * RFC 8628 `expired_token`: the device code expired before the user approved (the server said so,
 * or the `expires_in` of the device authorization passed). Not an expired access token.
 *
 * @since 0.1.0
 * @category errors
 */
export class DeviceCodeExpired
  extends TaggedError<DeviceCodeExpired>(module)("DeviceCodeExpired", OAuthFields, oauthRules)
{}

/**
 * One detail of an API error representation, for example
 * `{ "code": "REPRESENTATION_MISSING_REQUIRED_FIELD", "field": "owner.urn" }`.
 *
 * @since 0.1.0
 * @category models
 */
export class ApiErrorDetail extends Schema.Class<ApiErrorDetail>("tokenwarden/TokenError/ApiErrorDetail")({
  code: Schema.optional(Schema.String),
  field: Schema.optional(Schema.String),
  message: Schema.optional(Schema.String)
}) {}

// an answer that asks to come back later: 429, 5xx, 408
const RetryFields = {
  ...Endpoint,
  status: Schema.Number,
  error: Schema.optional(Schema.String),
  description: Schema.optional(Schema.String),
  retryAfter: Schema.optional(Schema.DurationFromSelf)
}

const ApiFields = {
  ...Endpoint,
  status: Schema.Number,
  code: Schema.String,
  description: Schema.optional(Schema.String),
  details: Schema.Array(ApiErrorDetail)
}

/**
 * API code `INVALID_REPRESENTATION` (HTTP 400): the representation sent is invalid; `details` says why.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRepresentation
  extends TaggedError<InvalidRepresentation>(module)("InvalidRepresentation", ApiFields, {
    transient: false,
    message: (self) => {
      const details = self.details.map((d) => [d.code, d.field].filter(Predicate.isNotUndefined).join(" ")).join(", ")
      return describe({ ...self, error: self.code }) + (details === "" ? "" : ` [${details}]`)
    }
  })
{}

/**
 * API code `BAD_REQUEST` (HTTP 400), or another API error code, kept in `code`.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadRequest extends TaggedError<BadRequest>(module)("BadRequest", ApiFields, {
  transient: false,
  message: (self) => describe({ ...self, error: self.code })
}) {}

/**
 * HTTP 429: the provider asks us to slow down; `retryAfter` is its Retry-After, parsed.
 *
 * @since 0.1.0
 * @category errors
 */
export class RateLimited extends TaggedError<RateLimited>(module)("RateLimited", RetryFields, {
  transient: true,
  message: (self) =>
    describe(self) + (self.retryAfter === undefined ? "" : `, retry after ${formatDuration(self.retryAfter)}`)
}) {}

/**
 * HTTP 5xx or 408, or the RFC codes `server_error` / `temporarily_unavailable`: worth retrying.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerError extends TaggedError<ServerError>(module)("ServerError", RetryFields, {
  transient: true,
  message: describe
}) {}

/**
 * The request never got an HTTP answer: connection refused or reset, DNS failure, timeout.
 *
 * @since 0.1.0
 * @category errors
 */
export class TransportError extends TaggedError<TransportError>(module)("TransportError", {
  ...Endpoint,
  reason: Schema.Literal("Timeout", "Connection", "Encode", "Body"),
  /** The system error code, when there is one (`ECONNREFUSED`, `ECONNRESET`, `ENOTFOUND`). */
  code: Schema.optional(Schema.String)
}, {
  transient: true,
  message: (self) =>
    `${self.method} ${self.url}: ${
      self.reason === "Timeout" ? "timed out" : self.reason === "Body" ? "response body broke off" : "request failed"
    }${self.code === undefined ? "" : ` (${self.code})`}`
}) {}

/**
 * The server answered something that is neither a token nor an error we understand: an HTML page
 * from a proxy, truncated JSON, a JSON array, a token with `expires_in: -5`. Of a JSON body only the
 * field names are kept (a broken token response still holds live tokens); of a text body a short
 * excerpt, cleaned (see the README's security section); of a binary or compressed body nothing. It is
 * permanent, except for a 2xx without a body (`retryable`).
 *
 * @since 0.1.0
 * @category errors
 */
export class MalformedResponse extends TaggedError<MalformedResponse>(module)("MalformedResponse", {
  ...Endpoint,
  status: Schema.Number,
  contentType: Schema.optional(Schema.String),
  reason: Schema.String,
  fields: Schema.optional(Schema.Array(Schema.String)),
  excerpt: Schema.optional(Schema.String),
  /** Whether asking again may succeed: a 2xx without a body, which a proxy or a restarting server cut short. */
  retryable: Schema.optional(Schema.Boolean)
}, {
  transient: (self) => self.retryable === true,
  message: (self) => {
    const fields = self.fields === undefined ? "" : ` (fields: ${self.fields.join(", ") || "none"})`
    return `${describe(self)}: ${self.reason}${fields}`
  }
}) {}

/**
 * The options do not describe a usable credential: an http:// URL that is not loopback, a client id
 * that cannot go into a Basic header, a redirect URI outside the registered callback. Found before
 * any request is sent.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidConfiguration extends TaggedError<InvalidConfiguration>(module)("InvalidConfiguration", {
  reason: Schema.String
}, { transient: false, message: (self) => self.reason }) {}

/**
 * An authorization callback whose `state` differs from the one sent: the flow is cancelled (CSRF).
 *
 * @since 0.1.0
 * @category errors
 */
export class StateMismatch extends TaggedError<StateMismatch>(module)("StateMismatch", {}, {
  transient: false,
  message: () => "authorization callback state does not match the state sent: flow cancelled"
}) {}

/**
 * A worker's mirror of a token source lost its owner: the owner's scope closed, or its thread ended
 * (no word from it within the mirror's `ownerTimeout`). The mirror never sends token requests itself,
 * so nothing more will come.
 *
 * @since 0.2.0
 * @category errors
 */
export class OwnerGone extends TaggedError<OwnerGone>(module)("OwnerGone", {
  provider: Schema.String,
  detail: Schema.String
}, {
  transient: false,
  message: (self) => `the owner of the ${self.provider} token source is gone: ${self.detail}`
}) {}

/**
 * The errors a `ReauthorizationRequired` can carry as the reason that led to it.
 *
 * @since 0.1.0
 * @category models
 */
export const Reason = Schema.Union(
  InvalidRequest,
  InvalidClient,
  InvalidGrant,
  UnauthorizedClient,
  UnsupportedGrantType,
  InvalidScope,
  OAuthError,
  AccessDenied,
  DeviceCodeExpired,
  InvalidRepresentation,
  BadRequest,
  RateLimited,
  ServerError,
  TransportError,
  MalformedResponse,
  InvalidConfiguration,
  StateMismatch,
  OwnerGone
)

/**
 * No unattended way to a new token remains: the refresh token was refused (or there is none) and the
 * grant needs a user. `reason` is the error that led here, when there was one.
 *
 * @since 0.1.0
 * @category errors
 */
export class ReauthorizationRequired extends TaggedError<ReauthorizationRequired>(module)("ReauthorizationRequired", {
  reason: Schema.optional(Reason),
  detail: Schema.String
}, {
  transient: false,
  message: (self) =>
    `reauthorization required: ${self.detail}` + (self.reason === undefined ? "" : ` (${self.reason.message})`)
}) {}

/**
 * Every failure of a token source, as one union to match on with `Effect.catchTags`.
 *
 * @since 0.1.0
 * @category models
 */
export type TokenError = typeof Reason.Type | ReauthorizationRequired

/**
 * The schema of every `TokenError`, for encoding errors to JSON or across processes.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TokenError = Schema.Union(...Reason.members, ReauthorizationRequired)

const tokenErrorTags: ReadonlySet<string> = new Set(TokenError.members.map((member) => member._tag))

/**
 * Whether a value is one of the token endpoint's errors, the `TokenError` union (what a token source
 * fails with). For any error of the library, from any module, use `isTokenwardenError`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isTokenError = (u: unknown): u is TokenError => isTokenwardenError(u) && tokenErrorTags.has(u._tag)

/**
 * Whether retrying the same request later may succeed (5xx, 429, transport); permanent errors are not retried.
 *
 * @since 0.1.0
 * @category guards
 */
export const isTransient = (error: TokenError): boolean => error.transient
