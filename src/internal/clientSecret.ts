import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { Secret } from "../ClientAuth.js"
import { InvalidConfiguration } from "../TokenError.js"

// our own words only: a ConfigError or the effect's error may quote what it read
const unreadable = () => new InvalidConfiguration({ reason: "the client secret could not be read" })
const empty = () => new InvalidConfiguration({ reason: "the client secret read is empty" })

/**
 * Whether the secret is read from an effect (and so may change after a rotation).
 *
 * @internal
 */
export const isRead = (secret: Secret): secret is Exclude<Secret, Redacted.Redacted<string>> =>
  !Redacted.isRedacted(secret)

/**
 * The secret's value, still redacted: a `Redacted` as it is; an effect evaluated now, its failure an
 * `InvalidConfiguration` that names neither the value nor the effect's own error.
 *
 * @internal
 */
export const read = (secret: Secret): Effect.Effect<Redacted.Redacted<string>, InvalidConfiguration> =>
  isRead(secret)
    ? secret.pipe(
      Effect.mapError(unreadable),
      Effect.flatMap((value) =>
        !Redacted.isRedacted(value)
          ? Effect.fail(unreadable())
          : Redacted.value(value) === ""
          ? Effect.fail(empty())
          : Effect.succeed(value)
      )
    )
    : Effect.succeed(secret)

/**
 * Secrets read from an effect, kept per endpoint: read at the first request, reused after, and
 * forgotten when the server refuses the client (`InvalidClient`), so the next attempt reads them again.
 *
 * @internal
 */
export class Secrets {
  readonly #read = new Map<Secret, Redacted.Redacted<string>>()

  /** The secret's value, read on first use. */
  get(secret: Secret): Effect.Effect<Redacted.Redacted<string>, InvalidConfiguration> {
    if (!isRead(secret)) return Effect.succeed(secret)
    return Effect.suspend(() => {
      const known = this.#read.get(secret)
      if (known !== undefined) return Effect.succeed(known)
      return Effect.tap(read(secret), (value) => void this.#read.set(secret, value))
    })
  }

  /** Forgets every secret read, after the server refused the client. */
  forget(): void {
    this.#read.clear()
  }
}
