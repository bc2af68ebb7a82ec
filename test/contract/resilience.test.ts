/**
 * The resilience contract (`resilience.ts`) against every face that runs on the test's Clock: a
 * `TokenSource`, a `TokenPool`'s source and the Promise facade. (A `TokenMirror` answers from another
 * thread in real time; it serves what its owner's source decides.)
 */
import { describe } from "@effect/vitest"
import { Duration, Effect, Redacted } from "effect"
import { ClientAuth, Grant, TokenClient, TokenPool, TokenSource, TokenStore } from "tokenwarden"
import type { AuthServer } from "tokenwarden/testing"
import { CLIENT_SECRET } from "../secrets.js"
import { noJitter } from "../util.js"
import { facadeFace } from "./facade.js"
import { type Face, type FaceOptions, resilienceSuite } from "./resilience.js"

const credential = (server: AuthServer.AuthServer, options?: FaceOptions) => ({
  url: server.tokenUrl,
  clientAuth: options?.clientAuth ?? ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
  grant: Grant.clientCredentials({ scopes: ["read"] }),
  // TestClock.adjust jumps over a request in flight on real IO: its timeout must outlast any jump
  timeout: Duration.days(30)
})

/** The face's store, when the case gives one: `store: true`, and the store provided. */
const withStore = <A, E, R>(
  options: FaceOptions | undefined,
  stored: (store: TokenStore.TokenStore) => Effect.Effect<A, E, R | TokenStore.TokenStoreTag>,
  plain: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const store = options?.store
  return store === undefined ? plain : Effect.provideService(stored(store), TokenStore.TokenStoreTag, store)
}

const sourceFace = (server: AuthServer.AuthServer, options?: FaceOptions) =>
  withStore(
    options,
    () => TokenSource.make({ ...credential(server, options), policy: noJitter, store: true }),
    TokenSource.make({ ...credential(server, options), policy: noJitter })
  )

describe("resilience contract", () => {
  describe("TokenSource.make", () => resilienceSuite(sourceFace, { refresh: true }))

  describe("a TokenPool source", () =>
    resilienceSuite((server, options) =>
      Effect.flatMap(
        withStore(
          options,
          // kept two days: the cases ask for a token up to a day apart, longer than the default idle time
          () => TokenPool.make({ policy: noJitter, idleTimeToLive: "2 days", store: true }),
          TokenPool.make({ policy: noJitter, idleTimeToLive: "2 days" })
        ),
        (pool) => pool.source(credential(server, options))
      ), { refresh: true }))

  describe("the TokenClient facade", () =>
    resilienceSuite(
      (server, options) =>
        Effect.map(Effect.flatMap(sourceFace(server, options), TokenClient.make), (client): Face => facadeFace(client)),
      { refresh: false }
    ))
})
