import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Redacted } from "effect"
import { ClientAuth, Grant, RefreshPolicy, TokenPool, TokenSource } from "tokenwarden"
import { AuthServer } from "tokenwarden/testing"
import { HttpLive } from "./util.js"

describe("RefreshPolicy", () => {
  it.effect("config reads every setting under a prefix; a missing one is the default", () =>
    Effect.gen(function*() {
      const policy = yield* RefreshPolicy.config("CRM").pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(
          new Map([["CRM_MAX_WAIT", "5 seconds"], ["CRM_SHUTDOWN_GRACE", "2 seconds"], ["CRM_LEAD_FRACTION", "0.5"]])
        ))
      )
      assert.strictEqual(Duration.toMillis(policy.maxWait), 5000)
      assert.strictEqual(Duration.toMillis(policy.shutdownGrace), 2000)
      assert.strictEqual(policy.leadFraction, 0.5)
      assert.strictEqual(Duration.toMillis(policy.maxLifetime), Duration.toMillis(RefreshPolicy.defaults.maxLifetime))
      const wrong = yield* Effect.flip(
        RefreshPolicy.config("CRM").pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["CRM_MAX_WAIT", "soon"]])))
        )
      )
      assert.include(String(wrong), "CRM_MAX_WAIT")
    }))

  it.scoped("a setting that cannot be used fails a source's and a pool's make with InvalidConfiguration, before any request", () =>
    Effect.gen(function*() {
      const server = yield* AuthServer.make()
      for (
        const policy of [
          RefreshPolicy.make({ maxWait: Duration.infinity }),
          RefreshPolicy.make({ shutdownGrace: Duration.infinity }),
          RefreshPolicy.make({ maxLifetime: Duration.infinity })
        ]
      ) {
        const source = yield* Effect.flip(TokenSource.make({
          url: server.tokenUrl,
          clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
          grant: Grant.clientCredentials(),
          policy
        }))
        assert.strictEqual(source._tag, "InvalidConfiguration")
        const pool = yield* Effect.flip(TokenPool.make({ policy }))
        assert.strictEqual(pool._tag, "InvalidConfiguration")
        assert.include(pool.message, "RefreshPolicy.")
      }
      assert.strictEqual(yield* server.count(), 0)
    }).pipe(Effect.provide(HttpLive)))
})
