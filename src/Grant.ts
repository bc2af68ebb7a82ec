/**
 * The ways to obtain a token, as data (RFC 6749 section 4 and 6).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { PrivateKeyAlgorithm, SigningKey } from "./Assertion.js"
import * as Assertion from "./internal/assertion.js"
import { InvalidConfiguration, type TokenError } from "./TokenError.js"

/**
 * Extra form parameters some servers want (`audience`, `resource`).
 *
 * @since 0.1.0
 * @category models
 */
export type ExtraParams = Readonly<Record<string, string>>

/**
 * A grant: what a token request asks with.
 *
 * @since 0.1.0
 * @category models
 */
export type Grant = Data.TaggedEnum<{
  ClientCredentials: { readonly scopes: ReadonlyArray<string>; readonly extraParams: ExtraParams }
  Password: {
    readonly username: string
    readonly password: Redacted.Redacted<string>
    readonly scopes: ReadonlyArray<string>
    readonly extraParams: ExtraParams
  }
  AuthorizationCode: {
    readonly code: Redacted.Redacted<string>
    readonly redirectUri: string | undefined
    readonly codeVerifier: Redacted.Redacted<string> | undefined
    /** Scopes asked for at the authorize step, recorded as granted when the response names none. */
    readonly scopes: ReadonlyArray<string>
    readonly extraParams: ExtraParams
  }
  RefreshToken: {
    readonly refreshToken: Redacted.Redacted<string>
    readonly scopes: ReadonlyArray<string>
    readonly extraParams: ExtraParams
  }
  DeviceCode: {
    /** Where the device authorization request goes (RFC 8628 section 3.1). */
    readonly deviceAuthorizationEndpoint: string
    readonly scopes: ReadonlyArray<string>
    /** Extra parameters of the device authorization request (`audience`, `resource`). */
    readonly extraParams: ExtraParams
    /** The `device_code` being polled for; set by the device flow, never by the user. */
    readonly deviceCode: Redacted.Redacted<string> | undefined
  }
  /** RFC 7523 section 2.1: a signed assertion stands for the grant (the service-account pattern). */
  JwtBearer: {
    readonly signer: Assertion.Signer
    readonly issuer: string
    readonly subject: string
    readonly audience: string | undefined
    readonly keyId: string | undefined
    readonly lifetime: Duration.Duration
    readonly claims: Readonly<Record<string, unknown>>
    readonly scopes: ReadonlyArray<string>
    readonly extraParams: ExtraParams
  }
  /** RFC 8693: a token is traded for another (delegation, impersonation, a downstream audience). */
  TokenExchange: {
    /** Read before each request: a fixed token, or another source's current one. */
    readonly subjectToken: Effect.Effect<Redacted.Redacted<string>, TokenError>
    readonly subjectTokenType: string
    readonly actorToken: Effect.Effect<Redacted.Redacted<string>, TokenError> | undefined
    readonly actorTokenType: string | undefined
    readonly audience: ReadonlyArray<string>
    readonly resource: ReadonlyArray<string>
    readonly requestedTokenType: string | undefined
    /** Whose subject token this is, for the credential's key: a user id, or the upstream source's identity. */
    readonly subject: string | undefined
    readonly scopes: ReadonlyArray<string>
    readonly extraParams: ExtraParams
  }
}>

const Grant = Data.taggedEnum<Grant>()

/**
 * `client_credentials` (RFC 6749 section 4.4): the client acts on its own behalf.
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientCredentials = (
  options?: { readonly scopes?: ReadonlyArray<string> | undefined; readonly extraParams?: ExtraParams | undefined }
): Grant => Grant.ClientCredentials({ scopes: options?.scopes ?? [], extraParams: options?.extraParams ?? {} })

/**
 * `password` (RFC 6749 section 4.3): the resource owner's username and password.
 *
 * @since 0.1.0
 * @category constructors
 */
export const password = (options: {
  readonly username: string
  readonly password: Redacted.Redacted<string>
  readonly scopes?: ReadonlyArray<string> | undefined
  readonly extraParams?: ExtraParams | undefined
}): Grant =>
  Grant.Password({
    username: options.username,
    password: options.password,
    scopes: options.scopes ?? [],
    extraParams: options.extraParams ?? {}
  })

/**
 * `authorization_code` (RFC 6749 section 4.1.3): a code from the callback, exchanged once.
 * `redirectUri` must be given when it was sent to the authorize endpoint, identical.
 *
 * @since 0.1.0
 * @category constructors
 */
export const authorizationCode = (options: {
  readonly code: Redacted.Redacted<string>
  readonly redirectUri?: string | undefined
  readonly codeVerifier?: Redacted.Redacted<string> | undefined
  readonly scopes?: ReadonlyArray<string> | undefined
  readonly extraParams?: ExtraParams | undefined
}): Grant =>
  Grant.AuthorizationCode({
    code: options.code,
    redirectUri: options.redirectUri,
    codeVerifier: options.codeVerifier,
    scopes: options.scopes ?? [],
    extraParams: options.extraParams ?? {}
  })

/**
 * `refresh_token` (RFC 6749 section 6): start from a refresh token kept from an earlier session.
 *
 * @since 0.1.0
 * @category constructors
 */
export const refreshToken = (options: {
  readonly refreshToken: Redacted.Redacted<string>
  readonly scopes?: ReadonlyArray<string> | undefined
  readonly extraParams?: ExtraParams | undefined
}): Grant =>
  Grant.RefreshToken({
    refreshToken: options.refreshToken,
    scopes: options.scopes ?? [],
    extraParams: options.extraParams ?? {}
  })

/**
 * The device authorization grant (RFC 8628): the user approves on another device, with a code the
 * source shows through `changes` (`TokenState.AwaitingUser`). Not unattended: a refused refresh token
 * ends in `ReauthorizationRequired`, and an explicit `refresh` starts a new device flow.
 *
 * @since 0.1.0
 * @category constructors
 */
export const deviceCode = (options: {
  readonly deviceAuthorizationEndpoint: string | URL
  readonly scopes?: ReadonlyArray<string> | undefined
  readonly extraParams?: ExtraParams | undefined
}): Grant =>
  Grant.DeviceCode({
    deviceAuthorizationEndpoint: options.deviceAuthorizationEndpoint.toString(),
    scopes: options.scopes ?? [],
    extraParams: options.extraParams ?? {},
    deviceCode: undefined
  })

/**
 * The device grant with the `device_code` of one flow, as its polls send it.
 *
 * @internal
 */
export const withDeviceCode = (
  self: Extract<Grant, { readonly _tag: "DeviceCode" }>,
  deviceCode: Redacted.Redacted<string>
): Grant => Grant.DeviceCode({ ...self, deviceCode })

/**
 * Whether the grant can run again without a person (client credentials, password): only these may
 * replace a refused refresh token.
 *
 * @since 0.1.0
 * @category guards
 */
export const isUnattended = (self: Grant): boolean =>
  self._tag === "ClientCredentials" || self._tag === "Password" || self._tag === "JwtBearer" ||
  self._tag === "TokenExchange"

/**
 * The RFC 6749 `grant_type` value.
 *
 * @since 0.1.0
 * @category getters
 */
export const grantType = (self: Grant): string => {
  switch (self._tag) {
    case "ClientCredentials":
      return "client_credentials"
    case "Password":
      return "password"
    case "AuthorizationCode":
      return "authorization_code"
    case "RefreshToken":
      return "refresh_token"
    case "DeviceCode":
      return "urn:ietf:params:oauth:grant-type:device_code"
    case "JwtBearer":
      return "urn:ietf:params:oauth:grant-type:jwt-bearer"
    case "TokenExchange":
      return "urn:ietf:params:oauth:grant-type:token-exchange"
  }
}

/**
 * The form parameters of a grant, with `scope` joined by the provider's joiner. This and client
 * authentication are where the grant's secrets are unwrapped.
 *
 * @internal
 */
export const params = (self: Grant, scopeSeparator: string): Array<readonly [string, string]> => {
  const out: Array<readonly [string, string]> = [["grant_type", grantType(self)]]
  const scope = (scopes: ReadonlyArray<string>) => {
    if (scopes.length > 0) out.push(["scope", scopes.join(scopeSeparator)])
  }
  switch (self._tag) {
    case "ClientCredentials":
      scope(self.scopes)
      break
    case "Password":
      out.push(["username", self.username], ["password", Redacted.value(self.password)])
      scope(self.scopes)
      break
    case "AuthorizationCode":
      out.push(["code", Redacted.value(self.code)])
      if (self.redirectUri !== undefined) out.push(["redirect_uri", self.redirectUri])
      if (self.codeVerifier !== undefined) out.push(["code_verifier", Redacted.value(self.codeVerifier)])
      break
    case "RefreshToken":
      out.push(["refresh_token", Redacted.value(self.refreshToken)])
      // RFC 6749 section 6: omitting scope keeps the original grant's scope
      scope(self.scopes)
      break
    case "DeviceCode":
      // RFC 8628 section 3.4: a poll names only the device code; scope and the extra parameters
      // went with the device authorization request
      if (self.deviceCode !== undefined) out.push(["device_code", Redacted.value(self.deviceCode)])
      return out
    case "JwtBearer":
      // the assertion is signed per request (see `TokenEndpoint`)
      scope(self.scopes)
      break
    case "TokenExchange":
      // the subject and actor tokens are read per request (see `TokenEndpoint`)
      out.push(["subject_token_type", self.subjectTokenType])
      if (self.actorTokenType !== undefined) out.push(["actor_token_type", self.actorTokenType])
      for (const audience of self.audience) out.push(["audience", audience])
      for (const resource of self.resource) out.push(["resource", resource])
      if (self.requestedTokenType !== undefined) out.push(["requested_token_type", self.requestedTokenType])
      scope(self.scopes)
      break
  }
  for (const [k, v] of Object.entries(self.extraParams)) out.push([k, v])
  return out
}

/**
 * Token types of RFC 8693 section 3.
 *
 * @since 0.2.0
 * @category models
 */
export const TokenType = {
  accessToken: "urn:ietf:params:oauth:token-type:access_token",
  refreshToken: "urn:ietf:params:oauth:token-type:refresh_token",
  idToken: "urn:ietf:params:oauth:token-type:id_token",
  jwt: "urn:ietf:params:oauth:token-type:jwt",
  saml2: "urn:ietf:params:oauth:token-type:saml2"
} as const

/**
 * The JWT bearer grant (RFC 7523 section 2.1), the service-account pattern: each request carries a new
 * assertion (`iss` the issuer, `sub` the subject or the issuer, `aud` the token endpoint, a unique
 * `jti`, a short `exp`, plus `claims`) signed with the private key. RS256 by default.
 *
 * @since 0.2.0
 * @category constructors
 */
export const jwtBearer = (options: {
  readonly issuer: string
  readonly key: SigningKey
  readonly subject?: string | undefined
  readonly algorithm?: PrivateKeyAlgorithm | undefined
  readonly keyId?: string | undefined
  /** The assertion's `aud`; the token endpoint's URL by default. */
  readonly audience?: string | undefined
  /** How long each assertion is valid; 60 seconds by default. */
  readonly lifetime?: Duration.DurationInput | undefined
  /** Further claims (a service's `scope` claim, say); they cannot replace the registered ones. */
  readonly claims?: Readonly<Record<string, unknown>> | undefined
  readonly scopes?: ReadonlyArray<string> | undefined
  readonly extraParams?: ExtraParams | undefined
}): Grant =>
  Grant.JwtBearer({
    signer: { _tag: "PrivateKey", key: options.key, algorithm: options.algorithm ?? "RS256" },
    issuer: options.issuer,
    subject: options.subject ?? options.issuer,
    audience: options.audience,
    keyId: options.keyId,
    lifetime: Duration.decode(options.lifetime ?? Duration.seconds(60)),
    claims: options.claims ?? {},
    scopes: options.scopes ?? [],
    extraParams: options.extraParams ?? {}
  })

const asList = (value: string | ReadonlyArray<string> | undefined): ReadonlyArray<string> =>
  value === undefined ? [] : typeof value === "string" ? [value] : value

const asEffect = (
  token: Redacted.Redacted<string> | Effect.Effect<Redacted.Redacted<string>, TokenError>
): Effect.Effect<Redacted.Redacted<string>, TokenError> => Effect.isEffect(token) ? token : Effect.succeed(token)

/**
 * The RFC 8693 parameters of a token exchange besides its subject token.
 *
 * @since 0.2.0
 * @category models
 */
export interface TokenExchangeOptions {
  /** The subject token's RFC 8693 type; an access token by default. */
  readonly subjectTokenType?: string | undefined
  /** The acting party's token (delegation), a fixed value or an effect read before each request. */
  readonly actorToken?: Redacted.Redacted<string> | Effect.Effect<Redacted.Redacted<string>, TokenError> | undefined
  /** Required with an actor token; an access token by default. */
  readonly actorTokenType?: string | undefined
  readonly audience?: string | ReadonlyArray<string> | undefined
  readonly resource?: string | ReadonlyArray<string> | undefined
  readonly requestedTokenType?: string | undefined
  readonly scopes?: ReadonlyArray<string> | undefined
  readonly extraParams?: ExtraParams | undefined
}

/**
 * The token exchange grant (RFC 8693). The subject token is a fixed value or an effect read before
 * each request; `TokenExchange.make` takes it from another token source. With a store or in a pool, a
 * fixed subject token needs a `subject` (whose token it is), since a token is never part of a key.
 *
 * @since 0.2.0
 * @category constructors
 */
export const tokenExchange = (
  options: TokenExchangeOptions & {
    readonly subjectToken: Redacted.Redacted<string> | Effect.Effect<Redacted.Redacted<string>, TokenError>
    /** Whose subject token it is: part of the credential's key. */
    readonly subject?: string | undefined
  }
): Grant =>
  Grant.TokenExchange({
    subjectToken: asEffect(options.subjectToken),
    subjectTokenType: options.subjectTokenType ?? TokenType.accessToken,
    actorToken: options.actorToken === undefined ? undefined : asEffect(options.actorToken),
    actorTokenType: options.actorToken === undefined
      ? undefined
      : options.actorTokenType ?? TokenType.accessToken,
    audience: asList(options.audience),
    resource: asList(options.resource),
    requestedTokenType: options.requestedTokenType,
    subject: options.subject,
    scopes: options.scopes ?? [],
    extraParams: options.extraParams ?? {}
  })

/**
 * The parameters a grant computes per request: the JWT bearer grant's fresh assertion, the token
 * exchange's subject and actor tokens as read now.
 *
 * @internal
 */
export const requestParams = (
  self: Grant,
  context: { readonly url: string; readonly now: number; readonly keys: Assertion.Keys }
): Effect.Effect<ReadonlyArray<readonly [string, string]>, TokenError> => {
  switch (self._tag) {
    case "JwtBearer": {
      const claims: Assertion.Claims = {
        issuer: self.issuer,
        subject: self.subject,
        audience: self.audience ?? context.url,
        lifetime: self.lifetime,
        keyId: self.keyId,
        extra: self.claims
      }
      return Effect.map(
        context.keys.sign(self.signer, claims, context.now),
        (assertion) => [["assertion", Redacted.value(assertion)]] as const
      )
    }
    case "TokenExchange":
      return Effect.gen(function*() {
        const out: Array<readonly [string, string]> = [["subject_token", Redacted.value(yield* self.subjectToken)]]
        if (self.actorToken !== undefined) out.push(["actor_token", Redacted.value(yield* self.actorToken)])
        return out
      })
    default:
      return Effect.succeed([])
  }
}

/**
 * Whether a grant's own values can be encoded (a JWT bearer grant's claims are JSON values): what
 * JSON.stringify refuses (a bigint, a cycle) can be neither signed nor named by a key.
 *
 * @internal
 */
export const encodable = (self: Grant): boolean => {
  if (self._tag !== "JwtBearer") return true
  try {
    JSON.stringify(self.claims)
    return true
  } catch {
    return false
  }
}

/**
 * Refuses a grant that cannot be sent, before any request (the JWT bearer grant's algorithm, lifetime,
 * key and claims).
 *
 * @internal
 */
export const validate = (self: Grant): Effect.Effect<Grant, InvalidConfiguration> => {
  if (self._tag === "JwtBearer") {
    if (self.issuer === "") return Effect.fail(new InvalidConfiguration({ reason: "the assertion's issuer is empty" }))
    if (!encodable(self)) {
      return Effect.fail(
        new InvalidConfiguration({ reason: "the assertion's claims must be JSON values (no bigint, no cycles)" })
      )
    }
    return Effect.as(Assertion.validate(self.signer, self.lifetime), self)
  }
  if (self._tag === "TokenExchange" && self.subjectTokenType === "") {
    return Effect.fail(new InvalidConfiguration({ reason: "subject_token_type is empty" }))
  }
  return Effect.succeed(self)
}
