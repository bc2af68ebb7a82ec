/**
 * The device authorization grant (RFC 8628) in a program without a browser: the token source shows
 * the user a code through `changes` (`AwaitingUser`), polls until they approve, then keeps the token
 * fresh with its refresh token. Offline: a scripted fake server approves after two polls.
 *
 *   npx tsx examples/device-flow.ts
 */
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Option, Stream } from "effect"
import { ClientAuth, Grant, LineLogger, TokenSource } from "tokenwarden"
import { DeviceFake } from "tokenwarden/testing"

const main = Effect.gen(function*() {
  // the user "approves" on the third poll; polls are 1 second apart
  const server = yield* DeviceFake.make({ interval: 1, script: ["pending", "pending", "approve"] })

  // returns at once: the flow needs a person
  const source = yield* TokenSource.make({
    url: server.tokenUrl,
    clientAuth: ClientAuth.none("device-app"),
    grant: Grant.deviceCode({ deviceAuthorizationEndpoint: server.deviceAuthorizationUrl, scopes: ["read"] })
  })

  // show the user what to do, each time a flow starts (the user code is meant to be shown)
  yield* source.changes.pipe(
    Stream.runForEach((state) =>
      state._tag === "AwaitingUser"
        ? Effect.logInfo("to sign in, open the URL and enter the code").pipe(
          Effect.annotateLogs({
            url: state.verificationUri,
            code: state.userCode,
            or_open: Option.getOrElse(state.verificationUriComplete, () => "")
          })
        )
        : Effect.void
    ),
    Effect.forkScoped
  )

  const token = yield* source.get.pipe(
    Effect.tapErrorTag("AccessDenied", () => Effect.logWarning("the user said no")),
    Effect.tapErrorTag("DeviceCodeExpired", () => Effect.logWarning("the code expired"))
  )
  yield* Effect.logInfo("signed in").pipe(
    Effect.annotateLogs({
      type: token.type,
      scopes: token.scopes.join(" "),
      has_refresh_token: token.refreshToken !== undefined,
      polls: (yield* server.polls).map((p) => p.answer).join(",")
    })
  )
}).pipe(Effect.scoped)

main.pipe(
  Effect.provide(Layer.merge(NodeHttpClient.layerUndici, LineLogger.layer)),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
