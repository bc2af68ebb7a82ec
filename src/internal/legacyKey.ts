/**
 * The store keys of tokenwarden 0.1.0, and the move of an entry written under one to its credential's
 * key: kept only so an upgrade never forces a user to log in again.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Grant from "../Grant.js"
import * as TokenStore from "../TokenStore.js"
import * as Key from "./engine/key.js"

/**
 * The store key of tokenwarden 0.1.0, exactly: it left out the extra parameters, the client
 * authentication method, the endpoint's query and, but for a password grant's username, the user.
 * Kept only to find entries written under it and move them. @internal
 */
export const legacyKey = (parts: {
  readonly endpoint: string
  readonly clientId: string
  readonly grantType: string
  readonly subject?: string | undefined
  readonly scopes: ReadonlyArray<string>
}): string =>
  Key.sha256Hex(
    JSON.stringify([parts.endpoint, parts.clientId, parts.grantType, parts.subject ?? "", [...parts.scopes].sort()])
  )

/** The 0.1.0 store key of a source, as its `make` computed it from the endpoint `TokenEndpoint` shows. @internal */
export const legacyKeyOf = (endpointUrl: string, self: Omit<Key.Credential, "url" | "subject">): string =>
  legacyKey({
    endpoint: endpointUrl,
    clientId: self.clientAuth.clientId,
    grantType: Grant.grantType(self.grant),
    subject: self.grant._tag === "Password" ? self.grant.username : undefined,
    scopes: self.grant.scopes
  })

/**
 * The stored entry of a credential, looked for under the 0.1.0 key too: an entry found there is moved
 * to the new key, so an upgrade never forces a user to log in again. Only a grant that needs a person
 * adopts it: the 0.1.0 key did not tell users apart, so the entry may be another credential's, a risk
 * worth taking only where the stored refresh token may be the only one. An unattended grant drops it.
 *
 * @internal
 */
export const loadStored = (
  store: TokenStore.TokenStore,
  key: string,
  grant: Grant.Grant,
  { identity, legacyKey }: { readonly identity: string; readonly legacyKey: string | undefined }
): Effect.Effect<Option.Option<TokenStore.StoredToken>, TokenStore.StoreError> =>
  Effect.gen(function*() {
    const stored = yield* store.load(key, identity)
    if (Option.isSome(stored) || legacyKey === undefined) return stored
    const old = yield* store.load(legacyKey)
    if (Option.isNone(old)) return old
    if (Grant.isUnattended(grant)) {
      yield* Effect.logInfo("token store entry under the 0.1.0 key dropped; fetching a token of our own")
      yield* store.remove(legacyKey)
      return Option.none()
    }
    // not moved (the store is failing): used this time, and moved on a later start
    const written = yield* Effect.catchAll(store.save(key, { ...old.value, identity }), (e) =>
      TokenStore.logStoreError(e, undefined))
    if (written === undefined) {
      return old
    }
    yield* Effect.logInfo("token store entry moved from the 0.1.0 key")
    yield* Effect.catchAll(store.remove(legacyKey), (e) =>
      TokenStore.logStoreError(e, undefined))
    // another process moved it first and may have refreshed since: its entry is the one
    return written ? old : yield* store.load(key, identity)
  })
