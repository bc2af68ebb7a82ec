/**
 * The resilience contract (`resilience.ts`) against every face that runs on the test's Clock: a
 * `TokenSource`, a `TokenPool`'s source and the Promise facade. (A `TokenMirror` answers from another
 * thread in real time; it serves what its owner's source decides.)
 */
import { describe } from "@effect/vitest"
import { Duration, Effect, Redacted } from "effect"
import { ClientAuth, Grant, TokenClient, TokenPool, TokenSource } from "tokenwarden"
import type { AuthServer } from "tokenwarden/testing"
import { CLIENT_SECRET } from "../secrets.js"
import { noJitter } from "../util.js"
import { facadeFace } from "./facade.js"
import { type Face, resilienceSuite } from "./resilience.js"

const credential = (server: AuthServer.AuthServer) => ({
  url: server.tokenUrl,
  clientAuth: ClientAuth.basic("client", Redacted.make(CLIENT_SECRET)),
  grant: Grant.clientCredentials({ scopes: ["read"] }),
  // TestClock.adjust jumps over a request in flight on real IO: its timeout must outlast any jump
  timeout: Duration.days(30)
})

const sourceFace = (server: AuthServer.AuthServer) => TokenSource.make({ ...credential(server), policy: noJitter })

describe("resilience contract", () => {
  describe("TokenSource.make", () => resilienceSuite(sourceFace, { refresh: true }))

  describe("a TokenPool source", () =>
    resilienceSuite((server) =>
      // kept a day: the cases ask for a token an hour apart, longer than the default idle time
      Effect.flatMap(
        TokenPool.make({ policy: noJitter, idleTimeToLive: "1 day" }),
        (pool) => pool.source(credential(server))
      ), { refresh: true }))

  describe("the TokenClient facade", () =>
    resilienceSuite(
      (server) =>
        Effect.map(Effect.flatMap(sourceFace(server), TokenClient.make), (client): Face => facadeFace(client)),
      { refresh: false }
    ))
})
