import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Zlib from "node:zlib"
import { type MalformedResponse, TransportError } from "../TokenError.js"
import { type Answer, parseJson, refused } from "./failure.js"
import type { Sent } from "./scrub.js"
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

interface Body {
  readonly bytes: Buffer
  readonly tooLarge: boolean
}

// RFC 9110 section 6.4.1: these answers have no content, whatever their headers say
const noContent = (method: string, status: number) =>
  method === "HEAD" || status === 204 || status === 205 || status === 304

// an oversized body is reported, never buffered whole: a declared length is refused before reading
const readBody = (response: HttpClientResponse.HttpClientResponse, method: string) =>
  Effect.gen(function*() {
    if (noContent(method, response.status)) return { bytes: Buffer.alloc(0), tooLarge: false }
    if (Number(response.headers["content-length"] ?? "0") > MAX_BODY_BYTES) {
      return { bytes: Buffer.alloc(0), tooLarge: true }
    }
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
    return { bytes: Buffer.concat(read.chunks), tooLarge: read.tooLarge } satisfies Body
  })

// media types whose bodies are text a person can read in an excerpt
const textualTypes = new Set([
  "application/json",
  "application/x-www-form-urlencoded",
  "application/xml",
  "application/problem+json"
])

/**
 * Whether a content type is textual: `text/*`, JSON (`application/json`, `application/*+json`), a
 * form, XML.
 *
 * @internal
 */
export const isTextual = (contentType: string | undefined): boolean => {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase()
  return type.startsWith("text/") || type.endsWith("+json") || textualTypes.has(type)
}

const knownEncodings = new Set(["", "identity", "gzip", "x-gzip", "deflate", "br"])

// whether the bytes are still compressed (fetch hands them over decoded, with the header left as it was)
const looksCompressed = (encoding: string, bytes: Buffer): boolean => {
  if (encoding === "gzip" || encoding === "x-gzip") return bytes[0] === 0x1f && bytes[1] === 0x8b
  // RFC 1950: deflate in a zlib wrapper, whose two first bytes are a multiple of 31
  if (encoding === "deflate") return (bytes[0]! & 0x0f) === 8 && ((bytes[0]! << 8) | bytes[1]!) % 31 === 0
  // brotli has no magic bytes: a body that is JSON already is taken as decoded, any other is tried
  return encoding === "br" && bytes.length > 0 && parseJson(bytes.toString("utf8")) === undefined
}

/**
 * The body as text. fetch decodes a compressed body and the undici and node:http clients hand over its
 * bytes; the ones still compressed are decoded here (into at most `MAX_BODY_BYTES`), so every client
 * reads the same text. Bytes that stay compressed or binary are never quoted.
 *
 * @internal
 */
export const decodeBody = (
  body: { readonly bytes: Buffer; readonly tooLarge: boolean },
  headers: Readonly<Record<string, string | undefined>>
): { readonly text: string; readonly textual: boolean; readonly tooLarge: boolean } => {
  if (body.tooLarge) return { text: "", textual: false, tooLarge: true }
  const encoding = (headers["content-encoding"] ?? "").trim().toLowerCase()
  let bytes = body.bytes
  if (looksCompressed(encoding, bytes)) {
    const options = { maxOutputLength: MAX_BODY_BYTES }
    try {
      bytes = encoding === "br"
        ? Zlib.brotliDecompressSync(bytes, options)
        : encoding === "deflate"
        ? Zlib.inflateSync(bytes, options)
        : Zlib.gunzipSync(bytes, options)
    } catch (error) {
      if ((error as { readonly code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") {
        return { text: "", textual: false, tooLarge: true }
      }
      // gzip or deflate that does not decompress is broken bytes; a body fetch decoded from brotli
      // does not decompress either, and is the text it is
      if (encoding !== "br") return { text: bytes.toString("latin1"), textual: false, tooLarge: false }
    }
  } else if (!knownEncodings.has(encoding) && parseJson(bytes.toString("utf8")) === undefined) {
    // an encoding we do not know, or bytes that are not what it says: not text we may quote
    return { text: bytes.toString("latin1"), textual: false, tooLarge: false }
  }
  const text = bytes.toString("utf8")
  return { text, textual: isTextual(headers["content-type"]) && !looksBinary(text), tooLarge: false }
}

// bytes that are not UTF-8 text (U+FFFD where they did not decode) or hold control characters other
// than white space: whatever the content type says, not text to quote
const looksBinary = (text: string): boolean =>
  /[\u0000-\u0008\u000e-\u001a\u001c-\u001f\ufffd]/.test(text.slice(0, 4096))

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
 * what the answer means is the caller's to decide (see `successJson`). `sent` are the values the request
 * carried, scrubbed from whatever is made of the answer.
 *
 * The platform's client span is disabled for these requests: it records the full URL with its query
 * and the response headers (`Location`, `WWW-Authenticate`). Our own span has the method, the server,
 * the path and the status.
 *
 * @internal
 */
export const exchange = (
  client: HttpClient.HttpClient,
  request: HttpClientRequest.HttpClientRequest,
  options: { readonly url: string; readonly timeout: Duration.DurationInput; readonly sent: Sent }
): Effect.Effect<Exchanged, TransportError> => {
  const { method } = request
  const { sent, url } = options
  const target = new URL(request.url)
  return client.pipe(
    HttpClient.withTracerPropagation(false),
    HttpClient.withTracerDisabledWhen(() => true)
  ).execute(request).pipe(
    Effect.flatMap((response) => Effect.map(readBody(response, method), (body) => ({ response, body }))),
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
      Effect.map(Clock.currentTimeMillis, (now) => {
        const decoded = decodeBody(body, response.headers)
        return {
          answer: {
            method,
            url,
            status: response.status,
            contentType: response.headers["content-type"],
            retryAfter: response.headers["retry-after"],
            date: response.headers["date"],
            body: decoded.text,
            textual: decoded.textual,
            now,
            sent
          },
          tooLarge: decoded.tooLarge
        }
      })
    ),
    Effect.tap(({ answer }) => Effect.annotateCurrentSpan("http.response.status_code", answer.status)),
    Effect.withSpan(`tokenwarden.http ${method}`, {
      kind: "client",
      captureStackTrace: false,
      attributes: {
        "http.request.method": method,
        "server.address": target.hostname,
        ...(target.port === "" ? {} : { "server.port": Number(target.port) }),
        "url.path": target.pathname
      }
    })
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
