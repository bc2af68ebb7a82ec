/**
 * A fake Baack API client endpoint for tests and examples, on 127.0.0.1: CRUD on `/n/v1/apiclient/` with
 * the root client's bearer token, answering with the documented representation and the assumed error
 * representation `{"code", "message", "errors": [{"code", "field"}]}` (see PROVIDERS.md).
 *
 * - CREATE `POST /n/v1/apiclient/` answers 201 with the representation plus the `urn` and bearer
 *   `token` it assigns; READ, UPDATE (`PUT`, the whole representation) and DELETE (204) address
 *   `/n/v1/apiclient/{urn}`; LIST (`GET` on the prefix) answers a JSON array, tokens left out.
 * - 400 `INVALID_REPRESENTATION` for missing fields (`REPRESENTATION_MISSING_REQUIRED_FIELD`) or invalid
 *   ones (`REPRESENTATION_INVALID_FIELD`), 400 `BAD_REQUEST` for malformed JSON or another content type,
 *   401 `UNAUTHORIZED` without the root token, 403 `FORBIDDEN` for a narrower client's token, 404
 *   `NOT_FOUND`, 405 `METHOD_NOT_ALLOWED`.
 * - A representation that only lacks required fields can be answered, by option, with
 *   `REPRESENTATION_MISSING_REQUIRED_FIELD` as the top-level code, even with a 2xx status: the document
 *   says that error representation "may be returned instead" of `CREATE_SUCCESS`.
 * - The root token can be rotated (`rotateRootToken`): the old one is refused with 401 from then on.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import type * as Http from "node:http"
import { headersOf, readBody, send, serve } from "./internal/loopbackServer.js"

/**
 * One injected answer, given to the next authenticated request instead of its real answer.
 *
 * @since 0.1.0
 * @category models
 */
export interface Fault {
  readonly status: number
  readonly body: string
  readonly contentType?: string
  readonly headers?: Record<string, string>
  /** The connection is destroyed instead of answered. */
  readonly drop?: boolean
  /** The request is carried out first (a client created, updated or deleted), then its answer is lost. */
  readonly applied?: boolean
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const Fault = {
  /** An API error representation with any code, known or not. */
  apiError: (status: number, code: string, message?: string): Fault => ({
    status,
    body: JSON.stringify({ code, ...(message === undefined ? {} : { message }) }),
    contentType: "application/json"
  }),
  /** Any body as it is (an HTML page from a proxy, a truncated JSON). */
  raw: (status: number, body: string, contentType = "text/html"): Fault => ({ status, body, contentType }),
  /** 503, with `Retry-After` when given. */
  unavailable: (retryAfterSeconds?: number): Fault => ({
    ...Fault.apiError(503, "SERVICE_UNAVAILABLE", "try again later"),
    ...(retryAfterSeconds === undefined ? {} : { headers: { "Retry-After": String(retryAfterSeconds) } })
  }),
  /** 429 with `Retry-After`. */
  rateLimited: (retryAfterSeconds: number): Fault => ({
    ...Fault.apiError(429, "TOO_MANY_REQUESTS"),
    headers: { "Retry-After": String(retryAfterSeconds) }
  }),
  /** The connection is destroyed without an answer. */
  drop: (): Fault => ({ status: 0, body: "", drop: true }),
  /** The request is carried out, then answered with `fault` instead (a proxy's 502, a dropped connection). */
  afterApplying: (fault: Fault): Fault => ({ ...fault, applied: true })
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The root API client's bearer token; random by default. */
  readonly rootToken?: string
  /** The company's URN; a fixed UUID by default. */
  readonly companyUrn?: string
  /**
   * How a representation that only lacks required fields is answered: `"nested"` (the default) as
   * `INVALID_REPRESENTATION` with `REPRESENTATION_MISSING_REQUIRED_FIELD` details, or `"topLevel"` with
   * that code as the answer's own.
   */
  readonly missingFields?: "nested" | "topLevel"
  /** The status of a top-level `REPRESENTATION_MISSING_REQUIRED_FIELD`: 400 by default; 201 "instead of" success. */
  readonly missingFieldsStatus?: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly rawBody: string
  /** The status answered; 0 for a dropped connection. */
  readonly status: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface BaackFake {
  /** `http://127.0.0.1:PORT`: the base URL to give `Baack`'s options. */
  readonly url: string
  /** The root token the fake started with. */
  readonly rootToken: string
  readonly companyUrn: string
  /** Replaces the root token (with `next`, or a random one) and gives it: the old one is refused with 401 from now on. */
  readonly rotateRootToken: (next?: string) => Effect.Effect<string>
  /** Every request, in arrival order. */
  readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
  /** The stored clients, as LIST shows them. */
  readonly clients: Effect.Effect<ReadonlyArray<Readonly<Record<string, unknown>>>>
  /** Answers for the next authenticated requests, in order. */
  readonly inject: (...faults: ReadonlyArray<Fault>) => Effect.Effect<void>
}

interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

const json = (status: number, body: unknown): Reply => ({
  status,
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify(body)
})

const apiError = (status: number, code: string, message: string, errors?: ReadonlyArray<unknown>): Reply =>
  json(status, { code, message, ...(errors === undefined ? {} : { errors }) })

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const PREFIX = "/n/v1/apiclient/"

const safeDecode = (s: string): string | undefined => {
  try {
    return decodeURIComponent(s)
  } catch {
    return undefined
  }
}

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

// the fake's state: its settings, the stored clients and the tokens it gave out
interface Store {
  readonly options: Options
  readonly companyUrn: string
  // urn → stored representation, and the narrower clients' tokens (valid, but not for this endpoint)
  readonly clients: Map<string, Record<string, unknown>>
  readonly issuedTokens: Set<string>
  readonly faults: Array<Fault>
  currentRootToken: string
}

/** The errors of a representation, each as {code, field}; none when it is valid. */
const validate = (companyUrn: string, body: Record<string, unknown>): Array<{ code: string; field: string }> => {
  const errors: Array<{ code: string; field: string }> = []
  const missing = (field: string) => errors.push({ code: "REPRESENTATION_MISSING_REQUIRED_FIELD", field })
  const invalid = (field: string) => errors.push({ code: "REPRESENTATION_INVALID_FIELD", field })
  for (const field of ["scope", "clientID"]) {
    const value = body[field]
    if (value === undefined || value === null || value === "") missing(field)
    else if (typeof value !== "string") invalid(field)
  }
  const owner = body.owner
  if (owner === undefined || owner === null) {
    missing("owner")
  } else if (!isObject(owner)) {
    invalid("owner")
  } else {
    if (owner.urn === undefined || owner.urn === null || owner.urn === "") missing("owner.urn")
    else if (typeof owner.urn !== "string" || !uuid.test(owner.urn) || owner.urn !== companyUrn) {
      invalid("owner.urn")
    }
    if (owner.url !== undefined && owner.url !== `/n/v1/company/${companyUrn}`) invalid("owner.url")
  }
  return errors
}

/**
 * The body of CREATE or UPDATE: a JSON object, else BAD_REQUEST; a valid representation, else
 * INVALID_REPRESENTATION (or the top-level code the options ask for).
 */
const representation = (
  store: Store,
  req: Http.IncomingMessage,
  rawBody: string
): { readonly error: Reply } | { readonly value: Record<string, unknown> } => {
  const { companyUrn, options } = store
  const mediaType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase()
  if (mediaType !== "application/json") return { error: apiError(400, "BAD_REQUEST", "expected application/json") }
  let body: unknown
  try {
    body = JSON.parse(rawBody)
  } catch {
    return { error: apiError(400, "BAD_REQUEST", "the body is not JSON") }
  }
  if (!isObject(body)) {
    return { error: apiError(400, "INVALID_REPRESENTATION", "expected an API client representation") }
  }
  const errors = validate(companyUrn, body)
  const onlyMissing = errors.every((e) => e.code === "REPRESENTATION_MISSING_REQUIRED_FIELD")
  if (errors.length > 0 && onlyMissing && options.missingFields === "topLevel") {
    return {
      error: apiError(
        options.missingFieldsStatus ?? 400,
        "REPRESENTATION_MISSING_REQUIRED_FIELD",
        "required fields are missing",
        errors
      )
    }
  }
  if (errors.length > 0) {
    return { error: apiError(400, "INVALID_REPRESENTATION", "the representation is invalid", errors) }
  }
  // the server assigns urn and token; a client cannot choose them
  const { token: _token, urn: _urn, ...fields } = body
  return { value: { ...fields, owner: { urn: companyUrn, url: `/n/v1/company/${companyUrn}` } } }
}

/** LIST and CREATE, on the prefix itself. */
const onCollection = (store: Store, req: Http.IncomingMessage, rawBody: string): Reply => {
  const method = req.method ?? ""
  if (method === "GET") return json(200, [...store.clients.values()])
  if (method !== "POST") return apiError(405, "METHOD_NOT_ALLOWED", `${method} is not supported here`)
  const body = representation(store, req, rawBody)
  if ("error" in body) return body.error
  const created = { ...body.value, urn: Crypto.randomUUID() }
  const token = Crypto.randomBytes(24).toString("base64url")
  store.clients.set(created.urn, created)
  store.issuedTokens.add(token)
  return json(201, { ...created, token })
}

/** READ, UPDATE and DELETE of the client `urn`. */
const onClient = (store: Store, req: Http.IncomingMessage, urn: string, rawBody: string): Reply => {
  const method = req.method ?? ""
  const stored = store.clients.get(urn)
  if (stored === undefined) return apiError(404, "NOT_FOUND", "no API client with this URN")
  switch (method) {
    case "GET":
      return json(200, stored)
    case "PUT": {
      const body = representation(store, req, rawBody)
      if ("error" in body) return body.error
      const updated = { ...body.value, urn }
      store.clients.set(urn, updated)
      return json(200, updated)
    }
    case "DELETE":
      store.clients.delete(urn)
      return { status: 204, headers: {}, body: "" }
    default:
      return apiError(405, "METHOD_NOT_ALLOWED", `${method} is not supported here`)
  }
}

/**
 * The answer to a request to `path`: 404 outside the prefix, then the root token's check, then the next
 * injected fault or the operation itself; undefined when the connection is to be dropped.
 */
const answer = (store: Store, req: Http.IncomingMessage, path: string, rawBody: string): Reply | undefined => {
  const urn = path === PREFIX.slice(0, -1)
    ? ""
    : path.startsWith(PREFIX)
    ? safeDecode(path.slice(PREFIX.length))
    : undefined
  if (urn === undefined) return apiError(404, "NOT_FOUND", "not found")
  const token = /^Bearer ([^\s]+)$/.exec(req.headers.authorization ?? "")?.[1]
  if (token !== undefined && store.issuedTokens.has(token)) {
    return apiError(403, "FORBIDDEN", "only the root API client manages API clients")
  }
  if (token !== store.currentRootToken) return apiError(401, "UNAUTHORIZED", "a valid bearer token is required")
  const operate = () => urn === "" ? onCollection(store, req, rawBody) : onClient(store, req, urn, rawBody)
  const fault = store.faults.shift()
  if (fault === undefined) return operate()
  if (fault.applied === true) operate()
  if (fault.drop === true) return undefined
  return {
    status: fault.status,
    headers: { "Content-Type": fault.contentType ?? "application/json", ...fault.headers },
    body: fault.body
  }
}

/**
 * Starts the fake on 127.0.0.1 with a random port; it stops when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<BaackFake, never, Scope.Scope> =>
  Effect.gen(function*() {
    const rootToken = options.rootToken ?? Crypto.randomBytes(24).toString("base64url")
    const store: Store = {
      options,
      companyUrn: options.companyUrn ?? "32a90f18-aaa0-4bdc-a63e-4efd2e16c28c",
      clients: new Map(),
      issuedTokens: new Set(),
      faults: [],
      currentRootToken: rootToken
    }
    const requests: Array<RecordedRequest> = []

    const handle = (req: Http.IncomingMessage, res: Http.ServerResponse) =>
      Effect.gen(function*() {
        const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname
        const rawBody = yield* readBody(req)
        const reply = answer(store, req, path, rawBody)
        requests.push({
          method: req.method ?? "",
          path,
          headers: headersOf(req),
          rawBody,
          status: reply?.status ?? 0
        })
        if (reply === undefined) return req.socket.destroy()
        send(res, reply)
      })

    const url = yield* serve(handle)

    return {
      url,
      rootToken,
      companyUrn: store.companyUrn,
      rotateRootToken: (next) =>
        Effect.sync(() => {
          store.currentRootToken = next ?? Crypto.randomBytes(24).toString("base64url")
          return store.currentRootToken
        }),
      requests: Effect.sync(() => requests.slice()),
      clients: Effect.sync(() => [...store.clients.values()]),
      inject: (...more) => Effect.sync(() => void store.faults.push(...more))
    } satisfies BaackFake
  })
