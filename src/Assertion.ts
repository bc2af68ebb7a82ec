/**
 * Signed JWT assertions (RFC 7523): the keys they are signed with. Used by
 * `ClientAuth.privateKeyJwt` / `ClientAuth.clientSecretJwt` (a client proves who it is) and by
 * `Grant.jwtBearer` (a service account asks for a token). Signing is done by `jose`.
 *
 * @since 0.2.0
 */
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type { CryptoKey, JWK } from "jose"

/**
 * A private key as a value: a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) or a JWK's JSON, kept
 * `Redacted`; a private JWK as an object, `Redacted` too; or a `CryptoKey` (which can be made
 * non-extractable, so its material never reaches JavaScript at all).
 *
 * @since 0.2.0
 * @category models
 */
export type SigningKeyMaterial = Redacted.Redacted<string> | Redacted.Redacted<JWK> | CryptoKey

/**
 * A signing key, as a value or as an effect (for example `Config.redacted("SIGNING_KEY")` read from a
 * mounted file). An effect is evaluated again before the request that follows an `InvalidClient` (or,
 * for the JWT bearer grant, an `InvalidGrant`), so a key rotated at the server and in the file needs no
 * restart.
 *
 * @since 0.2.0
 * @category models
 */
export type SigningKey = SigningKeyMaterial | Effect.Effect<SigningKeyMaterial, unknown>

/**
 * The asymmetric algorithms a private key can sign with (RFC 7518, RFC 8037).
 *
 * @since 0.2.0
 * @category models
 */
export type PrivateKeyAlgorithm =
  | "RS256"
  | "RS384"
  | "RS512"
  | "PS256"
  | "PS384"
  | "PS512"
  | "ES256"
  | "ES384"
  | "ES512"
  | "EdDSA"

/**
 * The HMAC algorithms of `client_secret_jwt`.
 *
 * @since 0.2.0
 * @category models
 */
export type SecretAlgorithm = "HS256" | "HS384" | "HS512"
