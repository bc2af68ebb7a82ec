/**
 * The lifecycle contract every face of a token source keeps (a `TokenSource`, a `TokenPool`'s source,
 * the Promise facade, a worker's `TokenMirror`): written once, declared per face by
 * `lifecycle.test.ts`. Real HTTP against the testing server, in real time (the mirror's owner speaks
 * through a `BroadcastChannel`), with 60-second tokens, so nothing expires during a case.
 */
import type { HttpClient } from "@effect/platform"
import { assert, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import type { Scope } from "effect"
import type { AccessToken, TokenError } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { CLIENT_SECRET } from "../secrets.js"
import { HttpLive } from "../util.js"

/** What every face offers, as effects. */
export interface Face {
  readonly get: Effect.Effect<AccessToken.AccessToken, TokenError.TokenError>
  readonly invalidate: (token: AccessToken.AccessToken) => Effect.Effect<void>
}

/** Builds one face over a credential of the testing server (client "client", CLIENT_SECRET, scope read). */
export type MakeFace = (
  server: AuthServer.AuthServer
) => Effect.Effect<Face, unknown, HttpClient.HttpClient | Scope.Scope>

const value = (token: { readonly value: Redacted.Redacted }) => Redacted.value(token.value)

const setup = (makeFace: MakeFace) =>
  Effect.gen(function*() {
    const server = yield* AuthServer.make({
      clients: [{ clientId: "client", clientSecret: CLIENT_SECRET }],
      lifetimeSeconds: 60
    })
    return { server, face: yield* makeFace(server) }
  })

const live = (name: string, self: () => Effect.Effect<void, unknown, HttpClient.HttpClient | Scope.Scope>) =>
  it.live(name, () => self().pipe(Effect.provide(HttpLive), Effect.scoped, Effect.timeout("20 seconds")))

/** Declares the contract's cases for one face. */
export const lifecycleSuite = (makeFace: MakeFace) => {
  live("20 concurrent first gets share one request, and a valid token costs no request", () =>
    Effect.gen(function*() {
      const { face, server } = yield* setup(makeFace)
      const tokens = yield* Effect.all(Array.from({ length: 20 }, () => face.get), { concurrency: "unbounded" })
      assert.strictEqual(new Set(tokens.map(value)).size, 1)
      for (let i = 0; i < 50; i++) yield* face.get
      assert.strictEqual(yield* server.count(), 1)
    }))

  live(
    "10 concurrent invalidates of one refused token cause one request, and get hands out the new token",
    () =>
      Effect.gen(function*() {
        const { face, server } = yield* setup(makeFace)
        const refused = yield* face.get
        yield* Effect.all(Array.from({ length: 10 }, () => face.invalidate(refused)), { concurrency: "unbounded" })
        const next = yield* face.get
        assert.notStrictEqual(value(next), value(refused))
        assert.strictEqual(yield* server.count(), 2)
        // a 401 about a token already replaced changes nothing
        yield* face.invalidate(refused)
        assert.strictEqual(value(yield* face.get), value(next))
        assert.strictEqual(yield* server.count(), 2)
      })
  )

  live(
    "a permanent failure reaches the caller as its tagged error, which catchTag handles",
    () =>
      Effect.gen(function*() {
        const { face, server } = yield* setup(makeFace)
        const refused = yield* face.get
        yield* server.inject(AuthServer.Fault.status(400))
        yield* face.invalidate(refused)
        const outcome = yield* face.get.pipe(
          Effect.map(() => "token"),
          Effect.catchTag("InvalidRequest", (error) => Effect.succeed(`${error._tag} ${error.status}`))
        )
        assert.strictEqual(outcome, "InvalidRequest 400")
      })
  )

  live(
    "a transient failure is retried by the source itself: the caller gets the token that follows",
    () =>
      Effect.gen(function*() {
        const { face, server } = yield* setup(makeFace)
        const refused = yield* face.get
        // one 503 without Retry-After: the retry schedule's first step is about a second
        yield* server.inject(AuthServer.Fault.unavailable())
        yield* face.invalidate(refused)
        let token: AccessToken.AccessToken | undefined
        for (let i = 0; i < 100 && token === undefined; i++) {
          token = yield* face.get.pipe(
            Effect.catchTag("ServerError", () => Effect.sleep("50 millis").pipe(Effect.as(undefined)))
          )
        }
        assert.isDefined(token)
        assert.notStrictEqual(value(token!), value(refused))
        assert.strictEqual(yield* server.count(), 3)
      })
  )
}
