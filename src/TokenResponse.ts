/**
 * Wire schemas for RFC 6749: the token response (section 5.1) and the error response (section 5.2).
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

// expires_in arrives as a number from most servers and as a string from some (Barracuda documents a
// String); only plain digits are a lifetime ("1e3", " 3600", "0x10", "-5" are not)
const Digits = Schema.String.pipe(Schema.pattern(/^\d{1,10}$/))

/**
 * `expires_in`: a positive whole number of seconds, as a JSON number or a string of digits.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ExpiresIn = Schema.Union(Schema.Int, Schema.compose(Digits, Schema.NumberFromString)).pipe(
  Schema.positive()
)

/**
 * `token_type`, matched case-insensitively: any casing of `bearer` becomes `Bearer`, other types are kept.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TokenType = Schema.transform(Schema.NonEmptyString, Schema.String, {
  strict: true,
  decode: (s) => s.toLowerCase() === "bearer" ? "Bearer" : s,
  encode: (s) => s
})

/**
 * `scope`: a space-separated string, decoded to its list of scopes.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Scope = Schema.transform(Schema.String, Schema.Array(Schema.String), {
  strict: true,
  decode: (s) => s.split(/\s+/).filter((x) => x !== ""),
  encode: (scopes) => scopes.join(" ")
})

/**
 * A successful token response. Unknown fields are kept (the index signature), not dropped.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TokenResponse = Schema.Struct(
  {
    access_token: Schema.Redacted(Schema.NonEmptyString),
    token_type: TokenType,
    expires_in: Schema.optional(ExpiresIn),
    refresh_token: Schema.optional(Schema.Redacted(Schema.NonEmptyString)),
    scope: Schema.optional(Scope)
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)

/**
 * The decoded form of a token response.
 *
 * @since 0.1.0
 * @category models
 */
export type TokenResponse = typeof TokenResponse.Type

/**
 * An error response. Only `error` is required; the others are kept when they are strings.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ErrorResponse = Schema.Struct({
  error: Schema.NonEmptyString,
  error_description: Schema.optional(Schema.String),
  error_uri: Schema.optional(Schema.String)
})

/**
 * The decoded form of an error response.
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorResponse = typeof ErrorResponse.Type
