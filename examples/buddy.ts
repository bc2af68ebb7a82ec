/**
 * Buddy's two flows, offline against the fake Buddy on 127.0.0.1 (`npx tsx examples/buddy.ts`):
 *
 * 1. client credentials (a developer testing the app): HTTP Basic, `scope=WORKSPACE+EXECUTION_RUN`;
 *    when the API refuses the token, the source simply runs the grant again;
 * 2. the web flow: the authorize URL, the user approving, the callback's `state` checked, the code
 *    exchanged once; when the user revokes the app, the source says `ReauthorizationRequired`.
 *
 * With the real Buddy, drop `baseUrl` and send the user's browser to `request.url`.
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Context, Effect, Layer, Redacted } from "effect"
import type { TokenSource } from "tokenwarden"
import { AccessToken, Buddy, LineLogger } from "tokenwarden"
import { BuddyFake } from "tokenwarden/testing"

class BuddyCi extends Context.Tag("example/BuddyCi")<BuddyCi, TokenSource.TokenSource>() {}

/** A Buddy API call; on 401 the token is handed back to its source, which decides what comes next. */
const whoAmI = (url: string, source: TokenSource.TokenSource) =>
  Effect.gen(function*() {
    const token = yield* source.get
    const response = yield* HttpClient.execute(
      HttpClientRequest.get(url).pipe(
        HttpClientRequest.setHeader("authorization", AccessToken.authorizationHeader(token))
      )
    )
    if (response.status === 401) yield* source.invalidate(token)
    return response.status
  })

/** 1. client credentials, the source taken from the program's own tag */
const clientCredentials = (fake: BuddyFake.BuddyFake) =>
  Effect.gen(function*() {
    const ci = yield* BuddyCi
    const token = yield* ci.get
    yield* Effect.logInfo("client credentials: got a token").pipe(
      Effect.annotateLogs({
        lifetime_from: token.lifetimeSource,
        may_read_executions: Buddy.covers(Buddy.grantedScopes(token), "EXECUTION_INFO")
      })
    )
    yield* Effect.logInfo("GET /user").pipe(Effect.annotateLogs({ status: yield* whoAmI(fake.apiUrl, ci) }))
    yield* fake.revokeAll
    yield* Effect.logInfo("the user revoked the app; GET /user").pipe(
      Effect.annotateLogs({ status: yield* whoAmI(fake.apiUrl, ci) })
    )
    yield* Effect.logInfo("after the grant ran again; GET /user").pipe(
      Effect.annotateLogs({ status: yield* whoAmI(fake.apiUrl, ci) })
    )
  }).pipe(
    Effect.provide(Buddy.layer(BuddyCi, {
      clientId: fake.clientId,
      clientSecret: Redacted.make(fake.clientSecret),
      scopes: ["WORKSPACE", "EXECUTION_RUN"],
      baseUrl: fake.url
    }))
  )

const program = Effect.gen(function*() {
  const fake = yield* BuddyFake.make({ callbackUrl: "http://127.0.0.1:8080/buddy/callback" })
  yield* clientCredentials(fake)

  // 2. the web flow
  const request = yield* Buddy.authorize({
    clientId: fake.clientId,
    scopes: ["WORKSPACE", "REPOSITORY_READ"],
    callbackUrl: "http://127.0.0.1:8080/buddy/callback",
    redirectUri: "http://127.0.0.1:8080/buddy/callback/workspace-1",
    baseUrl: fake.url
  })
  yield* Effect.logInfo("web flow: send the user to the authorize URL").pipe(Effect.annotateLogs({ url: request.url }))
  const callbackUrl = yield* fake.approve(request.url) // the user logs in and allows access
  const grant = yield* Buddy.callback(request, callbackUrl)
  const user = yield* Buddy.makeWebFlow({
    clientId: fake.clientId,
    clientSecret: Redacted.make(fake.clientSecret),
    grant,
    baseUrl: fake.url
  })
  yield* Effect.logInfo("web flow: GET /user").pipe(Effect.annotateLogs({ status: yield* whoAmI(fake.apiUrl, user) }))
  yield* fake.revokeAll
  yield* Effect.logInfo("the user revoked the app; GET /user").pipe(
    Effect.annotateLogs({ status: yield* whoAmI(fake.apiUrl, user) })
  )
  const next = yield* Effect.flip(user.get)
  yield* Effect.logInfo("send the user through authorize again").pipe(Effect.annotateLogs({ error: next._tag }))
})

program.pipe(
  Effect.scoped,
  Effect.provide(Layer.merge(NodeHttpClient.layerUndici, LineLogger.layer)),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
