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
 * A value that goes into an HTTP header as it is: visible ASCII, no space, no control character.
 * A token that cannot is refused when the response is decoded, not when it is first used.
 *
 * @since 0.1.0
 * @category schemas
 */
export const HeaderSafe = Schema.NonEmptyString.pipe(Schema.pattern(/^[\x21-\x7e]+$/))

/**
 * `token_type`, matched case-insensitively: any casing of `bearer` becomes `Bearer`, other types are
 * kept. It is written before the token in the `Authorization` header, so it must be header-safe.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TokenType = Schema.transform(HeaderSafe, Schema.String, {
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
 * A successful token response. Unknown fields are kept (the index signature), not dropped. An
 * optional field sent as `null` counts as absent, as many servers write it. The access token must be
 * header-safe (`HeaderSafe`); a token outside RFC 6750's stricter `b64token` syntax is accepted, as
 * real providers issue such tokens.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TokenResponse = Schema.Struct(
  {
    access_token: Schema.Redacted(HeaderSafe),
    token_type: TokenType,
    expires_in: Schema.optionalWith(ExpiresIn, { nullable: true }),
    refresh_token: Schema.optionalWith(Schema.Redacted(Schema.NonEmptyString), { nullable: true }),
    scope: Schema.optionalWith(Scope, { nullable: true })
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
 * An error response. Only `error` is required; the others are kept when they are strings (`null` counts
 * as absent). What they say is cleaned before an error keeps it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ErrorResponse = Schema.Struct({
  error: Schema.NonEmptyString,
  error_description: Schema.optionalWith(Schema.String, { nullable: true }),
  error_uri: Schema.optionalWith(Schema.String, { nullable: true })
})

/**
 * The decoded form of an error response.
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorResponse = typeof ErrorResponse.Type
