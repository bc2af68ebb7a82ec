import * as Effect from "effect/Effect"
import { InvalidConfiguration } from "../../TokenError.js"

/**
 * An RFC 6749 section 3.3 scope-token: printable ASCII but space, `"` and `\`.
 *
 * @internal
 */
export const isScopeToken = (scope: string): boolean => /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(scope)

/**
 * Checks a provider's scopes when a source is built: at least one when the provider requires it, each one
 * sendable (`isValid`), and one warning for the source naming every scope its document does not list.
 * Those are sent as given: a scope the service added later must not need a release.
 *
 * @internal
 */
export const checkScopes = <S extends string>(options: {
  /** The provider's name in messages: `Buddy`. */
  readonly name: string
  /** The source's name in logs: `buddy`. */
  readonly provider: string
  readonly scopes: ReadonlyArray<S>
  readonly known: ReadonlyArray<string>
  readonly isValid: (scope: string) => boolean
  readonly required: boolean
}): Effect.Effect<ReadonlyArray<S>, InvalidConfiguration> =>
  Effect.suspend(() => {
    const { name, scopes } = options
    if (options.required && scopes.length === 0) {
      return Effect.fail(new InvalidConfiguration({ reason: `${name}: at least one scope is required` }))
    }
    const invalid = scopes.find((scope) => !options.isValid(scope))
    if (invalid !== undefined) {
      // JSON quoting shows an empty or odd scope as it is, control characters escaped
      return Effect.fail(
        new InvalidConfiguration({
          reason: `${name}: ${JSON.stringify(invalid.slice(0, 64))} cannot be sent as a scope`
        })
      )
    }
    const unknown = [...new Set(scopes.filter((scope) => !options.known.includes(scope)))]
    if (unknown.length === 0) return Effect.succeed(scopes)
    return Effect.as(
      Effect.logWarning(`${name}: scopes not in the provider's document are sent as given`).pipe(
        Effect.annotateLogs({ provider: options.provider, unknown_scopes: unknown.join(" ") })
      ),
      scopes
    )
  })
