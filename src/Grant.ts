/**
 * The ways to obtain a token, as data (RFC 6749 section 4 and 6).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Redacted from "effect/Redacted"

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
export const isUnattended = (self: Grant): boolean => self._tag === "ClientCredentials" || self._tag === "Password"

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
  }
  for (const [k, v] of Object.entries(self.extraParams)) out.push([k, v])
  return out
}
