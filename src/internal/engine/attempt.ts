/**
 * One try at a token for a record: the original grant (the device flow included), the refresh token
 * with RFC 6749 section 6's fallback, and, with a store, the stored token first and one refresher
 * across processes. @internal
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { AccessToken } from "../../AccessToken.js"
import * as DeviceFlow from "../../DeviceFlow.js"
import * as Grant from "../../Grant.js"
import * as RefreshPolicy from "../../RefreshPolicy.js"
import type * as TokenEndpoint from "../../TokenEndpoint.js"
import type { TokenError } from "../../TokenError.js"
import { ReauthorizationRequired } from "../../TokenError.js"
import * as TokenStore from "../../TokenStore.js"
import { loadStored } from "../legacyKey.js"
import type { Entry, Group, Stored } from "./entry.js"

/** What an attempt got: a token, its store version, and how (fetched, another process's, a restart's). @internal */
export interface Got {
  readonly token: AccessToken
  readonly version: number
  readonly how: "received" | "adopted" | "loaded"
}

// a store that fails is logged, and read as empty
const orNone = <A>(load: Effect.Effect<Option.Option<A>, TokenStore.StoreError>) =>
  Effect.catchAll(load, (e) => TokenStore.logStoreError(e, Option.none<A>()))

// A stored token another process wrote, moved onto this process's clock by the difference between
// the writer's offset to the server and ours, when both are known (a v2 entry has none).
const localize = (group: Group, stored: TokenStore.StoredToken): TokenStore.StoredToken => {
  const { token } = stored
  const theirs = token.clockOffset
  const ours = group.clockOffset
  // a Date header has whole seconds: offsets measured apart differ by that much without meaning it
  if (theirs === undefined || ours === undefined || Math.abs(ours - theirs) < 5_000) return stored
  const shift = ours - theirs
  const expiresAt = token.expiresAt === undefined ? undefined : token.expiresAt + shift
  return { ...stored, token: { ...token, issuedAt: token.issuedAt + shift, expiresAt, clockOffset: ours } }
}

/** What attempts share: the policy, the store, the HTTP client, how to show a device flow's prompt. @internal */
export interface Context {
  readonly policy: RefreshPolicy.RefreshPolicy
  readonly store: TokenStore.TokenStore | undefined
  readonly client: HttpClient.HttpClient
  readonly onPrompt: (entry: Entry, prompt: DeviceFlow.Prompt) => void
}

/** An engine's attempts; a failing store is logged once, and each process refreshes alone till it is back. @internal */
export const make = ({ client, onPrompt, policy, store }: Context) => {
  let storeDown = false
  const reauthorize = (detail: string, reason?: ReauthorizationRequired["reason"]) =>
    Effect.fail(new ReauthorizationRequired(reason === undefined ? { detail } : { detail, reason }))

  const requestOriginal = (
    entry: Entry,
    endpoint: TokenEndpoint.TokenEndpoint
  ): Effect.Effect<AccessToken, TokenError> =>
    Effect.suspend(() => {
      const grant = entry.grant
      if (!entry.grantUsable) return reauthorize("the token is gone and the grant cannot run again without a user")
      // RFC 8628: the device flow needs the user, who is shown the code through `changes`
      if (grant._tag === "DeviceCode") {
        return DeviceFlow.runInSource(endpoint, grant, {
          previous: entry.token,
          onPrompt: (prompt) => Effect.sync(() => onPrompt(entry, prompt))
        }).pipe(Effect.provideService(HttpClient.HttpClient, client))
      }
      // an authorization code is single use
      return Effect.tap(endpoint.request(grant, entry.token), () => {
        if (grant._tag === "AuthorizationCode") entry.grantUsable = false
      })
    })

  // the stored entry, on our clock, when it is newer than the one held and still valid
  const newerStored = (entry: Entry): Effect.Effect<Option.Option<TokenStore.StoredToken>> => {
    const stored = entry.stored
    if (store === undefined || stored === undefined) return Effect.succeed(Option.none())
    const found = orNone(store.load(entry.key, stored.identity))
    return Effect.zipWith(found, Clock.currentTimeMillis, (found, now) =>
      Option.filter(
        Option.map(found, (e) => localize(entry.group, e)),
        (e) => e.version > stored.version && now < RefreshPolicy.usableUntil(policy, e.token)
      ))
  }

  // RFC 6749 section 6: a refused refresh token falls back to the original grant only when that grant
  // runs unattended (client credentials, password)
  const fetchOnce = (entry: Entry, endpoint: TokenEndpoint.TokenEndpoint): Effect.Effect<AccessToken, TokenError> =>
    Effect.suspend(() => {
      const refreshToken = entry.refreshToken
      if (refreshToken === undefined) return requestOriginal(entry, endpoint)
      return endpoint.request(Grant.refreshToken({ refreshToken }), entry.token).pipe(
        Effect.catchTag("InvalidGrant", (error) =>
          Effect.flatMap(newerStored(entry), (newer) => {
            // another process may have rotated the refresh token first: its token is ours too
            if (Option.isSome(newer)) {
              const log = Effect.logInfo("refresh token already rotated by another process; adopting its token")
              return Effect.as(log, newer.value.token)
            }
            entry.refreshRefused = true
            if (!entry.grantUsable || !Grant.isUnattended(entry.grant)) {
              return reauthorize("the refresh token was refused", error)
            }
            const log = Effect.logWarning("refresh token refused; running the original grant again")
            return Effect.zipRight(log, requestOriginal(entry, endpoint))
          }))
      )
    })

  const alone = (entry: Entry, endpoint: TokenEndpoint.TokenEndpoint, version: number) =>
    Effect.map(fetchOnce(entry, endpoint), (token): Got => ({ token, version: version + 1, how: "received" }))

  // a restarted process reuses its stored token, or at least the stored refresh token
  const load = (entry: Entry, stored: Stored, store: TokenStore.TokenStore) =>
    Effect.gen(function*() {
      stored.loaded = true
      const found = yield* orNone(loadStored(store, entry.key, entry.grant, stored))
      if (Option.isNone(found)) return undefined
      const { token, version } = localize(entry.group, found.value)
      if ((yield* Clock.currentTimeMillis) < RefreshPolicy.usableUntil(policy, token)) {
        return { token, version, how: "loaded" } satisfies Got
      }
      if (token.refreshToken !== undefined) {
        // held to be refreshed, never handed out
        entry.accept(token)
        stored.version = version
      }
      return undefined
    })

  /** The next token for a record, through the store when there is one. */
  const obtain = (entry: Entry, endpoint: TokenEndpoint.TokenEndpoint): Effect.Effect<Got, TokenError> =>
    Effect.gen(function*() {
      const stored = entry.stored
      if (store === undefined || stored === undefined) return yield* alone(entry, endpoint, 0)
      const loaded = stored.loaded ? undefined : yield* load(entry, stored, store)
      if (loaded !== undefined) return loaded
      return yield* store.refresh(entry.key, stored.version, fetchOnce(entry, endpoint), stored.identity).pipe(
        Effect.map(({ entry: written, fetched }): Got => ({
          // a token another process fetched is on its clock
          token: fetched ? written.token : localize(entry.group, written).token,
          version: written.version,
          how: fetched ? "received" : "adopted"
        })),
        Effect.tap(() => {
          if (!storeDown) return Effect.void
          storeDown = false
          return Effect.logInfo("token store is back")
        }),
        Effect.catchTag("StoreError", (error) => {
          const log = storeDown ? Effect.void : TokenStore.logStoreError(error, undefined)
          storeDown = true
          return Effect.zipRight(log, alone(entry, endpoint, stored.version))
        })
      )
    })

  return { obtain, newerStored }
}
