/**
 * A configured `TokenEndpoint` as records share it: a credential's endpoint options, their identity,
 * and whether a credential brings a new client secret for them.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as ClientAuth from "../ClientAuth.js"
import type * as RefreshPolicy from "../RefreshPolicy.js"
import type * as TokenEndpoint from "../TokenEndpoint.js"

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

/** The endpoint options of a credential, without its grant and key (kept once per endpoint). @internal */
export const endpointOptions = (
  credential: TokenEndpoint.Options,
  policy: RefreshPolicy.RefreshPolicy
): TokenEndpoint.Options => ({
  maxLifetime: policy.maxLifetime,
  url: credential.url,
  clientAuth: credential.clientAuth,
  scopeSeparator: credential.scopeSeparator,
  timeout: credential.timeout,
  defaultLifetime: credential.defaultLifetime,
  headers: credential.headers,
  provider: credential.provider
})

/**
 * Whether `next` carries another client secret than `held`, both given as values: only a new value
 * is a rotation (a secret given as an effect is read again after a refusal instead). @internal
 */
export const rotatedSecret = (held: ClientAuth.ClientAuth, next: ClientAuth.ClientAuth): boolean => {
  const before = secretOf(held)
  const after = secretOf(next)
  return before !== undefined && after !== undefined && before !== after
}

const secretOf = (auth: ClientAuth.ClientAuth): string | undefined =>
  "clientSecret" in auth && Redacted.isRedacted(auth.clientSecret) ? Redacted.value(auth.clientSecret) : undefined
