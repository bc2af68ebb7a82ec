/**
 * Every decoder of server answers, on arbitrary input (effect/FastCheck): token responses, token
 * errors, authorization server metadata, device authorization responses, Baack representations. Any
 * answer gives a value or a typed error, never a defect; and a secret the request carried, planted
 * anywhere in the answer (values, field names, codes, descriptions, in any case or encoding), never
 * comes back out of the error, printed any way.
 *
 * The answers come from a stub HttpClient, not a socket: each property runs a hundred times.
 */
import { HttpClient, HttpClientResponse } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, FastCheck as fc, Inspectable, Redacted, Schedule } from "effect"
import * as Util from "node:util"
import type { AccessToken } from "tokenwarden"
import { Baack, ClientAuth, DeviceFlow, Discovery, Grant, RefreshPolicy, TokenEndpoint, TokenError } from "tokenwarden"
import { ACCESS, API_TOKEN, CLIENT_SECRET, found, OPAQUE_ACCESS, REFRESH } from "./secrets.js"

const form = (s: string) => new URLSearchParams({ s }).toString().slice(2)
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64")

const words = [
  "Bearer",
  "bearer",
  "invalid_grant",
  "invalid_client",
  "server_error",
  "slow_down",
  "BAD_REQUEST",
  "INVALID_REPRESENTATION",
  "https://auth.example.com",
  "https://auth.example.com/token",
  "3600",
  "",
  ACCESS
]

const knownFields = [
  "access_token",
  "token_type",
  "expires_in",
  "refresh_token",
  "scope",
  "id_token",
  "error",
  "error_description",
  "error_uri",
  "code",
  "message",
  "errors",
  "field",
  "device_code",
  "user_code",
  "verification_uri",
  "verification_uri_complete",
  "interval",
  "issuer",
  "token_endpoint",
  "revocation_endpoint",
  "grant_types_supported",
  "clientID",
  "owner",
  "urn",
  "token",
  "bearerToken",
  "secret"
]

interface AnswerSpec {
  readonly status: number
  readonly contentType: string
  readonly body: string
}

/**
 * Answers with `secrets` planted anywhere: status, content type and body (JSON, JSON cut short, with a
 * BOM, or any text), the body's values, field names, codes and descriptions holding the secrets in
 * any case or encoding. A test plants what its request sent, and a JWT (which no request sends, and
 * which is masked as what looks like a credential).
 */
const answersPlanting = (secrets: ReadonlyArray<string>): fc.Arbitrary<AnswerSpec> => {
  const echoed = fc.constantFrom(...secrets, ACCESS).chain((secret) =>
    fc.constantFrom(
      secret,
      secret.toUpperCase(),
      encodeURIComponent(secret),
      form(form(secret)),
      b64(`client:${secret}`),
      `Basic ${b64(`client:${secret}`)}`,
      `bearer ${secret}`,
      `"refresh_token": "${secret}"`
    )
  )
  const planted = fc.tuple(fc.string({ maxLength: 20 }), echoed, fc.string({ maxLength: 20 })).map(([a, s, b]) =>
    a + s + b
  )
  const text = fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.constantFrom(...words), planted)
  const fieldNames = fc.oneof(fc.constantFrom(...knownFields), text)
  const json: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: "small" },
      text,
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie("value"), { maxLength: 4 }),
      fc.dictionary(fieldNames, tie("value"), { maxKeys: 8 })
    )
  })).value
  // an object with the fields decoders look for, each maybe present, maybe odd
  const shaped = fc.dictionary(fieldNames, json, { minKeys: 1, maxKeys: 10 })
  return fc.record({
    status: fc.constantFrom(200, 201, 400, 401, 403, 404, 408, 409, 429, 500, 503),
    contentType: fc.constantFrom("application/json", "text/html", "text/plain", "application/octet-stream"),
    body: fc.oneof(
      shaped.map((o) => JSON.stringify(o)),
      json.map((v) => JSON.stringify(v) ?? ""),
      shaped.chain((o) => fc.nat().map((n) => JSON.stringify(o).slice(0, n))),
      shaped.map((o) => "\ufeff" + JSON.stringify(o)),
      text
    )
  })
}

/** An HttpClient that answers every request with `answer`, without a socket. */
const stub = (answer: AnswerSpec) =>
  HttpClient.make((request) =>
    Effect.succeed(
      HttpClientResponse.fromWeb(
        request,
        new Response(answer.body, { status: answer.status, headers: { "content-type": answer.contentType } })
      )
    )
  )

const renderings = (error: unknown): ReadonlyArray<string> => [
  String(error),
  JSON.stringify(error),
  Util.inspect(error, { depth: 10 }),
  Inspectable.format(error),
  Cause.pretty(Cause.fail(error))
]

/**
 * Runs `effect` against `answer`: it must succeed, or fail with an error `isTyped` accepts (never a
 * defect), whose renderings show none of `secrets`: the values its request sent (scrubbed as sent
 * values) and the JWT (masked as what looks like a credential).
 */
const decodes = <A, E>(
  answer: AnswerSpec,
  effect: Effect.Effect<A, E, HttpClient.HttpClient>,
  isTyped: (error: unknown) => boolean,
  secrets: ReadonlyArray<string>
) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(Effect.provideService(effect, HttpClient.HttpClient, stub(answer)))
    if (Exit.isSuccess(exit)) return
    assert.deepStrictEqual(Cause.defects(exit.cause).pipe((d) => [...d]), [], Cause.pretty(exit.cause))
    const error = Cause.failureOption(exit.cause)
    assert.isTrue(error._tag === "Some" && isTyped(error.value), Cause.pretty(exit.cause))
    for (const text of renderings(error._tag === "Some" ? error.value : undefined)) {
      assert.deepStrictEqual(found(text, secrets), [], text)
    }
  })

const isTokenError = (u: unknown) => TokenError.isTokenError(u)

const previous: AccessToken.AccessToken = {
  value: Redacted.make(OPAQUE_ACCESS),
  type: "Bearer",
  issuedAt: 0,
  lifetimeSource: "default",
  scopes: [],
  refreshToken: Redacted.make(REFRESH),
  extra: Redacted.make({})
}

const url = "https://auth.example.com/token"
const clientAuth = ClientAuth.basic("client", Redacted.make(CLIENT_SECRET))

describe("every decoder, on arbitrary answers", () => {
  it.effect.prop("token responses and token errors: a token or a typed error holding nothing we sent", [
    answersPlanting([CLIENT_SECRET, REFRESH, OPAQUE_ACCESS])
  ], ([
    answer
  ]) =>
    Effect.gen(function*() {
      const endpoint = yield* TokenEndpoint.make({ url, clientAuth })
      yield* decodes(
        answer,
        endpoint.request(Grant.refreshToken({ refreshToken: Redacted.make(REFRESH) }), previous),
        isTokenError,
        [CLIENT_SECRET, REFRESH, OPAQUE_ACCESS, ACCESS]
      )
    }).pipe(Effect.provideService(HttpClient.HttpClient, stub(answer))))

  it.effect.prop("device authorization responses", [answersPlanting([CLIENT_SECRET])], ([answer]) =>
    decodes(
      answer,
      DeviceFlow.authorize({
        grant: Grant.deviceCode({ deviceAuthorizationEndpoint: "https://auth.example.com/device" }),
        clientAuth
      }),
      isTokenError,
      [CLIENT_SECRET, ACCESS]
    ))

  it.effect.prop("authorization server metadata", [answersPlanting([])], ([answer]) =>
    decodes(
      answer,
      Discovery.discover("https://auth.example.com"),
      (e) => isTokenError(e) || ["IssuerMismatch", "MetadataNotFound"].includes((e as { _tag?: string })._tag ?? ""),
      [ACCESS]
    ))

  it.effect.prop(
    "Baack representations and API errors",
    [answersPlanting([API_TOKEN])],
    ([answer]) =>
      Effect.gen(function*() {
        // no retries: a transient answer is the error itself (and TestClock would hold a retry's sleep)
        const clients = yield* Baack.make({
          baseUrl: "https://api.baack.co",
          rootToken: Redacted.make(API_TOKEN),
          policy: RefreshPolicy.make({ retry: Schedule.stop })
        })
        const isApiError = (e: unknown) =>
          isTokenError(e) || ["Forbidden", "NotFound"].includes((e as { _tag?: string })._tag ?? "")
        const secrets = [API_TOKEN, ACCESS]
        yield* decodes(answer, clients.list, isApiError, secrets)
        yield* decodes(answer, clients.read("urn:client:1"), isApiError, secrets)
        const input = { scope: "api.baack.co", owner: { urn: "urn:c" }, clientID: "c" }
        yield* decodes(answer, clients.create(input), isApiError, secrets)
      }).pipe(Effect.provideService(HttpClient.HttpClient, stub(answer)))
  )
})
