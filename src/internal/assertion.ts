import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Jose from "jose"
import * as Crypto from "node:crypto"
import type { SigningKey, SigningKeyMaterial } from "../Assertion.js"
import type { Secret } from "../ClientAuth.js"
import { InvalidConfiguration } from "../TokenError.js"
import * as ClientSecret from "./clientSecret.js"

/**
 * A key ready to sign with: an imported private key, or the bytes of a shared secret (HMAC).
 *
 * @internal
 */
export type Imported = Jose.CryptoKey | Uint8Array

/**
 * What signs one kind of assertion: the key as the user gave it and the algorithm it is used with.
 *
 * @internal
 */
export type Signer =
  | { readonly _tag: "PrivateKey"; readonly key: SigningKey; readonly algorithm: string }
  | { readonly _tag: "Secret"; readonly secret: Secret; readonly algorithm: string }

/**
 * The claims of one assertion (RFC 7523 section 3), before signing.
 *
 * @internal
 */
export interface Claims {
  readonly issuer: string
  readonly subject: string
  readonly audience: string
  readonly lifetime: Duration.Duration
  readonly keyId: string | undefined
  readonly extra?: Readonly<Record<string, unknown>> | undefined
}

const isEffect = (u: SigningKey): u is Effect.Effect<SigningKeyMaterial, unknown> => Effect.isEffect(u)

// only our own words and jose's error code reach the message: a parser's message may quote the key
const refuse = (reason: string) => new InvalidConfiguration({ reason })
const codeOf = (error: unknown): string =>
  error instanceof Jose.errors.JOSEError ? ` (${error.code})` : error instanceof TypeError ? " (TypeError)" : ""

// Node's Web Crypto key class, a global since Node 17 (no DOM types here)
const isCryptoKey = (u: unknown): u is Jose.CryptoKey => {
  const Class = (globalThis as { readonly CryptoKey?: abstract new(...args: Array<never>) => unknown }).CryptoKey
  return Class !== undefined && u instanceof Class
}

const parseJwk = (text: string): Jose.JWK | undefined => {
  try {
    const parsed: unknown = JSON.parse(text)
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? parsed as Jose.JWK : undefined
  } catch {
    return undefined
  }
}

const importMaterial = (
  material: SigningKeyMaterial,
  algorithm: string
): Effect.Effect<Imported, InvalidConfiguration> => {
  if (!Redacted.isRedacted(material)) {
    return isCryptoKey(material)
      ? Effect.succeed(material)
      : Effect.fail(refuse("the signing key is neither a PEM, a JWK nor a CryptoKey"))
  }
  const value: string | Jose.JWK = Redacted.value(material as Redacted.Redacted<string | Jose.JWK>)
  const load = (): Promise<Imported> | undefined => {
    if (typeof value !== "string") {
      return typeof value === "object" && value !== null
        ? Jose.importJWK(value, algorithm) as Promise<Imported>
        : undefined
    }
    const text = value.trim()
    if (text.startsWith("-----BEGIN PRIVATE KEY-----")) return Jose.importPKCS8(text, algorithm)
    if (text.startsWith("-----BEGIN")) return undefined
    const jwk = parseJwk(text)
    return jwk === undefined ? undefined : Jose.importJWK(jwk, algorithm) as Promise<Imported>
  }
  return Effect.suspend(() => {
    const loading = load()
    if (loading === undefined) {
      return Effect.fail(refuse("the signing key is neither a PKCS#8 PEM (BEGIN PRIVATE KEY) nor a JWK"))
    }
    return Effect.tryPromise({
      try: () => loading,
      catch: (error) => refuse(`the signing key cannot be imported for ${algorithm}${codeOf(error)}`)
    })
  })
}

/**
 * The HMAC key of a client secret: the only place the secret of `client_secret_jwt` is unwrapped.
 *
 * @internal
 */
export const hmacKey = (secret: Redacted.Redacted<string>): Imported => new TextEncoder().encode(Redacted.value(secret))

/**
 * Imports the key of a signer. A key given as an effect is evaluated here, so each call reads it again.
 *
 * @internal
 */
export const importKey = (signer: Signer): Effect.Effect<Imported, InvalidConfiguration> => {
  if (signer._tag === "Secret") return Effect.map(ClientSecret.read(signer.secret), hmacKey)
  const key = signer.key
  if (!isEffect(key)) return importMaterial(key, signer.algorithm)
  return key.pipe(
    Effect.mapError(() => refuse("the signing key could not be read")),
    Effect.flatMap((material) => importMaterial(material, signer.algorithm))
  )
}

/**
 * Whether the signer's key is read from an effect (and so may change after a rotation).
 *
 * @internal
 */
export const isRotating = (signer: Signer): boolean =>
  signer._tag === "PrivateKey" ? isEffect(signer.key) : ClientSecret.isRead(signer.secret)

/**
 * Keys imported once and kept per signer; `forget` drops those read from an effect, so the next use
 * reads them again (after the server refused them).
 *
 * @internal
 */
export class Keys {
  readonly #imported = new Map<Signer, Imported>()

  /** The imported key of a signer, importing it on first use. */
  get(signer: Signer): Effect.Effect<Imported, InvalidConfiguration> {
    return Effect.suspend(() => {
      const known = this.#imported.get(signer)
      if (known !== undefined) return Effect.succeed(known)
      return Effect.tap(importKey(signer), (imported) => void this.#imported.set(signer, imported))
    })
  }

  /** A fresh assertion signed with the signer's key (imported on first use). */
  sign(
    signer: Signer,
    claims: Claims,
    nowMillis: number
  ): Effect.Effect<Redacted.Redacted<string>, InvalidConfiguration> {
    return Effect.flatMap(this.get(signer), (key) => sign(signer, key, claims, nowMillis))
  }

  /** Forgets the keys that may have been rotated. */
  forget(): void {
    for (const signer of this.#imported.keys()) if (isRotating(signer)) this.#imported.delete(signer)
  }
}

/**
 * Signs a fresh assertion: a unique `jti`, `iat` now, `exp` after the lifetime, on the Clock's time.
 *
 * @internal
 */
export const sign = (
  signer: Signer,
  key: Imported,
  claims: Claims,
  nowMillis: number
): Effect.Effect<Redacted.Redacted<string>, InvalidConfiguration> => {
  const iat = Math.floor(nowMillis / 1000)
  const exp = iat + Math.max(1, Math.ceil(Duration.toSeconds(claims.lifetime)))
  return Effect.tryPromise({
    try: () =>
      new Jose.SignJWT({ ...claims.extra, jti: Crypto.randomUUID() })
        .setProtectedHeader({
          alg: signer.algorithm,
          typ: "JWT",
          ...(claims.keyId === undefined ? {} : { kid: claims.keyId })
        })
        .setIssuer(claims.issuer)
        .setSubject(claims.subject)
        .setAudience(claims.audience)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(key),
    catch: (error) => refuse(`the signing key does not fit algorithm ${signer.algorithm}${codeOf(error)}`)
  }).pipe(Effect.map(Redacted.make))
}

const privateKeyAlgorithms: ReadonlySet<string> = new Set([
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA"
])
const secretAlgorithms: ReadonlySet<string> = new Set(["HS256", "HS384", "HS512"])
const MAX_LIFETIME = Duration.hours(1)

/**
 * Refuses a signer before any request: an unknown algorithm, a lifetime that is not positive or
 * longer than an hour (an assertion is meant to be short-lived), an empty secret, and a key given as
 * a value that cannot be imported for its algorithm (a key given as an effect is checked when read).
 *
 * @internal
 */
export const validate = (
  signer: Signer,
  lifetime: Duration.Duration
): Effect.Effect<void, InvalidConfiguration> => {
  const known = signer._tag === "Secret" ? secretAlgorithms : privateKeyAlgorithms
  if (!known.has(signer.algorithm)) {
    return Effect.fail(
      refuse(
        `algorithm ${signer.algorithm} cannot sign with a ${
          signer._tag === "Secret" ? "client secret" : "private key"
        }; use one of ${[...known].join(", ")}`
      )
    )
  }
  if (!Duration.greaterThan(lifetime, Duration.zero) || Duration.greaterThan(lifetime, MAX_LIFETIME)) {
    return Effect.fail(refuse("an assertion's lifetime must be positive and at most one hour"))
  }
  if (signer._tag === "Secret") {
    // a secret read from an effect is checked when read
    return ClientSecret.isRead(signer.secret) || Redacted.value(signer.secret) !== ""
      ? Effect.void
      : Effect.fail(refuse("the client secret is empty"))
  }
  return isEffect(signer.key) ? Effect.void : Effect.asVoid(importKey(signer))
}
