import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { TokenError } from "../TokenError.js"
import * as E from "../TokenError.js"
import { ErrorResponse } from "../TokenResponse.js"
import { cleanOptional, MaxLength, type Sent } from "./scrub.js"

/**
 * What a failed (or undecodable) HTTP answer looked like, with the body already read and capped.
 *
 * @internal
 */
export interface Answer {
  readonly method: string
  readonly url: string
  readonly status: number
  readonly contentType: string | undefined
  readonly retryAfter: string | undefined
  /** The server's `Date` header (RFC 9110 section 6.6.1), as sent. */
  readonly date?: string | undefined
  readonly body: string
  /** Whether the body may be quoted: text of a textual content type, not compressed or binary bytes. */
  readonly textual: boolean
  readonly now: number
  /** The values the request carried: scrubbed from everything the server says. */
  readonly sent: Sent
}

/**
 * Parses Retry-After (RFC 9110 section 10.2.3): delay seconds or an HTTP date, relative to `now`.
 *
 * @internal
 */
export const parseRetryAfter = (value: string | undefined, now: number): Duration.Duration | undefined => {
  if (value === undefined || value.length > 64) return undefined
  const trimmed = value.trim()
  if (/^\d{1,10}$/.test(trimmed)) return Duration.seconds(Number(trimmed))
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? undefined : Duration.millis(Math.max(0, date - now))
}

// a Date header has whole seconds, and one within this of our clock is noise, not an offset; one
// further off than a day is more likely a broken header than a clock
const MIN_OFFSET = 5_000
const MAX_OFFSET = 24 * 3600_000

/**
 * How far our clock is ahead of the server's (milliseconds; negative when behind), from its `Date`
 * header as the answer arrived: 0 within 5 seconds; undefined without a usable header, or beyond a day.
 *
 * @internal
 */
export const serverClockOffset = (date: string | undefined, now: number): number | undefined => {
  if (date === undefined || date.length > 64) return undefined
  const server = Date.parse(date.trim())
  if (Number.isNaN(server)) return undefined
  const offset = now - server
  if (Math.abs(offset) > MAX_OFFSET) return undefined
  return Math.abs(offset) < MIN_OFFSET ? 0 : offset
}

/**
 * Parses a body as JSON (after a byte order mark, which some servers write), or gives undefined.
 *
 * @internal
 */
export const parseJson = (body: string): unknown => {
  try {
    return JSON.parse(body.charCodeAt(0) === 0xfeff ? body.slice(1) : body)
  } catch {
    return undefined
  }
}

const decodeError = Schema.decodeUnknownOption(ErrorResponse)

const oauthClasses = {
  invalid_request: E.InvalidRequest,
  invalid_client: E.InvalidClient,
  invalid_grant: E.InvalidGrant,
  unauthorized_client: E.UnauthorizedClient,
  unsupported_grant_type: E.UnsupportedGrantType,
  invalid_scope: E.InvalidScope,
  // RFC 8628 section 3.5: the device flow's two ways to end without a token
  access_denied: E.AccessDenied,
  expired_token: E.DeviceCodeExpired
} as const

// API error representations (Baack): {"code": "...", "message": "...", "errors": [{code, field, message}]}
const ApiErrorBody = Schema.Struct({
  code: Schema.NonEmptyString,
  message: Schema.optionalWith(Schema.String, { nullable: true }),
  errors: Schema.optionalWith(Schema.Array(Schema.Unknown), { nullable: true })
})
const decodeApiError = Schema.decodeUnknownOption(ApiErrorBody)
const decodeDetail = Schema.decodeUnknownOption(E.ApiErrorDetail)

/**
 * What the server said, cleaned for an error: its `error` or API `code`, description and URI.
 *
 * @internal
 */
export const said = (answer: Answer) => ({
  code: (u: unknown) => cleanOptional(u, answer.sent, MaxLength.code),
  description: (u: unknown) => cleanOptional(u, answer.sent, MaxLength.description)
})

/**
 * Turns an OAuth error body into its tagged error. Used for error statuses and for a 200 that
 * carries `error` (some servers answer errors that way).
 *
 * @internal
 */
export const fromOAuthError = (answer: Answer, body: ErrorResponse): TokenError => {
  const cleaned = said(answer)
  const fields = {
    method: answer.method,
    url: answer.url,
    status: answer.status,
    error: cleaned.code(body.error) ?? "unknown",
    description: cleaned.description(body.error_description),
    errorUri: cleaned.description(body.error_uri)
  }
  const retryAfter = parseRetryAfter(answer.retryAfter, answer.now)
  if (answer.status === 429) return new E.RateLimited({ ...fields, retryAfter })
  // RFC 6749 section 4.1.2.1 names these two as a server's way of saying "try again later"
  if (
    answer.status >= 500 || answer.status === 408 || body.error === "server_error" ||
    body.error === "temporarily_unavailable"
  ) {
    return new E.ServerError({ ...fields, retryAfter })
  }
  const Class = Object.prototype.hasOwnProperty.call(oauthClasses, body.error)
    ? oauthClasses[body.error as keyof typeof oauthClasses]
    : E.OAuthError
  return new Class(fields)
}

/**
 * Classifies an HTTP error answer: by the OAuth `error` the body names, else by status (401
 * `InvalidClient` per RFC 6749 section 5.2, 429 `RateLimited`, 408 and 5xx `ServerError`), else by the
 * API `code` the body names, else `MalformedResponse`.
 *
 * @internal
 */
export const fromErrorAnswer = (answer: Answer): TokenError => {
  const json = parseJson(answer.body)
  const oauth = decodeError(json)
  if (Option.isSome(oauth)) return fromOAuthError(answer, oauth.value)
  const base = { method: answer.method, url: answer.url, status: answer.status }
  const retryAfter = parseRetryAfter(answer.retryAfter, answer.now)
  if (answer.status === 429) return new E.RateLimited({ ...base, retryAfter })
  if (answer.status >= 500 || answer.status === 408) return new E.ServerError({ ...base, retryAfter })
  const api = decodeApiError(json)
  const cleaned = said(answer)
  // RFC 6749 section 5.2: a 401 means the client failed to authenticate, whatever representation the body uses
  if (answer.status === 401) {
    return new E.InvalidClient({
      ...base,
      error: "invalid_client",
      description: Option.isSome(api) ? cleaned.description(api.value.message) : undefined
    })
  }
  if (Option.isSome(api)) {
    const details = (api.value.errors ?? []).flatMap((d) =>
      Option.match(decodeDetail(d), {
        onNone: () => [],
        onSome: (detail) => [
          new E.ApiErrorDetail({
            code: cleaned.code(detail.code),
            field: cleaned.code(detail.field),
            message: cleaned.description(detail.message)
          })
        ]
      })
    )
    const fields = {
      ...base,
      code: cleaned.code(api.value.code) ?? "unknown",
      description: cleaned.description(api.value.message),
      details
    }
    return api.value.code === "INVALID_REPRESENTATION"
      ? new E.InvalidRepresentation(fields)
      : new E.BadRequest(fields)
  }
  return malformed(answer, json, `unexpected HTTP status ${answer.status}`)
}

/**
 * A `MalformedResponse` for an answer whose body was not read or must not be quoted (larger than the
 * cap, a redirect): the reason alone, no excerpt, no fields.
 *
 * @internal
 */
export const refused = (answer: Answer, reason: string): E.MalformedResponse =>
  new E.MalformedResponse({ ...where(answer), reason })

const where = (answer: Answer) => ({
  method: answer.method,
  url: answer.url,
  status: answer.status,
  contentType: cleanOptional(answer.contentType, answer.sent, MaxLength.code)
})

/**
 * A `MalformedResponse` for a body we could not use: of JSON only the field names are kept (a broken
 * token response still holds live tokens), of text a cleaned excerpt, of anything else nothing. A 2xx
 * without a body is transient: a proxy or a server restarting cut it short.
 *
 * @internal
 */
export const malformed = (
  answer: Answer,
  json: unknown,
  reason: string,
  retryable?: true
): E.MalformedResponse => {
  const base = { ...where(answer), ...(retryable === undefined ? {} : { retryable }) }
  if (json !== undefined) {
    const fields = typeof json === "object" && json !== null && !Array.isArray(json) ? Object.keys(json) : []
    const shape = Array.isArray(json) ? "a JSON array" : json === null ? "JSON null" : `a JSON ${typeof json}`
    return new E.MalformedResponse({
      ...base,
      reason: typeof json === "object" && json !== null && !Array.isArray(json) ? reason : `${reason}: ${shape}`,
      fields: fields.slice(0, 32).map((f) => cleanOptional(f, answer.sent, MaxLength.field) ?? "")
    })
  }
  if (answer.body === "") {
    const success = answer.status >= 200 && answer.status < 300
    return new E.MalformedResponse({ ...base, reason: `${reason}: empty body`, retryable: success || undefined })
  }
  return new E.MalformedResponse({
    ...base,
    reason: `${reason}: not JSON`,
    excerpt: answer.textual ? cleanOptional(answer.body, answer.sent, MaxLength.excerpt) : undefined
  })
}
