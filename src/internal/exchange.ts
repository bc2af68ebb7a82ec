import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { type MalformedResponse, TransportError } from "../TokenError.js"
import { type Answer, parseJson, refused } from "./failure.js"
import { errorCode } from "./transport.js"

/**
 * Bodies are read up to this size: a token response is a few kilobytes, an API client list of
 * thousands fits easily.
 *
 * @internal
 */
export const MAX_BODY_BYTES = 1024 * 1024

/**
 * An answer with its body read, or found larger than `MAX_BODY_BYTES` (then `answer.body` is empty).
 *
 * @internal
 */
export interface Exchanged {
  readonly answer: Answer
  readonly tooLarge: boolean
}

// an oversized body is reported, never buffered whole: a declared length is refused before reading
const readBody = (response: HttpClientResponse.HttpClientResponse) =>
  Effect.gen(function*() {
    if (Number(response.headers["content-length"] ?? "0") > MAX_BODY_BYTES) return { text: "", tooLarge: true }
    const read = yield* response.stream.pipe(
      // fetch gives a 204 no body at all where Node's client gives an empty one: both read as ""
      Stream.catchAll((error) => error.reason === "EmptyBody" ? Stream.empty : Stream.fail(error)),
      Stream.runFoldWhile(
        { chunks: [] as Array<Uint8Array>, size: 0, tooLarge: false },
        (s) => !s.tooLarge,
        (s, chunk) => {
          s.size += chunk.length
          if (s.size > MAX_BODY_BYTES) s.tooLarge = true
          else s.chunks.push(chunk)
          return s
        }
      )
    )
    return { text: Buffer.concat(read.chunks).toString("utf8"), tooLarge: read.tooLarge }
  })

// the user's fetch options (a proxy dispatcher, say) stay; only redirects are overridden, since a secret
// in a header or body would follow a redirect to another host
const noRedirects = Effect.provideServiceEffect(
  FetchHttpClient.RequestInit,
  Effect.map(Effect.serviceOption(FetchHttpClient.RequestInit), (init): globalThis.RequestInit => ({
    ...Option.getOrUndefined(init),
    redirect: "manual"
  }))
)

/**
 * Sends a prepared request (any method, any body) and reads its answer: no redirects followed, no
 * trace headers, the body read up to `MAX_BODY_BYTES`, the whole within `timeout`. Fails only when no
 * answer came, as a `TransportError` naming `url` (the public URL: no query) and the system error code;
 * what the answer means is the caller's to decide (see `successJson`).
 *
 * @internal
 */
export const exchange = (
  client: HttpClient.HttpClient,
  request: HttpClientRequest.HttpClientRequest,
  options: { readonly url: string; readonly timeout: Duration.DurationInput }
): Effect.Effect<Exchanged, TransportError> => {
  const { method } = request
  const { url } = options
  return client.pipe(HttpClient.withTracerPropagation(false)).execute(request).pipe(
    Effect.flatMap((response) => Effect.map(readBody(response), (body) => ({ response, body }))),
    noRedirects,
    Effect.scoped,
    Effect.catchTags({
      RequestError: (e) =>
        Effect.fail(
          new TransportError({
            method,
            url,
            reason: e.reason === "Encode" || e.reason === "InvalidUrl" ? "Encode" : "Connection",
            code: errorCode(e.cause)
          })
        ),
      ResponseError: (e) => Effect.fail(new TransportError({ method, url, reason: "Body", code: errorCode(e.cause) }))
    }),
    Effect.timeoutFail({
      duration: options.timeout,
      onTimeout: () => new TransportError({ method, url, reason: "Timeout" })
    }),
    Effect.flatMap(({ body, response }) =>
      Effect.map(Clock.currentTimeMillis, (now) => ({
        answer: {
          method,
          url,
          status: response.status,
          contentType: response.headers["content-type"],
          retryAfter: response.headers["retry-after"],
          body: body.text,
          now
        },
        tooLarge: body.tooLarge
      }))
    )
  )
}

/**
 * The JSON body of a 2xx answer (`undefined` when empty or not JSON). An oversized body and a redirect
 * are refused without quoting the body; any other status is what `classify` makes of the answer.
 *
 * @internal
 */
export const successJson = <E>(
  exchanged: Exchanged,
  classify: (answer: Answer) => E
): Effect.Effect<unknown, E | MalformedResponse> => {
  const { answer, tooLarge } = exchanged
  if (tooLarge) return Effect.fail(refused(answer, "body larger than 1 MiB"))
  if (answer.status >= 300 && answer.status < 400) return Effect.fail(refused(answer, "redirect refused"))
  if (answer.status < 200 || answer.status >= 300) return Effect.fail(classify(answer))
  return Effect.succeed(parseJson(answer.body))
}
