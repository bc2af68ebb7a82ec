/**
 * Baack's API client endpoint (`/n/v1/apiclient/`), driven with the company's root API client. The root
 * client's bearer token has every permission and no lifecycle: it is a static credential, kept
 * `Redacted` and unwrapped only into the `Authorization` header. Its purpose is to create narrower API
 * clients, one per use case, whose own tokens go where the root token must not.
 *
 * Assumptions where Baack's document is silent (see the README): requests carry
 * `Authorization: Bearer <root token>`; READ, UPDATE and DELETE address one client as
 * `/n/v1/apiclient/{urn}` (GET, PUT, DELETE) and LIST is GET on the prefix, answering a JSON array;
 * a client's own URN is its `urn` field (else `id`) and a token it was issued is its `token` field
 * (else `bearerToken` or `accessToken`); errors are `{"code", "message", "errors": [{"code", "field"}]}`.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { cleanDescription } from "../internal/excerpt.js"
import { exchange, successJson } from "../internal/exchange.js"
import { type Answer, fromErrorAnswer, malformed, parseJson } from "../internal/failure.js"
import { TaggedError } from "../internal/taggedError.js"
import { checkEndpoint, publicUrl } from "../internal/url.js"
import type { TokenError } from "../TokenError.js"
import { BadRequest, InvalidClient, InvalidConfiguration } from "../TokenError.js"

/**
 * `https://api.baack.co`, from the representation's `scope`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBaseUrl = "https://api.baack.co"

const ErrorFields = {
  method: Schema.String,
  url: Schema.String,
  status: Schema.Number,
  code: Schema.optional(Schema.String),
  description: Schema.optional(Schema.String)
}

const describe = (
  self: {
    readonly method: string
    readonly url: string
    readonly status: number
    readonly code?: string | undefined
    readonly description?: string | undefined
  },
  what: string
) =>
  `${self.method} ${self.url} (HTTP ${self.status}): ${self.code ?? what}` +
  (self.description === undefined ? "" : ` - ${self.description}`)

/**
 * HTTP 403: the token is valid but may not do this (only the root client manages API clients).
 *
 * @since 0.1.0
 * @category errors
 */
export class Forbidden extends TaggedError<Forbidden>("Baack")("Forbidden", ErrorFields, {
  transient: false,
  message: (self) => describe(self, "forbidden")
}) {}

/**
 * HTTP 404: no API client with this URN (UPDATE, DELETE; READ gives `Option.none()` instead), or a base
 * URL that is not Baack's API.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFound extends TaggedError<NotFound>("Baack")("NotFound", ErrorFields, {
  transient: false,
  message: (self) => describe(self, "not found")
}) {}

/**
 * Every failure of an `ApiClients` call: `InvalidRepresentation` (with `details`), `BadRequest` (any other
 * API code, kept in `code`), `InvalidClient` (the root token was refused), `Forbidden`, `NotFound`,
 * `RateLimited`, `ServerError`, `TransportError`, `MalformedResponse`, `InvalidConfiguration`.
 *
 * @since 0.1.0
 * @category errors
 */
export type ApiError = TokenError | Forbidden | NotFound

const secretName = /token|secret|passw|credential|private|api[_-]?key|^key$|authorization/i
const tokenFields = ["token", "bearerToken", "accessToken"] as const

const redactDeep = (value: unknown, secret: boolean): unknown => {
  if (secret) return Redacted.make(value)
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, false))
  if (Predicate.isRecord(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v, secretName.test(k))]))
  }
  return value
}

const unredactDeep = (value: unknown): unknown => {
  if (Redacted.isRedacted(value)) return Redacted.value(value)
  if (Array.isArray(value)) return value.map(unredactDeep)
  if (Predicate.isRecord(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unredactDeep(v)]))
  return value
}

const Owner = Schema.Struct({ urn: Schema.String, url: Schema.optional(Schema.String) })

/**
 * The documented representation, as on the wire: `scope`, `owner` (`urn`, `url`), `clientID`, and every
 * other field the server sends.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Representation = Schema.Struct(
  { scope: Schema.String, owner: Owner, clientID: Schema.String },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)

/**
 * An API client as read from Baack: the documented fields, its own `urn` (addresses READ, UPDATE and
 * DELETE), a `token` it was issued (at creation), and every other field in `extra`, where the value of any
 * field whose name looks secret (token, secret, password, credential, private, API key, authorization),
 * however deep, is `Redacted`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ApiClient = Schema.transform(
  Representation,
  Schema.Struct({
    urn: Schema.UndefinedOr(Schema.String),
    scope: Schema.String,
    owner: Owner,
    clientID: Schema.String,
    token: Schema.UndefinedOr(Schema.RedactedFromSelf(Schema.String)),
    extra: Schema.Record({ key: Schema.String, value: Schema.Unknown })
  }),
  {
    strict: true,
    decode: ({ clientID, owner, scope, ...rest }) => {
      const urnField = typeof rest.urn === "string" ? "urn" : typeof rest.id === "string" ? "id" : undefined
      const tokenField = tokenFields.find((k) => typeof rest[k] === "string" && rest[k] !== "")
      const extra: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(rest)) {
        if (k !== urnField && k !== tokenField) extra[k] = redactDeep(v, secretName.test(k))
      }
      return {
        urn: urnField === undefined ? undefined : rest[urnField] as string,
        scope,
        owner,
        clientID,
        token: tokenField === undefined ? undefined : Redacted.make(rest[tokenField] as string),
        extra
      }
    },
    encode: ({ clientID, extra, owner, scope, token, urn }) => ({
      ...(unredactDeep(extra) as Record<string, unknown>),
      ...(urn === undefined ? {} : { urn }),
      ...(token === undefined ? {} : { token: Redacted.value(token) }),
      scope,
      owner,
      clientID
    })
  }
)

/**
 * @since 0.1.0
 * @category models
 */
export type ApiClient = typeof ApiClient.Type

/**
 * What CREATE and UPDATE send: the documented representation, plus any further fields.
 *
 * @since 0.1.0
 * @category models
 */
export interface ApiClientInput {
  /** `api.baack.co` in the document's example. */
  readonly scope: string
  /** The company that owns the client; `url` is `/n/v1/company/<urn>`. */
  readonly owner: { readonly urn: string; readonly url?: string | undefined }
  readonly clientID: string
  /** Further fields the server understands (permissions, a name), sent as they are. */
  readonly fields?: Readonly<Record<string, unknown>> | undefined
}

/**
 * CRUD on Baack's API clients, as the root client.
 *
 * @since 0.1.0
 * @category models
 */
export declare namespace ApiClients {
  /**
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    /** CREATE: `POST /n/v1/apiclient/`, 201 `CREATE_SUCCESS` with the new client (and its token). */
    readonly create: (input: ApiClientInput) => Effect.Effect<ApiClient, ApiError>
    /** READ: `GET /n/v1/apiclient/{urn}`; a missing client is `Option.none()`. */
    readonly read: (urn: string) => Effect.Effect<Option.Option<ApiClient>, Exclude<ApiError, NotFound>>
    /** UPDATE: `PUT /n/v1/apiclient/{urn}` with the whole representation; a missing client is `NotFound`. */
    readonly update: (urn: string, input: ApiClientInput) => Effect.Effect<ApiClient, ApiError>
    /** DELETE: `DELETE /n/v1/apiclient/{urn}`; a missing client is `NotFound`. */
    readonly delete: (urn: string) => Effect.Effect<void, ApiError>
    /** LIST: `GET /n/v1/apiclient/`. */
    readonly list: Effect.Effect<ReadonlyArray<ApiClient>, ApiError>
  }
}

/**
 * The API client service.
 *
 * @since 0.1.0
 * @category tags
 */
export class ApiClients extends Context.Tag("tokenwarden/Baack/ApiClients")<ApiClients, ApiClients.Service>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `https://api.baack.co` by default; https, or http on a loopback host (tests). */
  readonly baseUrl?: string | URL | undefined
  /** The root API client's bearer token. */
  readonly rootToken: Redacted.Redacted<string>
  /** How long a call may take, answer included; 30 seconds by default. */
  readonly timeout?: Duration.DurationInput | undefined
}

const ApiErrorCode = Schema.Struct({ code: Schema.optional(Schema.String), message: Schema.optional(Schema.String) })
const decodeApiErrorCode = Schema.decodeUnknownOption(ApiErrorCode)

// by the API code where the body names one, else by status (PROVIDERS.md); what the core classifies
// as token-endpoint answers (429, 5xx, INVALID_REPRESENTATION, other codes) is classified the same way
const classify = (answer: Answer): ApiError => {
  const body = Option.getOrUndefined(decodeApiErrorCode(parseJson(answer.body)))
  const fields = {
    method: answer.method,
    url: answer.url,
    status: answer.status,
    code: cleanDescription(body?.code),
    description: cleanDescription(body?.message)
  }
  // RFC 6750 section 3.1: a refused bearer token is `invalid_token`; here it is the root client's credential
  if (answer.status === 401) {
    return new InvalidClient({ ...fields, error: fields.code ?? "invalid_token", description: fields.description })
  }
  if (answer.status === 403) return new Forbidden(fields)
  if (answer.status === 404) return new NotFound(fields)
  const error = fromErrorAnswer(answer)
  // Baack's BAD_REQUEST is "the general bad request response": a bare 400 is one too
  if (answer.status === 400 && error._tag === "MalformedResponse" && fields.code === undefined) {
    return new BadRequest({ ...fields, code: "BAD_REQUEST", details: [] })
  }
  return error
}

const decodeClient = Schema.decodeUnknownEither(ApiClient)
const decodeList = Schema.decodeUnknownEither(Schema.Array(ApiClient))

/**
 * Builds the service; refuses a non-https base URL (except loopback) and an unusable root token before
 * any request.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<ApiClients.Service, InvalidConfiguration, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const base = yield* checkEndpoint(options.baseUrl ?? defaultBaseUrl, "Baack API base URL")
    // RFC 6750 section 2.1 b64token characters; the value itself never goes into the message
    if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(Redacted.value(options.rootToken))) {
      return yield* new InvalidConfiguration({ reason: "Baack: the root token is empty or not a bearer token" })
    }
    const prefix = base.pathname.replace(/\/+$/, "") + "/n/v1/apiclient/"
    const client = yield* HttpClient.HttpClient
    const timeout = Duration.decode(options.timeout ?? Duration.seconds(30))

    const target = (urn?: string) =>
      Effect.suspend(() => {
        if (urn !== undefined && urn === "") {
          return Effect.fail(new InvalidConfiguration({ reason: "Baack: an API client URN is required" }))
        }
        const url = new URL(base)
        url.pathname = prefix + (urn === undefined ? "" : encodeURIComponent(urn))
        url.search = ""
        url.hash = ""
        return Effect.succeed(url)
      })

    // one call: the JSON body of a 2xx answer, or the answer classified as an error; the root token
    // never follows a redirect (the exchange refuses them)
    const send = (method: "GET" | "POST" | "PUT" | "DELETE", location: URL, body?: unknown) => {
      const request = HttpClientRequest.make(method)(location.toString()).pipe(
        HttpClientRequest.setHeaders({
          accept: "application/json",
          authorization: `Bearer ${Redacted.value(options.rootToken)}`
        })
      )
      return exchange(
        client,
        body === undefined ? request : HttpClientRequest.bodyText(request, JSON.stringify(body), "application/json"),
        { url: publicUrl(location), timeout }
      ).pipe(
        Effect.flatMap((exchanged) =>
          Effect.map(successJson(exchanged, classify), (json) => ({ answer: exchanged.answer, json }))
        )
      )
    }

    const one = (result: { readonly answer: Answer; readonly json: unknown }) =>
      Either.match(decodeClient(result.json), {
        // never the ParseError's message: it prints the offending value, maybe a token
        onLeft: () => Effect.fail(malformed(result.answer, result.json, "not an API client representation")),
        onRight: Effect.succeed
      })

    const representation = (input: ApiClientInput) => ({
      ...input.fields,
      scope: input.scope,
      owner: input.owner.url === undefined ? { urn: input.owner.urn } : { urn: input.owner.urn, url: input.owner.url },
      clientID: input.clientID
    })

    const span = (name: string) => Effect.withSpan(`Baack.ApiClients.${name}`, { kind: "client" })

    return ApiClients.of({
      create: (input) =>
        target().pipe(
          Effect.flatMap((url) => send("POST", url, representation(input))),
          Effect.flatMap(one),
          span("create")
        ),
      read: (urn) =>
        target(urn).pipe(
          Effect.flatMap((url) => send("GET", url)),
          Effect.flatMap(one),
          Effect.map(Option.some),
          Effect.catchTag("NotFound", () => Effect.succeedNone),
          span("read")
        ),
      update: (urn, input) =>
        target(urn).pipe(
          Effect.flatMap((url) => send("PUT", url, representation(input))),
          Effect.flatMap(one),
          span("update")
        ),
      delete: (urn) => target(urn).pipe(Effect.flatMap((url) => send("DELETE", url)), Effect.asVoid, span("delete")),
      list: target().pipe(
        Effect.flatMap((url) => send("GET", url)),
        Effect.flatMap((result) =>
          Either.match(decodeList(result.json), {
            onLeft: () =>
              Effect.fail(malformed(result.answer, result.json, "not a list of API client representations")),
            onRight: Effect.succeed
          })
        ),
        span("list")
      )
    })
  })

/**
 * A layer with the service.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<ApiClients, InvalidConfiguration, HttpClient.HttpClient> =>
  Layer.effect(ApiClients, make(options))

/**
 * Options from variables under a prefix (`BAACK` by default): `BAACK_ROOT_TOKEN` (redacted) and,
 * optionally, `BAACK_BASE_URL`.
 *
 * @since 0.1.0
 * @category config
 */
export const config = (prefix = "BAACK"): Config.Config<Options> => {
  const name = (key: string) => prefix === "" ? key : `${prefix}_${key}`
  return Config.all({
    rootToken: Config.redacted(Config.nonEmptyString(name("ROOT_TOKEN"))),
    baseUrl: Config.withDefault(Config.string(name("BASE_URL")), undefined)
  })
}

/**
 * A layer whose options come from `Config` (`config("BAACK")` by default); a missing variable is a
 * `ConfigError` naming it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<Options> = config()
): Layer.Layer<ApiClients, InvalidConfiguration | ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.effect(ApiClients, Effect.flatMap(Config.unwrap(options), make))
