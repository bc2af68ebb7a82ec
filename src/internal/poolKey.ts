import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type * as Grant from "../Grant.js"
import type * as TokenEndpoint from "../TokenEndpoint.js"

/**
 * What the pool needs of a credential to name it. The secret is not part of any key: a client id
 * names one client, and a key must not carry a secret into logs or heap dumps of the map.
 *
 * @internal
 */
export interface KeyParts extends TokenEndpoint.Options {
  readonly grant: Grant.Grant
  readonly key?: string | undefined
  readonly subject?: string | undefined
}

const scopesPart = (scopes: ReadonlyArray<string>): string =>
  scopes.length === 0 ? "" : scopes.length === 1 ? scopes[0]! : [...scopes].sort().join(" ")

const paramsPart = (params: Readonly<Record<string, string>>): string => {
  let out = ""
  for (const name in params) out += `${name}=${params[name]}&`
  return out
}

/**
 * The subject of a credential: given, or the username of a password grant. `undefined` when the
 * credential cannot be named without one: refresh-token and authorization-code grants of different
 * users of one client would otherwise share one token.
 *
 * @internal
 */
export const subjectOf = (parts: KeyParts): string | null | undefined => {
  const grant = parts.grant
  const subject = parts.subject ?? (grant._tag === "Password" ? grant.username : undefined)
  if (subject !== undefined) return subject
  return grant._tag === "RefreshToken" || grant._tag === "AuthorizationCode" ? undefined : null
}

/**
 * The pool key of a credential whose endpoint options are interned as `endpointId`: the explicit
 * `key`, else the endpoint, grant type, subject and sorted scopes (and extra parameters). Joined, not
 * concatenated: one flat string, not a tree of string pieces the Map would keep.
 *
 * @internal
 */
export const keyOf = (parts: KeyParts, endpointId: number): string | undefined => {
  if (parts.key !== undefined) return parts.key
  const subject = subjectOf(parts)
  if (subject === undefined) return undefined
  const grant = parts.grant
  return [endpointId, grant._tag, subject ?? "", scopesPart(grant.scopes), paramsPart(grant.extraParams)].join("\u0000")
}

const millis = (input: Duration.DurationInput | undefined): number | string =>
  input === undefined ? "" : Option.getOrElse(Option.map(Duration.decodeUnknown(input), Duration.toMillis), () => "?")

/**
 * The identity of a configured `TokenEndpoint`: credentials with equal endpoint options share one
 * instance (its closures cost more than a pooled token may).
 *
 * @internal
 */
export const endpointKeyOf = (options: TokenEndpoint.Options): string =>
  JSON.stringify([
    String(options.url),
    options.clientAuth._tag,
    options.clientAuth.clientId,
    options.clientAuth._tag === "ClientSecretBasic" ? options.clientAuth.encoding : "",
    options.provider ?? "",
    options.scopeSeparator ?? " ",
    millis(options.timeout),
    millis(options.defaultLifetime),
    options.headers ?? {}
  ])
