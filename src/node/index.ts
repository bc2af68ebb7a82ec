/**
 * tokenwarden for programs not written with Effect: options as plain values (strings for secrets,
 * durations as milliseconds or strings such as `"30 seconds"`), Node's global `fetch`, and Promises.
 *
 * ```js
 * import { start } from "tokenwarden/node"
 *
 * const tokens = await start({ url: "https://auth.example.com/oauth/token", clientId: "my-client", clientSecret })
 * const response = await fetch(apiUrl, { headers: { authorization: await tokens.authorization() } })
 * await tokens.close()
 * ```
 *
 * Each function builds the same token source the Effect API builds and hands it to
 * `TokenClient.fromLayer`: the token is refreshed in the background before it expires, retried with
 * backoff, and every failure rejects with the same tagged error class (`error._tag`, `instanceof`).
 * `@effect/platform-node` is not needed.
 *
 * @since 0.1.0
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as AccessToken from "../AccessToken.js"
import type * as Assertion from "../Assertion.js"
import * as ClientAuth from "../ClientAuth.js"
import * as Grant from "../Grant.js"
import * as LineLogger from "../LineLogger.js"
import * as Baack from "../providers/Baack.js"
import * as BarapiCloud from "../providers/BarapiCloud.js"
import * as Barracuda from "../providers/Barracuda.js"
import * as Baruwa from "../providers/Baruwa.js"
import * as Buddy from "../providers/Buddy.js"
import * as RefreshPolicy from "../RefreshPolicy.js"
import * as Core from "../TokenClient.js"
import type * as TokenEndpoint from "../TokenEndpoint.js"
import { InvalidConfiguration, type TokenError } from "../TokenError.js"
import * as TokenMirror from "../TokenMirror.js"
import * as TokenSource from "../TokenSource.js"

/**
 * The errors, to match by class (`error instanceof TokenError.InvalidClient`) or with
 * `TokenError.isTokenwardenError`; every rejection carries `_tag`, `transient` and `message`.
 *
 * @since 0.1.0
 */
export * as TokenError from "../TokenError.js"

/**
 * The states `onChange` reports (`Valid`, `Refreshing`, `Retrying`, `Failed`…), matched on `_tag`.
 *
 * @since 0.1.0
 * @category models
 */
export type { TokenState } from "../TokenState.js"

/**
 * A self-refreshing token: `get()`, a synchronous `current()`, `onChange(listener)` returning its
 * unsubscribe, `close()`, and `authorization()`, the header value ready to send.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenClient extends Core.TokenClient {
  /**
   * The `Authorization` header value of a valid token: `"Bearer abc…"`, with the token type the server
   * gave. Resolves at once while the cached token is valid.
   */
  readonly authorization: () => Promise<string>
  /** With `share: true`, what connects worker threads to this token (plain data, for `workerData`). */
  readonly handle?: TokenMirror.Handle | undefined
}

/**
 * The refresh policy's settings as plain values (`{ expirySkew: "30 seconds", minLead: 60_000 }`): every
 * field of `RefreshPolicy.Options` but the retry `Schedule`. Each is optional over the default.
 *
 * @since 0.1.0
 * @category models
 */
export type Policy = Omit<RefreshPolicy.Options, "retry">

/**
 * What every function here takes besides its provider's options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Settings {
  /**
   * The lowest level printed: `info` by default (a line per token received, per retry, per recovery);
   * `none` prints nothing.
   */
  readonly logLevel?: "debug" | "info" | "warning" | "error" | "none" | undefined
  /** Where each line goes (`time level message key=value`); `console.log` by default. */
  readonly log?: ((line: string) => void) | undefined
  /** The `fetch` requests are sent with; Node's global `fetch` by default. Redirects are never followed. */
  readonly fetch?: typeof globalThis.fetch | undefined
  /**
   * Shares the token with worker threads: the client gets a `handle` to pass in `workerData`, from
   * which each worker's `mirror(handle)` gets the token without a request of its own.
   */
  readonly share?: boolean | undefined
}

// the option keys whose values are secrets, in every provider's options: derived from their types, so
// that a new `Redacted` option fails to compile below until it is listed
type SecretKeyOf<T> = { [K in keyof T]-?: [Extract<T[K], Redacted.Redacted<any>>] extends [never] ? never : K }[keyof T]
type SecretKey =
  | SecretKeyOf<Baack.Options>
  | SecretKeyOf<BarapiCloud.Options>
  | SecretKeyOf<Barracuda.Options>
  | SecretKeyOf<Baruwa.Options>
  | SecretKeyOf<Buddy.Options>
const secretKeys = { clientSecret: true, password: true, rootToken: true } satisfies Record<SecretKey, true>

// the secrets a provider also takes as an effect, read again after the provider refuses them (a rotated
// secret needs no restart): given here as a function, derived and listed the same way
type ReadAgainKeyOf<T> = {
  [K in keyof T]-?: [Extract<T[K], Effect.Effect<Redacted.Redacted<any>, any, any>>] extends [never] ? never : K
}[keyof T]
type ReadAgainKey =
  | ReadAgainKeyOf<Baack.Options>
  | ReadAgainKeyOf<BarapiCloud.Options>
  | ReadAgainKeyOf<Barracuda.Options>
  | ReadAgainKeyOf<Baruwa.Options>
  | ReadAgainKeyOf<Buddy.Options>
const readAgainKeys = { clientSecret: true, rootToken: true } satisfies Record<ReadAgainKey, true>

// a secret as a plain value: a string, or (where the provider reads it again) a function giving it;
// a token source (Baack's root token may be one) is for Effect programs
type Reveal<V> = V extends Redacted.Redacted<infer A> ? A
  : V extends Effect.Effect<Redacted.Redacted<infer A>, any, any> ? () => A | Promise<A>
  : V extends TokenSource.TokenSource ? never
  : V

/**
 * A provider's options as plain values: strings where it takes `Redacted` secrets (or a function that
 * gives one, where it reads the secret again after a refusal), `Policy` for its refresh policy;
 * durations were `DurationInput` (milliseconds or `"30 seconds"`) already.
 *
 * @since 0.1.0
 * @category models
 */
export type Plain<T> = {
  readonly [K in keyof T]: K extends "policy" ? Policy | undefined : K extends SecretKey ? Reveal<T[K]> : T[K]
}

/**
 * The grant of a generic endpoint: `client_credentials` by default, or the resource owner's password,
 * or a refresh token kept from an earlier session.
 *
 * @since 0.1.0
 * @category models
 */
export type GrantOptions =
  | { readonly type: "client_credentials" }
  | { readonly type: "password"; readonly username: string; readonly password: string }
  | { readonly type: "refresh_token"; readonly refreshToken: string }

/**
 * Options of any OAuth 2.0 token endpoint: the endpoint's own (`url`, `timeout`, `defaultLifetime`,
 * `scopeSeparator`, `headers`, `provider`), the client, the grant, the policy, and the `Settings`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Omit<TokenEndpoint.Options, "clientAuth">, Settings {
  readonly clientId: string
  /**
   * Without a secret, the client is public (`clientAuth: "none"`). A function giving it is called at
   * the first request and again after the server refuses the client (`InvalidClient`), so a rotated
   * secret needs no restart.
   */
  readonly clientSecret?: string | (() => string | Promise<string>) | undefined
  /**
   * `basic` (HTTP Basic) by default with a secret, `post` (in the form body), `none`,
   * `client_secret_jwt` (the secret signs an assertion and is never sent) or `private_key_jwt` (the
   * default with a `privateKey`).
   */
  readonly clientAuth?: "basic" | "post" | "none" | "client_secret_jwt" | "private_key_jwt" | undefined
  /**
   * For `private_key_jwt`: a PKCS#8 PEM or a JWK's JSON, or a function giving it, called again after
   * the server refuses the client (`InvalidClient`), so a rotated key needs no restart.
   */
  readonly privateKey?: string | (() => string | Promise<string>) | undefined
  /** The assertion's algorithm: `RS256` by default for a private key, `HS256` for a secret. */
  readonly signingAlgorithm?: Assertion.PrivateKeyAlgorithm | Assertion.SecretAlgorithm | undefined
  /** The `kid` header of a `private_key_jwt` assertion. */
  readonly keyId?: string | undefined
  /** `form` (RFC 6749 section 2.3.1) by default, or `plain` `base64(id:secret)`. */
  readonly basicEncoding?: ClientAuth.BasicEncoding | undefined
  readonly scopes?: ReadonlyArray<string> | undefined
  readonly grant?: GrantOptions | undefined
  /** Further form parameters of every grant request (`audience`, `resource`). */
  readonly extraParams?: Grant.ExtraParams | undefined
  readonly policy?: Policy | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface BaruwaOptions extends Plain<Baruwa.Options>, Settings {}

/**
 * @since 0.1.0
 * @category models
 */
export interface BarapiCloudOptions extends Plain<BarapiCloud.Options>, Settings {}

/**
 * Buddy's client credentials (the web flow needs a browser: see the Effect API).
 *
 * @since 0.1.0
 * @category models
 */
export interface BuddyOptions extends Plain<Buddy.Options>, Settings {}

/**
 * @since 0.1.0
 * @category models
 */
export interface BarracudaOptions extends Plain<Barracuda.Options>, Settings {}

/**
 * Baack's options: `rootToken` a string, or a function that gives it (called at start and again after
 * each 401, so a rotated root token needs no restart). Its calls keep `Baack.defaultPolicy`.
 *
 * @since 0.1.0
 * @category models
 */
export interface BaackOptions extends Plain<Omit<Baack.Options, "policy">>, Settings {}

/**
 * Baack's API clients as Promises, driven with the root token: `read` resolves `undefined` for a
 * missing client, and a client's own `token` is `Redacted` (`Redacted.value` from `effect` unwraps it).
 *
 * @since 0.1.0
 * @category models
 */
export interface BaackClients {
  readonly create: (input: Baack.ApiClientInput) => Promise<Baack.ApiClient>
  readonly read: (urn: string) => Promise<Baack.ApiClient | undefined>
  readonly update: (urn: string, input: Baack.ApiClientInput) => Promise<Baack.ApiClient>
  readonly delete: (urn: string) => Promise<void>
  readonly list: () => Promise<ReadonlyArray<Baack.ApiClient>>
  /** Releases the client; later calls reject with `ClientClosed`. */
  readonly close: () => Promise<void>
}

const invalid = (reason: string) => new InvalidConfiguration({ reason })

const checkedSecret = (key: string, value: unknown): Redacted.Redacted<string> | undefined => {
  if (value === undefined) return undefined
  if (typeof value !== "string" || value === "") throw invalid(`${key} must be a non-empty string`)
  return Redacted.make(value)
}

// a function is called each time the provider reads the secret; what it gives is checked then
const readAgain = (key: string, read: () => unknown): Effect.Effect<Redacted.Redacted<string>, InvalidConfiguration> =>
  Effect.tryPromise({ try: async () => read(), catch: () => invalid(`${key}: the function giving it failed`) }).pipe(
    Effect.flatMap((value) =>
      typeof value === "string" && value !== ""
        ? Effect.succeed(Redacted.make(value))
        : Effect.fail(invalid(`${key} must be a non-empty string`))
    )
  )

const secretOption = (key: string, value: unknown) =>
  typeof value === "function" && Object.hasOwn(readAgainKeys, key)
    ? readAgain(key, value as () => unknown)
    : checkedSecret(key, value)

const requiredSecret = (key: string, value: unknown): Redacted.Redacted<string> => {
  const secret = checkedSecret(key, value)
  if (secret === undefined) throw invalid(`${key} is missing`)
  return secret
}

// the value is never quoted: a caller may have put a secret in the wrong option
const checkedDuration = (key: string, value: unknown): Duration.DurationInput | undefined => {
  if (value === undefined) return undefined
  const decoded = typeof value === "number" && !(value >= 0) ? Option.none() : Duration.decodeUnknown(value)
  if (Option.isNone(decoded)) {
    throw invalid(`${key} is not a duration: write milliseconds, or a string such as "30 seconds"`)
  }
  return decoded.value
}

// every string in a policy is a duration (its fractions are numbers); RefreshPolicy.make does the rest
const checkedPolicy = (value: unknown): RefreshPolicy.RefreshPolicy | undefined => {
  if (value === undefined) return undefined
  if (!Predicate.isRecord(value)) throw invalid("policy must be an object of settings")
  const settings: Record<string, unknown> = {}
  for (const [key, setting] of Object.entries(value)) {
    settings[key] = typeof setting === "string" ? checkedDuration(`policy.${key}`, setting) : setting
  }
  return RefreshPolicy.make(settings as RefreshPolicy.Options)
}

const durationKeys = new Set(["timeout", "defaultLifetime"])
const settingKeys = new Set(["logLevel", "log", "fetch"])

/**
 * Plain options to the library's: the one place where secrets become `Redacted`, durations are checked
 * and the policy is made. Throws `InvalidConfiguration` naming the option, never quoting its value.
 */
const toOptions = <T>(plain: object): T => {
  const options: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(plain)) {
    if (settingKeys.has(key)) continue
    options[key] = Object.hasOwn(secretKeys, key)
      ? secretOption(key, value)
      : key === "policy"
      ? checkedPolicy(value)
      : durationKeys.has(key)
      ? checkedDuration(key, value)
      : value
  }
  return options as T
}

const logLevels = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  none: LogLevel.None
} as const

const logLevelOf = (name: unknown): LogLevel.LogLevel => {
  if (name === undefined) return LogLevel.Info
  if (typeof name === "string" && Object.hasOwn(logLevels, name)) return logLevels[name as keyof typeof logLevels]
  throw invalid(`logLevel must be one of ${Object.keys(logLevels).join(", ")}`)
}

// HTTP through fetch, and the logger: provided before the source is built, so its fiber inherits both
const platform = (settings: Settings): Layer.Layer<HttpClient.HttpClient> => {
  const level = logLevelOf(settings.logLevel)
  const fetch = settings.fetch
  return Layer.mergeAll(
    fetch === undefined
      ? FetchHttpClient.layer
      : Layer.provide(FetchHttpClient.layer, Layer.succeed(FetchHttpClient.Fetch, fetch)),
    Logger.replace(
      Logger.defaultLogger,
      settings.log === undefined ? LineLogger.logger : LineLogger.make(settings.log)
    ),
    Logger.minimumLogLevel(level)
  )
}

// a failure rejects with the error itself, as TokenClient's Promises do
const settle = <A>(exit: Exit.Exit<A, unknown>): Promise<A> =>
  Exit.isSuccess(exit) ? Promise.resolve(exit.value) : Promise.reject(Cause.squash(exit.cause))

const Source = Context.GenericTag<TokenSource.TokenSource>("tokenwarden/node/TokenSource")

const run = async (
  settings: Settings,
  policy: RefreshPolicy.RefreshPolicy | undefined,
  make: Effect.Effect<TokenSource.TokenSource, TokenError, HttpClient.HttpClient | Scope.Scope>
): Promise<TokenClient> => {
  let handle: TokenMirror.Handle | undefined
  const served = Layer.scopedDiscard(
    Effect.flatMap(Source, (source) => TokenMirror.serve(source)).pipe(Effect.map((made) => void (handle = made)))
  )
  const source = Layer.scoped(Source, make)
  const layer = (settings.share === true ? Layer.provideMerge(served, source) : source).pipe(
    Layer.provide(platform(settings))
  )
  // the client's cache stops handing out a token when the source would: the same policy
  const client = await Core.fromLayer(Source, layer, policy === undefined ? undefined : { policy })
  return { ...client, authorization: () => client.get().then(AccessToken.authorizationHeader), handle }
}

/**
 * In a worker thread: the token of the owner that made `handle` (`share: true`), as the same client.
 * It never sends a token request; when the owner is gone, `get` rejects with `OwnerGone`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const mirror = async (
  handle: TokenMirror.Handle,
  settings: Pick<Settings, "logLevel" | "log"> & { readonly policy?: Policy | undefined } = {}
): Promise<TokenClient> => {
  if (!TokenMirror.isHandle(handle)) throw invalid("mirror needs the handle of a client started with share: true")
  const policy = settings.policy === undefined ? undefined : RefreshPolicy.make(settings.policy)
  const layer = TokenMirror.layer(Source, handle, { policy }).pipe(Layer.provide(platform(settings)))
  const client = await Core.fromLayer(Source, layer, policy === undefined ? undefined : { policy })
  return { ...client, authorization: () => client.get().then(AccessToken.authorizationHeader) }
}

const clientAuthOf = (options: Options): ClientAuth.ClientAuth => {
  if (typeof options.clientId !== "string") throw invalid("clientId must be a string")
  const secret = secretOption("clientSecret", options.clientSecret)
  const method = options.clientAuth ??
    (options.privateKey !== undefined ? "private_key_jwt" : secret === undefined ? "none" : "basic")
  if (method === "none") return ClientAuth.none(options.clientId)
  if (method === "private_key_jwt") {
    const key = options.privateKey
    return ClientAuth.privateKeyJwt(
      options.clientId,
      typeof key === "function" ? readAgain("privateKey", key) : requiredSecret("privateKey", key),
      { algorithm: options.signingAlgorithm as Assertion.PrivateKeyAlgorithm | undefined, keyId: options.keyId }
    )
  }
  if (method === "client_secret_jwt") {
    if (secret === undefined) throw invalid("clientAuth client_secret_jwt needs a clientSecret")
    return ClientAuth.clientSecretJwt(options.clientId, secret, {
      algorithm: options.signingAlgorithm as Assertion.SecretAlgorithm | undefined
    })
  }
  if (method !== "basic" && method !== "post") {
    throw invalid("clientAuth must be basic, post, none, client_secret_jwt or private_key_jwt")
  }
  if (secret === undefined) throw invalid(`clientAuth ${method} needs a clientSecret`)
  return method === "post"
    ? ClientAuth.post(options.clientId, secret)
    : ClientAuth.basic(options.clientId, secret, { encoding: options.basicEncoding })
}

const grantOf = (options: Options): Grant.Grant => {
  const grant: GrantOptions = options.grant ?? { type: "client_credentials" }
  const common = { scopes: options.scopes, extraParams: options.extraParams }
  switch (grant.type) {
    case "client_credentials":
      return Grant.clientCredentials(common)
    case "password":
      return Grant.password({
        ...common,
        username: grant.username,
        password: requiredSecret("grant.password", grant.password)
      })
    case "refresh_token":
      return Grant.refreshToken({ ...common, refreshToken: requiredSecret("grant.refreshToken", grant.refreshToken) })
    default:
      throw invalid("grant.type must be client_credentials, password or refresh_token")
  }
}

// a provider's function: its options converted in the one place, its `make` run behind the facade
const provider = <O extends { readonly policy?: RefreshPolicy.RefreshPolicy | undefined }>(
  make: (options: O) => Effect.Effect<TokenSource.TokenSource, TokenError, HttpClient.HttpClient | Scope.Scope>
) =>
async (options: Plain<O> & Settings): Promise<TokenClient> => {
  const converted = toOptions<O>(options)
  return run(options, converted.policy, make(converted))
}

/**
 * A token client for any OAuth 2.0 token endpoint; resolves once the first token has arrived. A
 * permanent error (a wrong secret: `InvalidClient`) rejects, so a daemon with a broken configuration
 * stops at start; a transient one does not: the client starts and its source keeps retrying.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = async (options: Options): Promise<TokenClient> => {
  const converted = toOptions<TokenSource.Options>(options)
  const source: TokenSource.Options = { ...converted, clientAuth: clientAuthOf(options), grant: grantOf(options) }
  return run(options, source.policy, TokenSource.make(source))
}

/**
 * A token client for a Baruwa server (`Baruwa.make`'s options, secrets as strings).
 *
 * @since 0.1.0
 * @category constructors
 */
export const baruwa: (options: BaruwaOptions) => Promise<TokenClient> = provider(Baruwa.make)

/**
 * A token client for barapi.cloud (`BarapiCloud.make`'s options, secrets as strings).
 *
 * @since 0.1.0
 * @category constructors
 */
export const barapiCloud: (options: BarapiCloudOptions) => Promise<TokenClient> = provider(BarapiCloud.make)

/**
 * A token client for Buddy's client credentials (`Buddy.make`'s options, secrets as strings).
 *
 * @since 0.1.0
 * @category constructors
 */
export const buddy: (options: BuddyOptions) => Promise<TokenClient> = provider(Buddy.make)

/**
 * A token client for the Barracuda Token Service (`Barracuda.make`'s options, secrets as strings).
 *
 * @since 0.1.0
 * @category constructors
 */
export const barracuda: (options: BarracudaOptions) => Promise<TokenClient> = provider(Barracuda.make)

/**
 * Baack's API clients, driven with the root token (a static credential, never refreshed). Rejects
 * with `InvalidConfiguration` for an unusable root token or base URL, before any request.
 *
 * @since 0.1.0
 * @category constructors
 */
export const baack = async (options: BaackOptions): Promise<BaackClients> => {
  const runtime = ManagedRuntime.make(
    Baack.layer(toOptions<Baack.Options<InvalidConfiguration>>(options)).pipe(
      Layer.provide(platform(options))
    )
  )
  const built = await runtime.runPromiseExit(Baack.ApiClients)
  if (Exit.isFailure(built)) {
    await runtime.dispose()
    throw Cause.squash(built.cause)
  }
  const clients = built.value
  let closed = false
  const call = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
    closed ? Promise.reject(new Core.ClientClosed()) : runtime.runPromiseExit(effect).then(settle)
  return {
    create: (input) => call(clients.create(input)),
    read: (urn) => call(Effect.map(clients.read(urn), Option.getOrUndefined)),
    update: (urn, input) => call(clients.update(urn, input)),
    delete: (urn) => call(clients.delete(urn)),
    list: () => call(clients.list),
    close: async () => {
      if (closed) return
      closed = true
      await runtime.dispose()
    }
  }
}

/**
 * Prints one line in the format tokenwarden's own lines have (`time level message key=value`), for a
 * program's own messages: `log("info", "API answered", { status: 200, took_ms: 35 })`.
 *
 * @since 0.1.0
 * @category logging
 */
export const log = (
  level: "debug" | "info" | "warning" | "error",
  message: string,
  fields?: Readonly<Record<string, unknown>>
): void => {
  const line = LineLogger.format({
    // a plain program's own line, outside any Effect Clock: the wall clock, as the Logger's `date` is
    date: new Date(),
    level: logLevelOf(level).label,
    message,
    fields: Object.entries(fields ?? {})
  })
  process.stdout.write(`${line}\n`)
}
