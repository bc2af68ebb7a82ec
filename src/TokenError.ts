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

/** @internal */
export const TypeId: unique symbol = Symbol.for("tokenwarden/TokenError")

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

/**
 * RFC 6749 `invalid_request`: a parameter is missing, repeated or malformed.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>("tokenwarden/InvalidRequest")(
  "InvalidRequest",
  OAuthFields
) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return false
  }
  /** @since 0.1.0 */
  override get message(): string {
    return describe(this)
  }
}

/**
 * RFC 6749 `invalid_client`, or an HTTP 401 from the token endpoint: the client id or secret is wrong.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidClient extends Schema.TaggedError<InvalidClient>("tokenwarden/InvalidClient")(
  "InvalidClient",
  OAuthFields
) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return false
  }
  /** @since 0.1.0 */
  override get message(): string {
    return describe(this)
  }
}

/**
 * RFC 6749 `invalid_grant`: the code, password or refresh token was refused (expired, revoked, used).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidGrant extends Schema.TaggedError<InvalidGrant>("tokenwarden/InvalidGrant")(
  "InvalidGrant",
  OAuthFields
) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return false
  }
  /** @since 0.1.0 */
  override get message(): string {
    return describe(this)
  }
}

/**
 * RFC 6749 `unauthorized_client`: this client may not use this grant.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnauthorizedClient extends Schema.TaggedError<UnauthorizedClient>("tokenwarden/UnauthorizedClient")(
  "UnauthorizedClient",
  OAuthFields
) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return false
  }
  /** @since 0.1.0 */
  override get message(): string {
    return describe(this)
  }
}

/**
 * RFC 6749 `unsupported_grant_type`: the server does not know this grant.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnsupportedGrantType extends Schema.TaggedError<UnsupportedGrantType>("tokenwarden/UnsupportedGrantType")(
  "UnsupportedGrantType",
  OAuthFields
) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return false
  }
  /** @since 0.1.0 */
  override get message(): string {
    return describe(this)
  }
}

/**
 * RFC 6749 `invalid_scope`: a requested scope is unknown or exceeds what the client may have.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidScope extends Schema.TaggedError<InvalidScope>("tokenwarden/InvalidScope")(
  "InvalidScope",
  OAuthFields
) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return false
  }
  /** @since 0.1.0 */
  override get message(): string {
    return describe(this)
  }
}

/**
 * Any other OAuth error code, kept verbatim (`access_denied`, `authorization_pending`, a vendor code).
 *
 * @since 0.1.0
 * @category errors
 */
export class OAuthError extends Schema.TaggedError<OAuthError>("tokenwarden/OAuthError")("OAuthError", OAuthFields) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return false
  }
  /** @since 0.1.0 */
  override get message(): string {
    return describe(this)
  }
}

/**
 * One detail of an API error representation, for example
 * `{ "code": "REPRESENTATION_MISSING_REQUIRED_FIELD", "field": "owner.urn" }`.
 *
 * @since 0.1.0
 * @category models
 */
export class ApiErrorDetail extends Schema.Class<ApiErrorDetail>("tokenwarden/ApiErrorDetail")({
  code: Schema.optional(Schema.String),
  field: Schema.optional(Schema.String),
  message: Schema.optional(Schema.String)
}) {}

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
  extends Schema.TaggedError<InvalidRepresentation>("tokenwarden/InvalidRepresentation")(
    "InvalidRepresentation",
    ApiFields
  )
{
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return false
  }
  /** @since 0.1.0 */
  override get message(): string {
    const details = this.details.map((d) => [d.code, d.field].filter(Predicate.isNotUndefined).join(" ")).join(", ")
    return describe({ ...this, error: this.code }) + (details === "" ? "" : ` [${details}]`)
  }
}

/**
 * API code `BAD_REQUEST` (HTTP 400), or another API error code, kept in `code`.
 *
 * @since 0.1.0
 * @category errors
 */
export class BadRequest extends Schema.TaggedError<BadRequest>("tokenwarden/BadRequest")("BadRequest", ApiFields) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return false
  }
  /** @since 0.1.0 */
  override get message(): string {
    return describe({ ...this, error: this.code })
  }
}

/**
 * HTTP 429: the provider asks us to slow down; `retryAfter` is its Retry-After, parsed.
 *
 * @since 0.1.0
 * @category errors
 */
export class RateLimited extends Schema.TaggedError<RateLimited>("tokenwarden/RateLimited")("RateLimited", {
  ...Endpoint,
  status: Schema.Number,
  error: Schema.optional(Schema.String),
  description: Schema.optional(Schema.String),
  retryAfter: Schema.optional(Schema.DurationFromSelf)
}) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return true
  }
  /** @since 0.1.0 */
  override get message(): string {
    return describe(this) + (this.retryAfter === undefined ? "" : `, retry after ${this.retryAfter.toString()}`)
  }
}

/**
 * HTTP 5xx or 408, or the RFC codes `server_error` / `temporarily_unavailable`: worth retrying.
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerError extends Schema.TaggedError<ServerError>("tokenwarden/ServerError")("ServerError", {
  ...Endpoint,
  status: Schema.Number,
  error: Schema.optional(Schema.String),
  description: Schema.optional(Schema.String),
  retryAfter: Schema.optional(Schema.DurationFromSelf)
}) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return true
  }
  /** @since 0.1.0 */
  override get message(): string {
    return describe(this)
  }
}

/**
 * The request never got an HTTP answer: connection refused or reset, DNS failure, timeout.
 *
 * @since 0.1.0
 * @category errors
 */
export class TransportError extends Schema.TaggedError<TransportError>("tokenwarden/TransportError")("TransportError", {
  ...Endpoint,
  reason: Schema.Literal("Timeout", "Connection", "Encode", "Body"),
  /** The system error code, when there is one (`ECONNREFUSED`, `ECONNRESET`, `ENOTFOUND`). */
  code: Schema.optional(Schema.String)
}) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return true
  }
  /** @since 0.1.0 */
  override get message(): string {
    return `${this.method} ${this.url}: ${
      this.reason === "Timeout" ? "timed out" : this.reason === "Body" ? "response body broke off" : "request failed"
    }${this.code === undefined ? "" : ` (${this.code})`}`
  }
}

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
export class MalformedResponse extends Schema.TaggedError<MalformedResponse>("tokenwarden/MalformedResponse")(
  "MalformedResponse",
  {
    ...Endpoint,
    status: Schema.Number,
    contentType: Schema.optional(Schema.String),
    reason: Schema.String,
    fields: Schema.optional(Schema.Array(Schema.String)),
    excerpt: Schema.optional(Schema.String),
    /** Whether asking again may succeed: a 2xx without a body, which a proxy or a restarting server cut short. */
    retryable: Schema.optional(Schema.Boolean)
  }
) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return this.retryable === true
  }
  /** @since 0.1.0 */
  override get message(): string {
    const fields = this.fields === undefined ? "" : ` (fields: ${this.fields.join(", ") || "none"})`
    return `${describe(this)}: ${this.reason}${fields}`
  }
}

/**
 * The options do not describe a usable credential: an http:// URL that is not loopback, a client id
 * that cannot go into a Basic header, a redirect URI outside the registered callback. Found before
 * any request is sent.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidConfiguration
  extends Schema.TaggedError<InvalidConfiguration>("tokenwarden/InvalidConfiguration")("InvalidConfiguration", {
    reason: Schema.String
  })
{
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return false
  }
  /** @since 0.1.0 */
  override get message(): string {
    return this.reason
  }
}

/**
 * An authorization callback whose `state` differs from the one sent: the flow is cancelled (CSRF).
 *
 * @since 0.1.0
 * @category errors
 */
export class StateMismatch extends Schema.TaggedError<StateMismatch>("tokenwarden/StateMismatch")("StateMismatch", {}) {
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return false
  }
  /** @since 0.1.0 */
  override get message(): string {
    return "authorization callback state does not match the state sent: flow cancelled"
  }
}

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
  InvalidRepresentation,
  BadRequest,
  RateLimited,
  ServerError,
  TransportError,
  MalformedResponse,
  InvalidConfiguration,
  StateMismatch
)

/**
 * No unattended way to a new token remains: the refresh token was refused (or there is none) and the
 * grant needs a user. `reason` is the error that led here, when there was one.
 *
 * @since 0.1.0
 * @category errors
 */
export class ReauthorizationRequired
  extends Schema.TaggedError<ReauthorizationRequired>("tokenwarden/ReauthorizationRequired")(
    "ReauthorizationRequired",
    { reason: Schema.optional(Reason), detail: Schema.String }
  )
{
  readonly [TypeId] = TypeId
  /** @since 0.1.0 */
  get transient(): boolean {
    return false
  }
  /** @since 0.1.0 */
  override get message(): string {
    return `reauthorization required: ${this.detail}` + (this.reason === undefined ? "" : ` (${this.reason.message})`)
  }
}

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

/**
 * Whether a value is one of tokenwarden's errors.
 *
 * @since 0.1.0
 * @category guards
 */
export const isTokenError = (u: unknown): u is TokenError => Predicate.hasProperty(u, TypeId)

/**
 * Whether retrying the same request later may succeed (5xx, 429, transport); permanent errors are not retried.
 *
 * @since 0.1.0
 * @category guards
 */
export const isTransient = (error: TokenError): boolean => error.transient
