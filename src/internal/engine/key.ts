/**
 * The credential identity: everything that changes what a token endpoint issues, as one hash. The
 * pool's keys and every store's keys are this identity (or a key the user gives instead), so two
 * credentials share a token exactly when the server would issue them the same one.
 *
 * @internal
 */
import * as Crypto from "node:crypto"
import type * as ClientAuth from "../../ClientAuth.js"
import * as Grant from "../../Grant.js"
import { InvalidConfiguration } from "../../TokenError.js"

/**
 * What names a credential: a pool `Credential` and `TokenSource` options are both one.
 *
 * @internal
 */
export interface Credential {
  readonly url: string | URL
  readonly clientAuth: ClientAuth.ClientAuth
  readonly grant: Grant.Grant
  /** Whose token this is (a user id, a tenant), when the grant itself does not say. */
  readonly subject?: string | undefined
}

/**
 * The tag leading every encoding; a later scheme changes it, so no two schemes can share a hash.
 *
 * @internal
 */
export const scheme = "tokenwarden/key/v2"

/**
 * The client authentication method, as RFC 7591 names it (`token_endpoint_auth_method`). The Basic
 * encoding (`form` or `plain`) is not part of it: both carry the same id and secret to the same
 * client, so the server issues the same token either way.
 *
 * @internal
 */
export const authMethod = (self: ClientAuth.ClientAuth): string => {
  switch (self._tag) {
    case "ClientSecretBasic":
      return "client_secret_basic"
    case "ClientSecretPost":
      return "client_secret_post"
    case "None":
      return "none"
    case "PrivateKeyJwt":
      return "private_key_jwt"
    case "ClientSecretJwt":
      return "client_secret_jwt"
  }
}

/**
 * The token endpoint as requests go to it: scheme, host (lower case, default port dropped), path and
 * query. Userinfo is dropped (an endpoint with credentials in its URL is refused anyway, and they
 * must never reach a hash), and so is the fragment, which is never sent. A string that is not a URL
 * stays as it is: its endpoint is refused before any key is used.
 *
 * @internal
 */
export const endpointOf = (url: string | URL): string => {
  const text = String(url)
  let canonical = endpoints.get(text)
  if (canonical === undefined) {
    canonical = canonicalEndpoint(text)
    // a program talks to a handful of endpoints; the bound only keeps a stream of odd URLs in check.
    // A URL that may hold credentials is never kept: they must not sit in a long-lived map.
    if (endpoints.size >= 256) endpoints.clear()
    if (!text.includes("@")) endpoints.set(text, canonical)
  }
  return canonical
}

// parsing costs as much as hashing; the same few URLs come back for every new credential object
const endpoints = new Map<string, string>()

const canonicalEndpoint = (url: string): string => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return url
  }
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}${parsed.search}`
}

/**
 * Whether the grant acts for a person the library cannot name by itself: tokens of two users of one
 * client differ, so sharing needs a subject (or an explicit key).
 *
 * @internal
 */
export const needsSubject = (grant: Grant.Grant): boolean =>
  grant._tag === "AuthorizationCode" || grant._tag === "RefreshToken" || grant._tag === "DeviceCode" ||
  (grant._tag === "TokenExchange" && grant.subject === undefined)

const sortedScopes = (scopes: ReadonlyArray<string>): ReadonlyArray<string> =>
  scopes.length < 2 ? scopes : [...new Set(scopes)].sort()

const sortedParams = (params: Grant.ExtraParams): ReadonlyArray<readonly [string, string]> => {
  const names = Object.keys(params)
  if (names.length === 0) return names as []
  return names.sort().map((name) => [name, params[name]!] as const)
}

/**
 * The canonical encoding of a credential: JSON of a fixed tuple of strings, `null`s and sorted
 * lists, so no two different credentials meet by concatenation. No secret is in it: not the client
 * secret, the password, a code, a refresh token or a device code.
 *
 * `[scheme, endpoint, client id, auth method, grant type, username | null, subject | null,
 * sorted unique scopes, extra parameters as [name, value] pairs sorted by name]`
 *
 * @internal
 */
export const encode = (self: Credential): string =>
  JSON.stringify([
    scheme,
    endpointOf(self.url),
    self.clientAuth.clientId,
    authMethod(self.clientAuth),
    Grant.grantType(self.grant),
    self.grant._tag === "Password" ? self.grant.username : null,
    self.subject ?? (self.grant._tag === "TokenExchange" ? self.grant.subject : undefined) ?? null,
    sortedScopes(self.grant.scopes),
    sortedParams(self.grant.extraParams),
    // only the grants that have them add a tenth element, so the keys of the others stay as they were
    ...grantFields(self.grant)
  ])

// what else changes the token a JWT bearer or token exchange grant gets (never a token or an assertion)
const grantFields = (grant: Grant.Grant): ReadonlyArray<unknown> => {
  switch (grant._tag) {
    case "JwtBearer":
      return [[
        grant.issuer,
        grant.subject,
        grant.audience ?? null,
        // as the assertion carries them: a claim set to undefined is left out of it, one set to null is not
        Object.keys(grant.claims).filter((name) => grant.claims[name] !== undefined).sort().map((name) => [
          name,
          grant.claims[name]
        ])
      ]]
    case "TokenExchange":
      return [[
        // the user whose subject token is exchanged, even when the credential names a tenant as its subject
        grant.subject ?? null,
        grant.subjectTokenType,
        grant.actorTokenType ?? null,
        [...grant.audience].sort(),
        [...grant.resource].sort(),
        grant.requestedTokenType ?? null
      ]]
    default:
      return []
  }
}

/**
 * The identity of a credential: the SHA-256 of its canonical encoding, as 64 lowercase hex digits.
 * A file name, a Redis key and a pool key; it shows nothing of the credential.
 *
 * @internal
 */
export const identity = (self: Credential): string => sha256Hex(encode(self))

// `crypto.hash` (Node 20.12 on) costs a quarter of `createHash`: this runs for every new credential
// object a pool is asked about
const sha256Hex: (text: string) => string = typeof Crypto.hash === "function"
  ? (text) => Crypto.hash("sha256", text, "hex")
  : (text) => Crypto.createHash("sha256").update(text).digest("hex")

/**
 * The key of a credential: the explicit one when given, else its identity; `undefined` when it
 * cannot be told apart from another user's (see `check`).
 *
 * @internal
 */
export const keyOf = (self: Credential, key: string | undefined): string | undefined =>
  key !== undefined
    ? key
    : (self.subject === undefined && needsSubject(self.grant)) || !Grant.encodable(self.grant)
    ? undefined
    : identity(self)

/**
 * Refuses a credential that would share its token with another user's: a grant acting for a person
 * the library cannot name, with neither a subject nor an explicit key. An empty subject or key is
 * refused too (a configuration variable left empty would make every user the same one).
 *
 * @internal
 */
export const check = (
  self: Credential,
  key: string | undefined,
  where: { readonly keyOption: string; readonly sharedBy: string }
): InvalidConfiguration | undefined => {
  if (key === "") return new InvalidConfiguration({ reason: `${where.keyOption} is empty` })
  if (self.subject === "") return new InvalidConfiguration({ reason: "subject is empty" })
  if (key === undefined && self.subject === undefined && needsSubject(self.grant)) {
    return new InvalidConfiguration({
      reason: `a ${Grant.grantType(self.grant)} grant ${where.sharedBy} needs a subject (whose token it is) or ` +
        `a ${where.keyOption}: tokens of different users of one client must not be shared`
    })
  }
  return undefined
}

/**
 * The store key of tokenwarden 0.1.0 (`TokenStore.key` then), exactly: it left out the extra
 * parameters, the client authentication method, the endpoint's query and, but for a password
 * grant's username, the user. Kept only to find entries written under it and move them.
 *
 * @internal
 */
export const legacyKey = (parts: {
  readonly endpoint: string
  readonly clientId: string
  readonly grantType: string
  readonly subject?: string | undefined
  readonly scopes: ReadonlyArray<string>
}): string =>
  Crypto.createHash("sha256").update(JSON.stringify([
    parts.endpoint,
    parts.clientId,
    parts.grantType,
    parts.subject ?? "",
    [...parts.scopes].sort()
  ])).digest("hex")

/**
 * The 0.1.0 store key of a source, computed as its `make` did: `endpointUrl` is the endpoint as
 * `TokenEndpoint` shows it (no query).
 *
 * @internal
 */
export const legacyKeyOf = (endpointUrl: string, self: Omit<Credential, "url" | "subject">): string =>
  legacyKey({
    endpoint: endpointUrl,
    clientId: self.clientAuth.clientId,
    grantType: Grant.grantType(self.grant),
    subject: self.grant._tag === "Password" ? self.grant.username : undefined,
    scopes: self.grant.scopes
  })
