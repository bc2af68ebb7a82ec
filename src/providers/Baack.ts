/**
 * Baack's API client endpoint (`/n/v1/apiclient/`), driven with the company's root API client. The root
 * client's bearer token has every permission and no lifecycle: a person issues it, so it is never
 * refreshed. It is a `TokenSource` like any other (`makeRootToken`, `layerRootToken`), so it also goes
 * through `AuthorizedClient`, `TokenClient` or a pool; kept `Redacted` and unwrapped only into the
 * `Authorization` header. Given as an effect (`Config.redacted` from a mounted file), it is read again
 * when the API answers 401, so a rotated root token needs no restart. Its purpose is to create narrower
 * API clients, one per use case, whose own tokens go where the root token must not.
 *
 * Calls are retried as token requests are: READ, LIST, UPDATE (`PUT`) and DELETE on transient failures
 * (5xx, 429, no answer) with the `policy`'s retry schedule and Retry-After; CREATE is never retried.
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
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as AccessToken from "../AccessToken.js"
import { cleanDescription } from "../internal/excerpt.js"
import { exchange, successJson } from "../internal/exchange.js"
import { type Answer, fromErrorAnswer, malformed, parseJson } from "../internal/failure.js"
import { retryCall } from "../internal/retryCall.js"
import * as StaticSource from "../internal/staticSource.js"
import { TaggedError } from "../internal/taggedError.js"
import { checkEndpoint, publicUrl } from "../internal/url.js"
import * as RefreshPolicy from "../RefreshPolicy.js"
import type { TokenError } from "../TokenError.js"
import {
  ApiErrorDetail,
  BadRequest,
  InvalidClient,
  InvalidConfiguration,
  ReauthorizationRequired
} from "../TokenError.js"
import type { TokenSource } from "../TokenSource.js"

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

const missingFieldCode = "REPRESENTATION_MISSING_REQUIRED_FIELD"

/**
 * API code `REPRESENTATION_MISSING_REQUIRED_FIELD` as the answer's own code: Baack's document says this
 * error representation "may be returned instead" of `CREATE_SUCCESS` when the representation lacks
 * required information, so it is met with HTTP 400 or even a 2xx status. `details` lists what the server
 * said, `missingFields` the fields it named. (Nested under `INVALID_REPRESENTATION`, the same code is a
 * detail of an `InvalidRepresentation`.)
 *
 * @since 0.1.0
 * @category errors
 */
export class RepresentationMissingRequiredField
  extends TaggedError<RepresentationMissingRequiredField>("Baack")("RepresentationMissingRequiredField", {
    ...ErrorFields,
    code: Schema.String,
    details: Schema.Array(ApiErrorDetail)
  }, {
    transient: false,
    message: (self) => {
      const fields = missingFields(self.details)
      return describe(self, missingFieldCode) + (fields.length === 0 ? "" : ` [missing: ${fields.join(", ")}]`)
    }
  })
{
  /** The fields the server named as missing. */
  get missingFields(): ReadonlyArray<string> {
    return missingFields(this.details)
  }
}

const missingFields = (details: ReadonlyArray<ApiErrorDetail>): ReadonlyArray<string> =>
  details.flatMap((d) =>
    (d.code === undefined || d.code === missingFieldCode) && d.field !== undefined ? [d.field] : []
  )

/**
 * Every failure of an `ApiClients` call: `InvalidRepresentation` (with `details`),
 * `RepresentationMissingRequiredField` (with the missing fields), `BadRequest` (any other API code, kept
 * in `code`), `ReauthorizationRequired` (the root token was refused and no new one was given; its
 * `reason` is the `InvalidClient` of the 401), `InvalidClient` (a new root token was refused too),
 * `Forbidden`, `NotFound`, `RateLimited`, `ServerError`, `TransportError`, `MalformedResponse`,
 * `InvalidConfiguration`.
 *
 * @since 0.1.0
 * @category errors
 */
export type ApiError = TokenError | Forbidden | NotFound | RepresentationMissingRequiredField

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
 * The root API client's bearer token: its value, or an effect that reads it (`Config.redacted` from a
 * mounted file), read at start and again after each 401.
 *
 * @since 0.1.0
 * @category models
 */
export type RootTokenInput<E = never> = Redacted.Redacted<string> | Effect.Effect<Redacted.Redacted<string>, E>

/**
 * @since 0.1.0
 * @category models
 */
export interface Options<E = never> {
  /** `https://api.baack.co` by default; https, or http on a loopback host (tests). */
  readonly baseUrl?: string | URL | undefined
  /**
   * The root API client's bearer token: a value; an effect that reads it, read again after a 401 so a
   * rotated token needs no restart; or a token source (from `makeRootToken`, shared with an
   * `AuthorizedClient` or a `TokenClient`).
   */
  readonly rootToken: RootTokenInput<E> | TokenSource
  /** How long one attempt of a call may take, answer included; 30 seconds by default. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * The retry schedule (and Retry-After cap) of READ, LIST, UPDATE and DELETE on transient failures;
   * `defaultPolicy` (at most 4 retries) by default. CREATE is never retried.
   */
  readonly policy?: RefreshPolicy.RefreshPolicy | undefined
}

/**
 * The default policy of calls: `RefreshPolicy.defaults` with its retry schedule (exponential from 1
 * second, jittered) stopped after 4 retries. A token source retries in the background while callers
 * use the token they hold; a call has a caller waiting for it, so it gives up after about 15 seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultPolicy: RefreshPolicy.RefreshPolicy = RefreshPolicy.make({
  retry: RefreshPolicy.defaultRetry.pipe(Schedule.intersect(Schedule.recurs(4)))
})

/**
 * Options of the root token's source.
 *
 * @since 0.1.0
 * @category models
 */
export interface RootTokenOptions<E = never> {
  /** The token, or an effect that reads it (read at start and again after each 401). */
  readonly rootToken: RootTokenInput<E>
  /** The name in logs; `baack` by default. */
  readonly provider?: string | undefined
}

/**
 * The root API client's token as a `TokenSource`. It is never refreshed: a person issues it. Given as
 * an effect, it is read again when `invalidate` reports a 401 (`AuthorizedClient` and `ApiClients` do),
 * so a rotated token is picked up without a restart; a 401 with no new value leaves the source `Failed`
 * with `ReauthorizationRequired`, and while it is `Failed` each `get` reads the token again (a local read,
 * no request to Baack). Surrounding whitespace (a file's final newline) is dropped. Fails with the
 * reader's own error (a `ConfigError` naming the variable) or `InvalidConfiguration` for a value that is
 * not a bearer token, before any request.
 *
 * @example
 * ```ts
 * import { Config, Context } from "effect"
 * import { AuthorizedClient, Baack, type TokenSource } from "tokenwarden"
 *
 * class BaackRoot extends Context.Tag("app/BaackRoot")<BaackRoot, TokenSource.TokenSource>() {}
 * // read from BAACK_ROOT_TOKEN now, and again after each 401
 * const RootLive = Baack.layerRootToken(BaackRoot, { rootToken: Config.redacted("BAACK_ROOT_TOKEN") })
 * const ClientsLive = Baack.layerFromSource(BaackRoot)
 * const ApiLive = AuthorizedClient.layer(BaackRoot, { origin: Baack.defaultBaseUrl })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRootToken = <E = never>(
  options: RootTokenOptions<E>
): Effect.Effect<TokenSource, InvalidConfiguration | E> =>
  StaticSource.make({
    credential: options.rootToken,
    provider: options.provider ?? "baack",
    // RFC 6750 section 2.1 b64token characters; the value itself never goes into the message
    check: (value) =>
      /^[A-Za-z0-9\-._~+/]+=*$/.test(value) ? undefined : "Baack: the root token is empty or not a bearer token"
  })

/**
 * A layer with the root token's source under the user's tag.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRootToken = <I, E = never>(
  tag: Context.Tag<I, TokenSource>,
  options: RootTokenOptions<E>
): Layer.Layer<I, InvalidConfiguration | E> => Layer.effect(tag, makeRootToken(options))

const ApiErrorCode = Schema.Struct({ code: Schema.optional(Schema.String), message: Schema.optional(Schema.String) })
const decodeApiErrorCode = Schema.decodeUnknownOption(ApiErrorCode)

// RFC 6750 section 3.1: a refused bearer token is `invalid_token`; here it is the root client's credential
const refusedToken = (answer: Answer): InvalidClient => {
  const body = Option.getOrUndefined(decodeApiErrorCode(parseJson(answer.body)))
  return new InvalidClient({
    method: answer.method,
    url: answer.url,
    status: answer.status,
    error: cleanDescription(body?.code) ?? "invalid_token",
    description: cleanDescription(body?.message)
  })
}

// a top-level REPRESENTATION_MISSING_REQUIRED_FIELD may name its field(s) itself, besides `errors`
const topLevelFields = (json: unknown): ReadonlyArray<ApiErrorDetail> => {
  if (!Predicate.isRecord(json)) return []
  const named = [json.field, ...(Array.isArray(json.fields) ? json.fields : [])]
  return named.flatMap((field) => {
    const clean = typeof field === "string" ? cleanDescription(field) : undefined
    return clean === undefined ? [] : [new ApiErrorDetail({ code: missingFieldCode, field: clean })]
  })
}

// by the API code where the body names one, else by status (PROVIDERS.md); what the core classifies
// as token-endpoint answers (429, 5xx, INVALID_REPRESENTATION, other codes) is classified the same way
const classify = (answer: Answer): ApiError => {
  const json = parseJson(answer.body)
  const body = Option.getOrUndefined(decodeApiErrorCode(json))
  const fields = {
    method: answer.method,
    url: answer.url,
    status: answer.status,
    code: cleanDescription(body?.code),
    description: cleanDescription(body?.message)
  }
  if (answer.status === 401) return refusedToken(answer)
  if (answer.status === 403) return new Forbidden(fields)
  if (answer.status === 404) return new NotFound(fields)
  const error = fromErrorAnswer(answer)
  // Baack's BAD_REQUEST is "the general bad request response": a bare 400 is one too
  if (answer.status === 400 && error._tag === "MalformedResponse" && fields.code === undefined) {
    return new BadRequest({ ...fields, code: "BAD_REQUEST", details: [] })
  }
  if (error._tag === "BadRequest" && error.code === missingFieldCode) {
    return new RepresentationMissingRequiredField({
      ...fields,
      code: missingFieldCode,
      details: [...topLevelFields(json), ...error.details]
    })
  }
  return error
}

// an error representation in a 2xx answer (the document: it "may be returned instead" of CREATE_SUCCESS):
// a code and none of the representation's own fields
const isErrorRepresentation = (json: unknown): boolean =>
  Predicate.isRecord(json) && typeof json.code === "string" && !("clientID" in json) && !("owner" in json)

const decodeClient = Schema.decodeUnknownEither(ApiClient)
const decodeList = Schema.decodeUnknownEither(Schema.Array(ApiClient))

const isTokenSource = <E>(input: RootTokenInput<E> | TokenSource): input is TokenSource =>
  !Redacted.isRedacted(input) && !Effect.isEffect(input)

/**
 * Builds the service; refuses a non-https base URL (except loopback) and an unusable root token before
 * any request. Given the root token as a value or an effect, it builds the token's source
 * (`makeRootToken`) itself; given a source, it uses that one.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <E = never>(
  options: Options<E>
): Effect.Effect<ApiClients.Service, InvalidConfiguration | E, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const base = yield* checkEndpoint(options.baseUrl ?? defaultBaseUrl, "Baack API base URL")
    const rootToken = options.rootToken
    const source = isTokenSource(rootToken) ? rootToken : yield* makeRootToken({ rootToken })
    const prefix = base.pathname.replace(/\/+$/, "") + "/n/v1/apiclient/"
    const client = yield* HttpClient.HttpClient
    const timeout = Duration.decode(options.timeout ?? Duration.seconds(30))
    const policy = options.policy ?? defaultPolicy

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

    // one exchange with the token in the header: the one place its value is unwrapped; the root token
    // never follows a redirect (the exchange refuses them)
    const sendWith = (token: AccessToken.AccessToken, method: Method, location: URL, body?: unknown) => {
      const request = HttpClientRequest.make(method)(location.toString()).pipe(
        HttpClientRequest.setHeaders({
          accept: "application/json",
          authorization: AccessToken.authorizationHeader(token)
        })
      )
      return exchange(
        client,
        body === undefined ? request : HttpClientRequest.bodyText(request, JSON.stringify(body), "application/json"),
        { url: publicUrl(location), timeout }
      )
    }

    // one attempt: the JSON body of a 2xx answer, or the answer classified as an error. A 401 hands the
    // token back to its source, which reads the root token again: a new one is tried once; none leaves the
    // source Failed, and the call fails with its ReauthorizationRequired (reason: the 401's InvalidClient)
    const send = (method: Method, location: URL, body?: unknown) =>
      Effect.gen(function*() {
        const token = yield* source.get
        let exchanged = yield* sendWith(token, method, location, body)
        if (exchanged.answer.status === 401) {
          const refused = refusedToken(exchanged.answer)
          yield* source.invalidate(token)
          const next = yield* source.get.pipe(
            Effect.catchTag("ReauthorizationRequired", (error) =>
              Effect.fail(
                error.reason === undefined
                  ? new ReauthorizationRequired({ reason: refused, detail: error.detail })
                  : error
              ))
          )
          if (Redacted.value(next.value) === Redacted.value(token.value)) return yield* Effect.fail(refused)
          exchanged = yield* sendWith(next, method, location, body)
          if (exchanged.answer.status === 401) yield* source.invalidate(next)
        }
        const json = yield* successJson(exchanged, classify)
        // an error representation "returned instead" of a success
        if (isErrorRepresentation(json)) return yield* Effect.fail(classify(exchanged.answer))
        return { answer: exchanged.answer, json }
      })

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
      // never retried: a CREATE whose answer was lost may have created the client, and a second would duplicate it
      create: (input) =>
        target().pipe(
          Effect.flatMap((url) => send("POST", url, representation(input))),
          Effect.flatMap(one),
          span("create")
        ),
      read: (urn) =>
        retryCall(policy, "Baack.ApiClients.read", () =>
          target(urn).pipe(
            Effect.flatMap((url) => send("GET", url)),
            Effect.flatMap(one)
          )).pipe(
            Effect.map(Option.some),
            Effect.catchTag("NotFound", () => Effect.succeedNone),
            span("read")
          ),
      update: (urn, input) =>
        retryCall(policy, "Baack.ApiClients.update", () =>
          target(urn).pipe(
            Effect.flatMap((url) => send("PUT", url, representation(input))),
            Effect.flatMap(one)
          )).pipe(span("update")),
      delete: (urn) =>
        retryCall(policy, "Baack.ApiClients.delete", (attempt) => {
          const call = target(urn).pipe(Effect.flatMap((url) => send("DELETE", url)), Effect.asVoid)
          // an earlier attempt may have deleted it before its answer was lost: gone is what was asked
          return attempt === 1 ? call : Effect.catchTag(call, "NotFound", () => Effect.void)
        }).pipe(span("delete")),
      list: retryCall(policy, "Baack.ApiClients.list", () =>
        target().pipe(
          Effect.flatMap((url) => send("GET", url)),
          Effect.flatMap((result) =>
            Either.match(decodeList(result.json), {
              onLeft: () =>
                Effect.fail(malformed(result.answer, result.json, "not a list of API client representations")),
              onRight: Effect.succeed
            })
          )
        )).pipe(span("list"))
    })
  })

type Method = "GET" | "POST" | "PUT" | "DELETE"

/**
 * A layer with the service.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E = never>(
  options: Options<E>
): Layer.Layer<ApiClients, InvalidConfiguration | E, HttpClient.HttpClient> => Layer.effect(ApiClients, make(options))

/**
 * A layer with the service, its root token taken from the token source under the user's tag (see
 * `layerRootToken`), so that the same source serves an `AuthorizedClient` or a `TokenClient` too.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromSource = <I>(
  tag: Context.Tag<I, TokenSource>,
  options: Omit<Options, "rootToken"> = {}
): Layer.Layer<ApiClients, InvalidConfiguration, HttpClient.HttpClient | I> =>
  Layer.effect(ApiClients, Effect.flatMap(tag, (rootToken) => make({ ...options, rootToken })))

/**
 * Options from variables under a prefix (`BAACK` by default): `BAACK_ROOT_TOKEN` (redacted; read at start
 * and again after each 401, so a rotated token needs no restart) and, optionally, `BAACK_BASE_URL`.
 *
 * @since 0.1.0
 * @category config
 */
export const config = (prefix = "BAACK"): Config.Config<Options<ConfigError.ConfigError>> => {
  const name = (key: string) => prefix === "" ? key : `${prefix}_${key}`
  return Config.map(
    Config.withDefault(Config.string(name("BASE_URL")), undefined),
    (baseUrl): Options<ConfigError.ConfigError> => ({
      baseUrl,
      // the Config itself, an effect: `make` reads it, and the root token's source reads it again after a 401
      rootToken: Config.redacted(Config.nonEmptyString(name("ROOT_TOKEN")))
    })
  )
}

/**
 * A layer whose options come from `Config` (`config("BAACK")` by default); a missing variable is a
 * `ConfigError` naming it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options<ConfigError.ConfigError>> = config()
): Layer.Layer<ApiClients, InvalidConfiguration | ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.effect(ApiClients, Effect.flatMap(options, make))
