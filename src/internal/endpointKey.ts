import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
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
