/**
 * What a store's lease holder does once it holds the lease, the same for the file and Redis stores:
 * fetch, then write the token only while the lease is still its own (fenced).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { AccessToken } from "../AccessToken.js"
import * as TokenStore from "../TokenStore.js"

/**
 * Fetches and writes the next entry (version above both the known and the stored one). `write`
 * answers 1 written, 0 a newer entry is stored, -1 the lease passed to another process. From the
 * fetch on the token is never lost: a failed or refused write is logged and the token returned.
 *
 * @internal
 */
export const fetchAsHolder = <E>(options: {
  readonly store: string
  readonly knownVersion: number
  readonly storedVersion: number
  readonly identity: string | undefined
  readonly fetch: Effect.Effect<AccessToken, E>
  readonly write: (entry: TokenStore.StoredToken) => Effect.Effect<number, TokenStore.StoreError>
}): Effect.Effect<TokenStore.Refreshed, E> =>
  Effect.gen(function*() {
    const token = yield* options.fetch
    const version = Math.max(options.knownVersion, options.storedVersion) + 1
    const entry: TokenStore.StoredToken = { token, version, identity: options.identity }
    const written = yield* Effect.either(options.write(entry))
    if (Either.isLeft(written)) return yield* TokenStore.logStoreError(written.left, { entry, fetched: true })
    if (written.right !== 1) {
      yield* Effect.logWarning("token refreshed after the lease passed to another process; not stored").pipe(
        Effect.annotateLogs({
          store: options.store,
          reason: written.right === -1 ? "lease lost" : "newer entry stored"
        })
      )
    }
    return { entry, fetched: true }
  })
