/**
 * The device authorization grant (RFC 8628) in a program without a browser: the token source shows
 * the user a code through `changes` (`AwaitingUser`), polls until they approve, then keeps the token
 * fresh with its refresh token. Offline: a scripted fake server approves after two polls.
 *
 *   npx tsx examples/device-flow.ts
 */
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Logger, LogLevel, Option, Stream } from "effect"
import { ClientAuth, Grant, TokenSource } from "tokenwarden"
import { DeviceFake } from "tokenwarden/testing"
// `import { DeviceFlow } from "tokenwarden"` and `from "tokenwarden/testing"` once the barrels export them

const main = Effect.gen(function*() {
  // the user "approves" on the third poll; polls are 1 second apart
  const server = yield* DeviceFake.make({ interval: 1, script: ["pending", "pending", "approve"] })

  // returns at once: the flow needs a person
  const source = yield* TokenSource.make({
    url: server.tokenUrl,
    clientAuth: ClientAuth.none("device-app"),
    grant: Grant.deviceCode({ deviceAuthorizationEndpoint: server.deviceAuthorizationUrl, scopes: ["read"] })
  })

  // show the user what to do, each time a flow starts
  yield* source.changes.pipe(
    Stream.runForEach((state) =>
      state._tag === "AwaitingUser"
        ? Console.log(
          `To sign in, open ${state.verificationUri} and enter ${state.userCode}`,
          Option.match(state.verificationUriComplete, { onNone: () => "", onSome: (url) => `(or open ${url})` })
        )
        : Effect.void
    ),
    Effect.forkScoped
  )

  const token = yield* source.get.pipe(
    Effect.tapErrorTag("AccessDenied", () => Console.log("the user said no")),
    Effect.tapErrorTag("DeviceCodeExpired", () => Console.log("the code expired"))
  )
  yield* Console.log(
    `signed in: a ${token.type} token for ${token.scopes.join(" ")}, with a refresh token: ${
      token.refreshToken !== undefined
    }`
  )
  yield* Console.log("polls:", (yield* server.polls).map((p) => p.answer).join(", "))
}).pipe(Effect.scoped)

main.pipe(
  Effect.provide(NodeHttpClient.layerUndici),
  Logger.withMinimumLogLevel(LogLevel.Warning),
  NodeRuntime.runMain
)
