/**
 * The credential identity: everything that changes what a token endpoint issues, as one hash. The
 * pool's and the stores' keys are this identity (or a key the user gives), so two credentials share a
 * token exactly when the server would issue them the same one. @internal
 */
import * as Crypto from "node:crypto"
import type * as ClientAuth from "../../ClientAuth.js"
import * as Grant from "../../Grant.js"
import { InvalidConfiguration } from "../../TokenError.js"

/** What names a credential: a pool `Credential` and `TokenSource` options are both one. @internal */
export interface Credential {
  readonly url: string | URL
  readonly clientAuth: ClientAuth.ClientAuth
  readonly grant: Grant.Grant
  /** Whose token this is (a user id, a tenant), when the grant itself does not say. */
  readonly subject?: string | undefined
}

/** The tag leading every encoding: a later scheme changes it, so no two schemes share a hash. @internal */
export const scheme = "tokenwarden/key/v2"

const authMethods = {
  ClientSecretBasic: "client_secret_basic",
  ClientSecretPost: "client_secret_post",
  None: "none",
  PrivateKeyJwt: "private_key_jwt",
  ClientSecretJwt: "client_secret_jwt"
} as const

/**
 * The client authentication method, as RFC 7591 names it. Not the Basic encoding (`form` or `plain`):
 * both carry the same id and secret to the same client, so the server issues the same token. @internal
 */
export const authMethod = (self: ClientAuth.ClientAuth): string => authMethods[self._tag]

/**
 * The token endpoint as requests go to it: scheme, host (lower case, default port dropped), path and
 * query; not userinfo (it must never reach a hash) nor the fragment. A string that is not a URL stays
 * as it is: its endpoint is refused before any key is used. @internal
 */
export const endpointOf = (url: string | URL): string => {
  const text = String(url)
  let canonical = endpoints.get(text)
  if (canonical === undefined) {
    canonical = URL.canParse(text) ? ((u) => `${u.protocol}//${u.host}${u.pathname}${u.search}`)(new URL(text)) : text
    // a program talks to a handful of endpoints; the bound keeps a stream of odd URLs in check. A URL
    // that may hold credentials is never kept: they must not sit in a long-lived map.
    if (endpoints.size >= 256) endpoints.clear()
    if (!text.includes("@")) endpoints.set(text, canonical)
  }
  return canonical
}

// parsing costs as much as hashing; the same few URLs come back for every new credential object
const endpoints = new Map<string, string>()

/** The grant acts for a person it does not name: tokens of two users of one client differ. @internal */
export const needsSubject = (grant: Grant.Grant): boolean =>
  grant._tag === "AuthorizationCode" || grant._tag === "RefreshToken" || grant._tag === "DeviceCode" ||
  (grant._tag === "TokenExchange" && grant.subject === undefined)

// [name, value] pairs sorted by name; `defined`: without the fields set to undefined
const sortedPairs = (record: Readonly<Record<string, unknown>>, defined: boolean) =>
  Object.keys(record).sort().filter((name) => !defined || record[name] !== undefined).map((n) => [n, record[n]])

/**
 * The canonical encoding of a credential: JSON of a fixed tuple of strings, `null`s and sorted lists,
 * so no two credentials meet by concatenation, and no secret (client secret, password, code, refresh
 * token, device code) in it: `[scheme, endpoint, client id, auth method, grant type, username | null,
 * subject | null, sorted unique scopes, extra parameters as sorted [name, value] pairs]`. @internal
 */
export const encode = (self: Credential): string => {
  const { clientAuth, grant } = self
  return JSON.stringify([
    scheme,
    endpointOf(self.url),
    clientAuth.clientId,
    authMethod(clientAuth),
    Grant.grantType(grant),
    grant._tag === "Password" ? grant.username : null,
    self.subject ?? (grant._tag === "TokenExchange" ? grant.subject : undefined) ?? null,
    grant.scopes.length < 2 ? grant.scopes : [...new Set(grant.scopes)].sort(),
    sortedPairs(grant.extraParams, false),
    // only the grants that have them add a tenth element, so the keys of the others stay as they were
    ...grantFields(grant)
  ])
}

// what else changes the token a JWT bearer or token exchange grant gets (never a token or an assertion)
const grantFields = (grant: Grant.Grant): ReadonlyArray<unknown> =>
  grant._tag === "JwtBearer"
    // claims as the assertion carries them: one set to undefined is left out of it, one set to null is not
    ? [[grant.issuer, grant.subject, grant.audience ?? null, sortedPairs(grant.claims, true)]]
    : grant._tag === "TokenExchange"
    ? [[
      // the user whose subject token is exchanged, even when the credential names a tenant as its subject
      grant.subject ?? null,
      grant.subjectTokenType,
      grant.actorTokenType ?? null,
      [...grant.audience].sort(),
      [...grant.resource].sort(),
      grant.requestedTokenType ?? null
    ]]
    : []

/** The SHA-256 of a credential's encoding as 64 hex digits: a file name, a Redis key, a pool key. @internal */
export const identity = (self: Credential): string => sha256Hex(encode(self))

/** SHA-256 as hex: `crypto.hash` (Node 20.12 on) costs a quarter of `createHash`, run per new credential. @internal */
export const sha256Hex: (text: string) => string = typeof Crypto.hash === "function"
  ? (text) => Crypto.hash("sha256", text, "hex")
  : (text) => Crypto.createHash("sha256").update(text).digest("hex")

/** The explicit key, else the identity; none for a credential another user's could share (`check`). @internal */
export const keyOf = (self: Credential, key: string | undefined): string | undefined =>
  key !== undefined
    ? key
    : (self.subject === undefined && needsSubject(self.grant)) || !Grant.encodable(self.grant)
    ? undefined
    : identity(self)

/**
 * Refuses a credential that would share its token with another user's (a grant acting for a person it
 * does not name, with neither a subject nor a key), and an empty subject or key (a configuration
 * variable left empty would make every user the same one). @internal
 */
export const check = (
  self: Credential,
  key: string | undefined,
  where: { readonly keyOption: string; readonly sharedBy: string }
): InvalidConfiguration | undefined => {
  if (key === "") return new InvalidConfiguration({ reason: `${where.keyOption} is empty` })
  if (self.subject === "") return new InvalidConfiguration({ reason: "subject is empty" })
  if (key !== undefined || self.subject !== undefined || !needsSubject(self.grant)) return undefined
  return new InvalidConfiguration({
    reason: `a ${Grant.grantType(self.grant)} grant ${where.sharedBy} needs a subject (whose token it is) or ` +
      `a ${where.keyOption}: tokens of different users of one client must not be shared`
  })
}
