/**
 * A fake Buddy for tests and examples, on 127.0.0.1: the authorize step (`GET /oauth2/authorize`, the
 * user approving at once), the token endpoint (`POST /oauth2/token`) and a protected API call
 * (`GET /user`), accepting exactly what Buddy's document describes and answering anything else with an
 * RFC 6749 section 5.2 error.
 *
 * It is a front in front of `AuthServer`: Buddy's own rules (the redirect rule, the 16 scopes, Basic
 * only for client credentials and the secret in the body only for the code exchange, `redirect_uri` iff
 * it was sent to authorize) are checked here; issuing, client authentication, single-use codes,
 * revocation, injected faults and the sample's answer shape are `AuthServer`'s, reached over loopback HTTP.
 * The rules are written here from Buddy's document, not imported from the `Buddy` module, so that a bug
 * in the client's own rules fails a test instead of passing on both sides.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import * as AuthServer from "./AuthServer.js"
import type { Mutable, Reply } from "./internal/loopbackServer.js"
import { headersOf, jsonReply, oauthError, readBody, send, serve } from "./internal/loopbackServer.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Default `"buddy-app"`. */
  readonly clientId?: string
  /** Default `"buddy-secret"`. */
  readonly clientSecret?: string
  /** The registered authorization callback URL; default `"https://app.example.com/buddy/callback"`. */
  readonly callbackUrl?: string
  /** Default none: answers carry no `expires_in` and tokens live until revoked, as the document's sample. */
  readonly lifetimeSeconds?: number | undefined
  /** Adds a `scope` field to token answers (Buddy's sample has none), given the scopes asked for. */
  readonly grantedScope?: ((requested: ReadonlyArray<string>) => string | undefined) | undefined
  /** Scopes Buddy has added since its document, accepted besides the documented 16. */
  readonly extraScopes?: ReadonlyArray<string> | undefined
}

/**
 * A request as the fake received it.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordedRequest {
  readonly method: string
  readonly path: string
  /** The query exactly as received (without `?`), to tell `scope=A+B` from `scope=A%2BB`. */
  readonly rawQuery: string
  /** The body exactly as received. */
  readonly rawBody: string
  readonly headers: Readonly<Record<string, string | undefined>>
  /** The query of a GET, the form body of a POST, decoded. */
  readonly params: Readonly<Record<string, string>>
  /** The status answered; 0 while the request is under way or when the connection was dropped. */
  readonly status: number
}

/**
 * What a browser gets from the authorize step: a redirect to the callback, or an error page.
 *
 * @since 0.1.0
 * @category models
 */
export interface Visit {
  readonly status: number
  readonly location: string | undefined
  readonly body: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface BuddyFake {
  /** `http://127.0.0.1:PORT`: the base URL to give `Buddy`'s options. */
  readonly url: string
  readonly authorizeUrl: string
  readonly tokenUrl: string
  /** `GET` with `Authorization: Bearer <token>`: 200 with a user, or 401 for an unknown or revoked token. */
  readonly apiUrl: string
  readonly clientId: string
  readonly clientSecret: string
  readonly callbackUrl: string
  /** What the user's browser does with an authorize URL (the redirect is not followed). */
  readonly visit: (authorizeUrl: string, decision?: "approve" | "deny") => Effect.Effect<Visit>
  /** The user approves: the callback URL Buddy redirects to, with `code` and `state`. Dies without a redirect. */
  readonly approve: (authorizeUrl: string) => Effect.Effect<string>
  /** Faults for the next token requests that pass Buddy's own checks (see `AuthServer.Fault`). */
  readonly inject: (...faults: ReadonlyArray<AuthServer.Fault>) => Effect.Effect<void>
  /** Every request, in arrival order. */
  readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
  /** How many requests arrived, optionally to one path. */
  readonly count: (path?: string) => Effect.Effect<number>
  /** The user revokes the application: every token issued so far is refused. */
  readonly revokeAll: Effect.Effect<void>
  readonly revoke: (accessToken: string) => Effect.Effect<void>
  readonly issued: Effect.Effect<ReadonlyArray<AuthServer.IssuedToken>>
}

const hopByHop = new Set(["connection", "content-length", "date", "keep-alive", "transfer-encoding"])

// one plain HTTP exchange; undefined when the connection broke (an injected Drop)
const exchange = (
  url: string,
  init: { readonly method: string; readonly headers?: Record<string, string>; readonly body?: string }
) =>
  Effect.async<Reply | undefined>((resume) => {
    let done = false
    const finish = (reply: Reply | undefined) => {
      if (!done) resume(Effect.succeed(reply))
      done = true
    }
    const body = init.body ?? ""
    const req = Http.request(
      url,
      {
        method: init.method,
        headers: { ...init.headers, "Content-Length": String(Buffer.byteLength(body)) },
        agent: false
      },
      (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (chunk: Buffer) => chunks.push(chunk))
        res.on("error", () => finish(undefined))
        res.on("end", () => {
          const headers: Record<string, string> = {}
          for (const [k, v] of Object.entries(res.headers)) {
            if (v !== undefined && !hopByHop.has(k)) headers[k] = Array.isArray(v) ? v.join(", ") : v
          }
          finish({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks).toString("utf8") })
        })
      }
    )
    req.on("error", () => finish(undefined))
    req.end(body)
    return Effect.sync(() => req.destroy())
  })

const repeated = (params: URLSearchParams) => new Set(params.keys()).size !== [...params.keys()].length

const scopeList = (value: string | null) => (value ?? "").split(" ").filter((s) => s !== "")

// the "Supported Scopes" table of Buddy's document
const documentedScopes: ReadonlyArray<string> = [
  "WORKSPACE",
  "PROJECT_DELETE",
  "REPOSITORY_READ",
  "REPOSITORY_WRITE",
  "EXECUTION_INFO",
  "EXECUTION_RUN",
  "EXECUTION_MANAGE",
  "USER_INFO",
  "USER_KEY",
  "USER_EMAIL",
  "INTEGRATION_INFO",
  "MEMBER_EMAIL",
  "MANAGE_EMAILS",
  "WEBHOOK_INFO",
  "WEBHOOK_ADD",
  "WEBHOOK_MANAGE"
]

// a path's segments as written, and as they read once every percent-encoding (even doubled) is undone
const segments = (path: string) => path.split("/").slice(1)
const decodedSegments = (path: string) => {
  let decoded = path
  for (let i = 0; i < 4; i++) {
    let next: string
    try {
      next = decodeURIComponent(decoded)
    } catch {
      return undefined
    }
    if (next === decoded) break
    decoded = next
  }
  return decoded.split(/[/\\]/)
}

/**
 * Buddy's document: "the redirect URL's host and port must exactly match the callback URL. The redirect
 * URL's path must reference a subdirectory of the callback URL." Read as a server would: the same origin
 * (scheme, host, port), the callback's path segments first, nothing that climbs out of them (`..`, even
 * encoded), no fragment or credentials (RFC 6749 section 3.1.2). Undefined when the URI is allowed.
 */
const redirectRefusal = (callbackUrl: string, redirectUri: string): string | undefined => {
  let redirect: URL
  try {
    redirect = new URL(redirectUri)
  } catch {
    return "redirect_uri is not a URL"
  }
  const callback = new URL(callbackUrl)
  if (redirectUri.includes("#")) return "redirect_uri has a fragment"
  if (redirect.username !== "" || redirect.password !== "") return "redirect_uri carries credentials"
  if (redirect.origin !== callback.origin) return "redirect_uri's host and port must match the callback URL"
  // the path as sent: the parser would resolve "..", hiding what the client asked for
  const rawPath = /^[^:]+:\/\/[^/?#]*([^?#]*)/.exec(redirectUri)?.[1] || "/"
  const decoded = decodedSegments(rawPath)
  if (decoded === undefined || decoded.some((s) => s === "." || s === "..")) {
    return "redirect_uri's path must not climb out of the callback URL's"
  }
  const base = segments(callback.pathname).filter((s, i, all) => s !== "" || i < all.length - 1)
  const below = segments(rawPath)
  const isBelow = base.every((s, i) => below[i] === s)
  return isBelow ? undefined : "redirect_uri's path must be the callback URL's path or below it"
}

// what the steps share: Buddy's registration, the issuing server behind, and the codes' bookkeeping
interface Front {
  readonly clientId: string
  readonly callbackUrl: string
  readonly supported: ReadonlySet<string>
  readonly inner: AuthServer.AuthServer
  // codes authorized without a redirect_uri, whose exchange must send none; a code refused here is burnt
  readonly withoutRedirect: Set<string>
  readonly burnt: Set<string>
  // what the user answers at the next authorize step (set by `visit`)
  decision: "approve" | "deny"
}

/** Whether any of `scopes` is outside the documented ones and the extra ones. */
const unsupported = (front: Front, scopes: ReadonlyArray<string>) => scopes.some((s) => !front.supported.has(s))

/** `GET /oauth2/authorize`: Buddy's checks, then a code from the issuing server, redirected to the callback. */
const authorizeStep = (front: Front, params: URLSearchParams) =>
  Effect.gen(function*() {
    const { clientId, callbackUrl } = front
    // RFC 6749 section 4.1.2.1: an unknown client or a bad redirect_uri is shown to the user, never redirected
    if (repeated(params)) return oauthError(400, "invalid_request", "repeated parameter")
    if (params.get("client_id") !== clientId) return oauthError(400, "invalid_request", "unknown client_id")
    const redirectUri = params.get("redirect_uri") ?? undefined
    const refusal = redirectUri === undefined ? undefined : redirectRefusal(callbackUrl, redirectUri)
    if (refusal !== undefined) return oauthError(400, "invalid_request", refusal)
    const state = params.get("state")
    const back = (query: Record<string, string>): Reply => {
      const target = new URL(redirectUri ?? callbackUrl)
      for (const [k, v] of Object.entries(query)) target.searchParams.set(k, v)
      if (state !== null) target.searchParams.set("state", state)
      return { status: 302, headers: { Location: target.toString() }, body: "" }
    }
    if (params.get("type") !== "web_server") {
      return back({ error: "invalid_request", error_description: "type must be web_server" })
    }
    if (params.get("response_type") !== "code") return back({ error: "unsupported_response_type" })
    const scopes = scopeList(params.get("scope"))
    if (scopes.length === 0) return back({ error: "invalid_scope", error_description: "scope is required" })
    if (unsupported(front, scopes)) return back({ error: "invalid_scope", error_description: "unknown scope" })
    if (front.decision === "deny") return back({ error: "access_denied", error_description: "the user refused" })
    const scope = scopes.join(" ")
    const code = yield* front.inner.issueCode(
      redirectUri === undefined ? { clientId, scope } : { clientId, redirectUri, scope }
    )
    if (redirectUri === undefined) front.withoutRedirect.add(code)
    return back({ code })
  })

/** Buddy's rules for client credentials: Basic only, and a scope it knows; the refusal, or undefined. */
const clientCredentialsRefusal = (
  front: Front,
  params: URLSearchParams,
  authorization: string | undefined
): Reply | undefined => {
  if (authorization === undefined || !/^basic /i.test(authorization)) {
    return oauthError(401, "invalid_client", "client_credentials takes an HTTP Basic header")
  }
  if (params.has("client_secret") || params.has("client_id")) {
    return oauthError(400, "invalid_request", "client_credentials takes the credentials in the Basic header only")
  }
  const requested = scopeList(params.get("scope"))
  if (requested.length === 0) return oauthError(400, "invalid_scope", "scope is required")
  if (unsupported(front, requested)) return oauthError(400, "invalid_scope", "unknown scope")
  return undefined
}

/**
 * Buddy's rules for the code exchange: the credentials in the body, and `redirect_uri` only when one
 * was sent to authorize; the refusal, or undefined.
 */
const codeExchangeRefusal = (
  front: Front,
  params: URLSearchParams,
  authorization: string | undefined
): Reply | undefined => {
  if (authorization !== undefined) {
    return oauthError(400, "invalid_request", "the code exchange takes client_id and client_secret in the body")
  }
  for (const field of ["code", "client_id", "client_secret"]) {
    if (!params.has(field)) return oauthError(400, "invalid_request", `${field} is missing`)
  }
  const code = params.get("code")!
  const unredirected = front.withoutRedirect.delete(code)
  if (front.burnt.has(code)) return oauthError(400, "invalid_grant", "unknown or already used code")
  // the issuing server checks an identical redirect_uri when one was sent; Buddy also wants none otherwise
  if (unredirected && params.has("redirect_uri")) {
    front.burnt.add(code)
    return oauthError(400, "invalid_grant", "redirect_uri was not sent to authorize")
  }
  return undefined
}

/** Buddy's rules for any token request: the media type, single parameters, the two grants; the refusal, or undefined. */
const tokenRefusal = (front: Front, req: Http.IncomingMessage, params: URLSearchParams): Reply | undefined => {
  const mediaType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase()
  if (mediaType !== "application/x-www-form-urlencoded") {
    return oauthError(400, "invalid_request", "expected application/x-www-form-urlencoded")
  }
  if (repeated(params)) return oauthError(400, "invalid_request", "repeated parameter")
  const authorization = req.headers.authorization
  switch (params.get("grant_type")) {
    case "client_credentials":
      return clientCredentialsRefusal(front, params, authorization)
    case "authorization_code":
      return codeExchangeRefusal(front, params, authorization)
    case null:
    case "":
      return oauthError(400, "invalid_request", "grant_type is missing")
    default:
      return oauthError(400, "unsupported_grant_type", "Buddy knows authorization_code and client_credentials")
  }
}

/** `POST /oauth2/token`: Buddy's checks, then the request as sent to the issuing server, its answer as it came. */
const tokenStep = (front: Front, req: Http.IncomingMessage, rawBody: string, params: URLSearchParams) =>
  Effect.gen(function*() {
    const refusal = tokenRefusal(front, req, params)
    if (refusal !== undefined) return refusal
    const authorization = req.headers.authorization
    const headers: Record<string, string> = { "Content-Type": "application/x-www-form-urlencoded" }
    if (authorization !== undefined) headers.Authorization = authorization
    return yield* exchange(front.inner.tokenUrl, { method: "POST", headers, body: rawBody })
  })

/** `GET /user`: the issuing server's resource decides, a user in Buddy's shape is the answer. */
const apiStep = (front: Front, req: Http.IncomingMessage) =>
  Effect.gen(function*() {
    const authorization = req.headers.authorization
    const reply = yield* exchange(front.inner.resourceUrl, {
      method: "GET",
      headers: authorization === undefined ? {} : { Authorization: authorization }
    })
    return reply?.status === 200 ? jsonReply(200, { id: 1, name: "Buddy Fake", email: "fake@example.com" }) : reply
  })

/** The request router: records each request, then the step its method and path name, or 404. */
const route = (
  front: Front,
  requests: Array<Mutable<RecordedRequest>>,
  req: Http.IncomingMessage,
  res: Http.ServerResponse
) =>
  Effect.gen(function*() {
    const target = new URL(req.url ?? "/", "http://127.0.0.1")
    const rawQuery = target.search.slice(1)
    const rawBody = yield* readBody(req)
    const params = new URLSearchParams(req.method === "GET" ? rawQuery : rawBody)
    const record: Mutable<RecordedRequest> = {
      method: req.method ?? "",
      path: target.pathname,
      rawQuery,
      rawBody,
      headers: headersOf(req),
      params: Object.fromEntries(params),
      status: 0
    }
    requests.push(record)
    const step = `${req.method} ${target.pathname}`
    const reply = step === "GET /oauth2/authorize"
      ? yield* authorizeStep(front, params)
      : step === "POST /oauth2/token"
      ? yield* tokenStep(front, req, rawBody, params)
      : step === "GET /user"
      ? yield* apiStep(front, req)
      : jsonReply(404, { errors: [{ message: "not found" }] })
    if (reply === undefined) return req.socket.destroy()
    record.status = reply.status
    send(res, reply)
  })

/** What the user's browser gets from an authorize URL, the user answering `answer` (the redirect not followed). */
const visitWith = (front: Front, authorizeUrl: string, answer: "approve" | "deny" = "approve") =>
  Effect.suspend(() => {
    front.decision = answer
    return exchange(authorizeUrl, { method: "GET" })
  }).pipe(
    Effect.map((reply): Visit =>
      reply === undefined
        ? { status: 0, location: undefined, body: "" }
        : { status: reply.status, location: reply.headers.location, body: reply.body }
    ),
    Effect.ensuring(Effect.sync(() => (front.decision = "approve")))
  )

/**
 * Starts the fake on 127.0.0.1 with a random port; it stops when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<BuddyFake, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clientId = options.clientId ?? "buddy-app"
    const clientSecret = options.clientSecret ?? "buddy-secret"
    const callbackUrl = options.callbackUrl ?? "https://app.example.com/buddy/callback"
    const inner = yield* AuthServer.make({
      clients: [{ clientId, clientSecret, basicEncoding: "plain" }],
      lifetimeSeconds: options.lifetimeSeconds,
      issueRefreshTokens: false,
      path: "/oauth2/token",
      // the issuing server echoes the scopes asked for (a code carries those sent to authorize);
      // Buddy's sample answer has none, so only `grantedScope` writes one
      shapeToken: ({ scope, ...token }) => {
        const granted = options.grantedScope?.(scopeList(typeof scope === "string" ? scope : null))
        return granted === undefined ? token : { ...token, scope: granted }
      }
    })
    const front: Front = {
      clientId,
      callbackUrl,
      supported: new Set([...documentedScopes, ...options.extraScopes ?? []]),
      inner,
      withoutRedirect: new Set(),
      burnt: new Set(),
      decision: "approve"
    }
    const requests: Array<Mutable<RecordedRequest>> = []

    const url = yield* serve((req, res) => route(front, requests, req, res))

    const visit = (authorizeUrl: string, answer?: "approve" | "deny") => visitWith(front, authorizeUrl, answer)

    return {
      url,
      authorizeUrl: `${url}/oauth2/authorize`,
      tokenUrl: `${url}/oauth2/token`,
      apiUrl: `${url}/user`,
      clientId,
      clientSecret,
      callbackUrl,
      visit,
      approve: (authorizeUrl) =>
        Effect.flatMap(visit(authorizeUrl), (v) =>
          v.status === 302 && v.location !== undefined
            ? Effect.succeed(v.location)
            : Effect.dieMessage(`the authorize step answered ${v.status}: ${v.body.slice(0, 200)}`)),
      inject: inner.inject,
      requests: Effect.sync(() => requests.map((r) => ({ ...r }))),
      count: (path) => Effect.sync(() => requests.filter((r) => path === undefined || r.path === path).length),
      revokeAll: inner.revokeAll,
      revoke: inner.revokeAccessToken,
      issued: inner.issued
    } satisfies BuddyFake
  })
