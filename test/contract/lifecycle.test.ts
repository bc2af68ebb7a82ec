/**
 * The lifecycle contract (`lifecycle.ts`) against every face of a token source.
 */
import { describe } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { ClientAuth, Grant, TokenClient, TokenMirror, TokenPool, TokenSource } from "tokenwarden"
import type { AuthServer } from "tokenwarden/testing"
import { CLIENT_SECRET } from "../secrets.js"
import { facadeFace } from "./facade.js"
import { type Face, lifecycleSuite } from "./lifecycle.js"

const credential = (server: AuthServer.AuthServer) => ({
  url: server.tokenUrl,
  clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
  grant: Grant.clientCredentials({ scopes: ["read"] })
})

const sourceFace = (server: AuthServer.AuthServer) => TokenSource.make(credential(server))

describe("lifecycle contract", () => {
  describe("TokenSource.make", () => lifecycleSuite(sourceFace))

  describe("a TokenPool source", () =>
    lifecycleSuite((server) => Effect.flatMap(TokenPool.make(), (pool) => pool.source(credential(server)))))

  describe("the TokenClient facade", () =>
    lifecycleSuite((server) =>
      Effect.map(Effect.flatMap(sourceFace(server), TokenClient.make), (client): Face => facadeFace(client))
    ))

  describe("a TokenMirror in another thread's place", () =>
    lifecycleSuite((server) =>
      Effect.gen(function*() {
        const handle = yield* TokenMirror.serve(yield* sourceFace(server), { heartbeat: "100 millis" })
        return yield* TokenMirror.make(handle)
      })
    ))
})
