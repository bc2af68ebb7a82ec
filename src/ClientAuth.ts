/**
 * How a client proves who it is to the token endpoint (RFC 6749 section 2.3).
 *
 * @since 0.1.0
 */
import type { ConfigError } from "effect/ConfigError"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { PrivateKeyAlgorithm, SecretAlgorithm, SigningKey } from "./Assertion.js"
import * as Assertion from "./internal/assertion.js"
import type * as ClientSecret from "./internal/clientSecret.js"
import { InvalidConfiguration } from "./TokenError.js"

/**
 * How id and secret are encoded before base64 in a Basic header: `form` is RFC 6749 section 2.3.1
 * (each form-url-encoded first); `plain` is `base64(id:secret)`, as Buddy's and Barracuda's documents
 * show. The two differ only when a secret holds reserved characters.
 *
 * @since 0.1.0
 * @category models
 */
export type BasicEncoding = "form" | "plain"

/**
 * A client secret: a `Redacted` value, or an effect that reads one (for example
 * `Config.redacted("CLIENT_SECRET")`, or a file mounted by the platform). An effect is read at the first
 * request of a token endpoint and kept; when the server answers `InvalidClient` it is forgotten, and the
 * attempt that follows reads it again, so a secret rotated at the server and at its source needs no
 * restart. A failed read is an `InvalidConfiguration` of that attempt ("the client secret could not be
 * read"), which never carries the value nor the effect's own error. The secret stays redacted until it
 * is written on the wire.
 *
 * @since 0.2.0
 * @category models
 */
export type Secret =
  | Redacted.Redacted<string>
  | Effect.Effect<Redacted.Redacted<string>, ConfigError | InvalidConfiguration>

/**
 * A client authentication method.
 *
 * @since 0.1.0
 * @category models
 */
export type ClientAuth = Data.TaggedEnum<{
  /** `client_secret_basic`: id and secret in an HTTP Basic header. */
  ClientSecretBasic: {
    readonly clientId: string
    readonly clientSecret: Secret
    readonly encoding: BasicEncoding
  }
  /** `client_secret_post`: id and secret in the form body. */
  ClientSecretPost: { readonly clientId: string; readonly clientSecret: Secret }
  /** `none`: a public client sends only its id. */
  None: { readonly clientId: string }
  /** `private_key_jwt`: a JWT assertion signed with the client's private key, fresh for each request. */
  PrivateKeyJwt: {
    readonly clientId: string
    readonly signer: Assertion.Signer
    readonly keyId: string | undefined
    readonly lifetime: Duration.Duration
    readonly audience: string | undefined
  }
  /** `client_secret_jwt`: a JWT assertion signed with the client secret (HMAC), fresh for each request. */
  ClientSecretJwt: {
    readonly clientId: string
    readonly signer: Assertion.Signer
    readonly lifetime: Duration.Duration
    readonly audience: string | undefined
  }
}>

const ClientAuth = Data.taggedEnum<ClientAuth>()

/**
 * `client_secret_basic`, form-encoded by default (RFC 6749 section 2.3.1). The secret may be an
 * effect that reads it (see `Secret`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const basic = (
  clientId: string,
  clientSecret: Secret,
  options?: { readonly encoding?: BasicEncoding | undefined }
): ClientAuth => ClientAuth.ClientSecretBasic({ clientId, clientSecret, encoding: options?.encoding ?? "form" })

/**
 * `client_secret_post`: id and secret in the form body. The secret may be an effect that reads it
 * (see `Secret`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const post = (clientId: string, clientSecret: Secret): ClientAuth =>
  ClientAuth.ClientSecretPost({ clientId, clientSecret })

/**
 * `none`: a public client (PKCE, device flow) that has no secret.
 *
 * @since 0.1.0
 * @category constructors
 */
export const none = (clientId: string): ClientAuth => ClientAuth.None({ clientId })

/**
 * Options of the JWT client authentication methods.
 *
 * @since 0.2.0
 * @category models
 */
export interface AssertionOptions {
  /** How long each assertion is valid (its `exp` after `iat`); 60 seconds by default. */
  readonly lifetime?: Duration.DurationInput | undefined
  /** The assertion's `aud`; the URL of the endpoint the request goes to by default. */
  readonly audience?: string | undefined
}

/**
 * `private_key_jwt` (RFC 7523 section 2.2, OpenID Connect Core section 9): each request carries a new
 * assertion (`iss` and `sub` the client id, `aud` the endpoint, a unique `jti`, a short `exp`) signed
 * with the client's private key. RS256 by default.
 *
 * @since 0.2.0
 * @category constructors
 */
export const privateKeyJwt = (
  clientId: string,
  key: SigningKey,
  options?: AssertionOptions & {
    readonly algorithm?: PrivateKeyAlgorithm | undefined
    /** The `kid` header, naming the key among those the server knows for this client. */
    readonly keyId?: string | undefined
  }
): ClientAuth =>
  ClientAuth.PrivateKeyJwt({
    clientId,
    signer: { _tag: "PrivateKey", key, algorithm: options?.algorithm ?? "RS256" },
    keyId: options?.keyId,
    lifetime: Duration.decode(options?.lifetime ?? Duration.seconds(60)),
    audience: options?.audience
  })

/**
 * `client_secret_jwt` (RFC 7523 section 2.2, OpenID Connect Core section 9): each request carries a
 * new assertion signed with the client secret (HMAC, HS256 by default); the secret itself is never sent.
 * The secret may be an effect that reads it (see `Secret`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const clientSecretJwt = (
  clientId: string,
  clientSecret: Secret,
  options?: AssertionOptions & { readonly algorithm?: SecretAlgorithm | undefined }
): ClientAuth =>
  ClientAuth.ClientSecretJwt({
    clientId,
    signer: { _tag: "Secret", secret: clientSecret, algorithm: options?.algorithm ?? "HS256" },
    lifetime: Duration.decode(options?.lifetime ?? Duration.seconds(60)),
    audience: options?.audience
  })

/**
 * The client id, whatever the method.
 *
 * @since 0.1.0
 * @category getters
 */
export const clientId = (self: ClientAuth): string => self.clientId

/**
 * Refuses a client authentication that cannot be written on the wire, before any request is sent.
 *
 * @since 0.1.0
 * @category validation
 */
export const validate = (self: ClientAuth): Effect.Effect<ClientAuth, InvalidConfiguration> => {
  if (self.clientId === "") return Effect.fail(new InvalidConfiguration({ reason: "client id is empty" }))
  // RFC 7617 section 2: a user-id containing a colon cannot be told apart from the password
  if (self._tag === "ClientSecretBasic" && self.encoding === "plain" && self.clientId.includes(":")) {
    return Effect.fail(
      new InvalidConfiguration({ reason: "client id contains ':' and cannot be sent with plain Basic encoding" })
    )
  }
  if (self._tag === "PrivateKeyJwt" || self._tag === "ClientSecretJwt") {
    return Effect.as(Assertion.validate(self.signer, self.lifetime), self)
  }
  return Effect.succeed(self)
}

const formEncode = (s: string): string => new URLSearchParams({ s }).toString().slice(2)

/**
 * What a request's credentials are written for: the endpoint's URL (an assertion's default `aud`),
 * the Clock's time, the keys imported and the client secrets read so far.
 *
 * @internal
 */
export interface Context {
  readonly url: string
  readonly now: number
  readonly keys: Assertion.Keys
  readonly secrets: ClientSecret.Secrets
}

/**
 * Writes the credentials on a request: the headers to add and the form fields to append. This and
 * the request body are the only places a client secret is unwrapped; an assertion is signed here.
 *
 * @internal
 */
export const apply = (self: ClientAuth, context: Context): Effect.Effect<{
  readonly headers: Readonly<Record<string, string>>
  readonly params: ReadonlyArray<readonly [string, string]>
}, InvalidConfiguration> => {
  switch (self._tag) {
    case "ClientSecretBasic": {
      const { clientId, encoding } = self
      return Effect.map(context.secrets.get(self.clientSecret), (redacted) => {
        const secret = Redacted.value(redacted)
        const pair = encoding === "form" ? `${formEncode(clientId)}:${formEncode(secret)}` : `${clientId}:${secret}`
        return {
          headers: { authorization: `Basic ${Buffer.from(pair, "utf8").toString("base64")}` },
          params: []
        }
      })
    }
    case "ClientSecretPost": {
      const { clientId } = self
      return Effect.map(context.secrets.get(self.clientSecret), (secret) => ({
        headers: {},
        params: [["client_id", clientId], ["client_secret", Redacted.value(secret)]]
      }))
    }
    case "None":
      return Effect.succeed({ headers: {}, params: [["client_id", self.clientId]] })
    case "PrivateKeyJwt":
    case "ClientSecretJwt": {
      const claims: Assertion.Claims = {
        issuer: self.clientId,
        subject: self.clientId,
        audience: self.audience ?? context.url,
        lifetime: self.lifetime,
        keyId: self._tag === "PrivateKeyJwt" ? self.keyId : undefined
      }
      const signer = self.signer
      // a secret's HMAC key is made for each request from the secret read (or kept) per endpoint
      const signed = signer._tag === "Secret"
        ? Effect.flatMap(
          context.secrets.get(signer.secret),
          (secret) => Assertion.sign(signer, Assertion.hmacKey(secret), claims, context.now)
        )
        : context.keys.sign(signer, claims, context.now)
      return signed.pipe(
        Effect.map((assertion) => ({
          headers: {},
          params: [
            ["client_id", self.clientId],
            ["client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
            ["client_assertion", Redacted.value(assertion)]
          ]
        }))
      )
    }
  }
}
