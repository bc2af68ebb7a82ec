/**
 * One process of the fleet tests: a password-grant TokenSource on the shared store (Redis, or a file
 * store's directory on this host), asking for a
 * token every ~100 ms and reporting on stdout, one JSON object a line:
 * - `{"type":"ready"}` once the source is built;
 * - `{"type":"get", "ok", "started", "at", "waited", "issuedAt", "expiresAt", "status", "statusAt", "fp"}`
 *   per `get`, called at `started` and returned at `at` (the source decided in between: under load
 *   `at` can be a few hundred ms after the decision); `issuedAt` and `expiresAt` are the token's
 *   lifetime as the source reckons it (from when the process that fetched it read the response),
 *   `status` is the fake server's `/resource` answer for this very token (checked with the server's
 *   clock), received at `statusAt`; `fp` a fingerprint of the token (never the token);
 * - `{"type":"log", "level", "message", "annotations"}` for each log line of the library.
 *
 * env: TOKEN_URL, RESOURCE_URL, WORKER_ID, LEASE_TTL_MS, and REDIS_URL or STORE_DIRECTORY; optionally
 * LEAD_FRACTION and JITTER_FRACTION (the refresh policy's; 0.15 and 0.05 by default)
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import * as AccessToken from "../../src/AccessToken.js"
import * as ClientAuth from "../../src/ClientAuth.js"
import * as FileTokenStore from "../../src/FileTokenStore.js"
import * as Grant from "../../src/Grant.js"
import * as RedisTokenStore from "../../src/RedisTokenStore.js"
import * as RefreshPolicy from "../../src/RefreshPolicy.js"
import * as TokenSource from "../../src/TokenSource.js"

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const id = env("WORKER_ID")
const resourceUrl = env("RESOURCE_URL")

const emit = (record: Record<string, unknown>) => process.stdout.write(JSON.stringify({ worker: id, ...record }) + "\n")

// what the test compares tokens by: a prefix of their hash
const fingerprint = (value: string) => Crypto.createHash("sha256").update(value).digest("hex").slice(0, 12)

const logger = Logger.make(({ annotations, logLevel, message }) => {
  const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
  const fields: Record<string, string> = {}
  for (const [key, value] of annotations) fields[key] = String(value)
  emit({ type: "log", level: logLevel.label, message: text, annotations: fields })
})

const resourceStatus = (token: AccessToken.AccessToken) =>
  Effect.promise(() =>
    fetch(resourceUrl, { headers: { authorization: AccessToken.authorizationHeader(token) } }).then(
      async (response) => {
        await response.arrayBuffer()
        return response.status
      },
      () => 0
    )
  )

const program = Effect.gen(function*() {
  const source = yield* TokenSource.make({
    url: env("TOKEN_URL"),
    clientAuth: ClientAuth.basic("client", Redacted.make("secret")),
    grant: Grant.password({ username: "user", password: Redacted.make("pass"), scopes: ["read"] }),
    // refresh 15-20% of the lifetime before expiry by default (a 3-second token: 2.4 to 2.55 s after
    // issue); handed out until 10% before expiry
    policy: RefreshPolicy.make({
      leadFraction: Number(process.env.LEAD_FRACTION ?? "0.15"),
      jitterFraction: Number(process.env.JITTER_FRACTION ?? "0.05"),
      minLead: 0
    }),
    // which process sent a request, for the test to find the lease holder
    headers: { "x-worker-id": id },
    timeout: "20 seconds",
    store: true
  })
  emit({ type: "ready" })
  while (true) {
    const started = yield* Clock.currentTimeMillis
    const result = yield* Effect.either(Effect.timeout(source.get, "15 seconds"))
    const at = yield* Clock.currentTimeMillis
    if (Either.isLeft(result)) {
      emit({ type: "get", ok: false, started, at, waited: at - started, error: result.left._tag })
    } else {
      const token = result.right
      const status = yield* resourceStatus(token)
      const statusAt = yield* Clock.currentTimeMillis
      emit({
        type: "get",
        ok: true,
        started,
        at,
        waited: at - started,
        issuedAt: token.issuedAt,
        expiresAt: token.expiresAt,
        status,
        statusAt,
        fp: fingerprint(Redacted.value(token.value))
      })
    }
    yield* Effect.sleep("100 millis")
  }
}).pipe(
  Effect.scoped,
  Effect.provide(Layer.mergeAll(
    process.env.STORE_DIRECTORY === undefined
      ? RedisTokenStore.layer({ url: env("REDIS_URL"), leaseTtl: Number(env("LEASE_TTL_MS")) })
      : FileTokenStore.layer({ directory: env("STORE_DIRECTORY"), leaseTtl: Number(env("LEASE_TTL_MS")) }).pipe(
        Layer.orDie,
        Layer.provide(NodeFileSystem.layer)
      ),
    NodeHttpClient.layerUndici
  )),
  Effect.provide(Logger.replace(Logger.defaultLogger, logger))
)

NodeRuntime.runMain(program)
