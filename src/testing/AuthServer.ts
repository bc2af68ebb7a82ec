/**
 * An in-process fake OAuth 2.0 authorization server (RFC 6749) for tests: a token endpoint with client
 * authentication, the four grants, PKCE, refresh-token rotation and revocation, a protected resource, and
 * injectable faults (error statuses, delays, dropped connections, malformed bodies).
 *
 * A provider's fake is a configuration of this server: `grantTypes` narrows the grants, `check` refuses
 * what the provider's document does not allow, and `shapeToken` writes the provider's token response.
 *
 * Built on `node:http` rather than `@effect/platform`'s `HttpServer` because faults need raw control of the
 * socket (destroy it unanswered, write bytes no schema would produce).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Jose from "jose"
import * as Crypto from "node:crypto"
import type * as Http from "node:http"
import type { Mutable, Reply } from "./internal/loopbackServer.js"
import { headersOf, jsonReply, oauthError, readBody, send, serve } from "./internal/loopbackServer.js"

/**
 * @since 0.1.0
 * @category models
 */
export type AuthMethod =
  | "client_secret_basic"
  | "client_secret_post"
  | "none"
  | "private_key_jwt"
  | "client_secret_jwt"

/**
 * A registered client. Without `clientSecret` it is a public client, which by default may only use `none`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientRegistration {
  readonly clientId: string
  readonly clientSecret?: string
  /** Default `["client_secret_basic", "client_secret_post"]`, or `["none"]` for a public client. */
  readonly authMethods?: ReadonlyArray<AuthMethod>
  /** Basic header encoding: `"form"` (RFC 6749 2.3.1, each part form-urlencoded), `"plain"`, default `"either"`. */
  readonly basicEncoding?: "form" | "plain" | "either"
  /**
   * The public key (a JWK) of a `private_key_jwt` client. The current key can be replaced with
   * `rotateClientKey`, as an operator rotates it at a real server.
   */
  readonly publicKey?: Jose.JWK
}

/**
 * One injected fault. Faults queue up and each is consumed by the next token request (FIFO).
 *
 * @since 0.1.0
 * @category models
 */
export type Fault =
  | {
    readonly _tag: "Status"
    readonly status: number
    readonly body?: string
    readonly contentType?: string
    readonly headers?: Record<string, string>
  }
  | { readonly _tag: "Delay"; readonly millis: number; readonly then?: Fault }
  | { readonly _tag: "Drop" }
  | { readonly _tag: "Body"; readonly status?: number; readonly body: string; readonly contentType?: string }

const statusFault = (status: number, retryAfterSeconds: number | undefined): Fault =>
  retryAfterSeconds === undefined
    ? { _tag: "Status", status }
    : { _tag: "Status", status, headers: { "Retry-After": String(retryAfterSeconds) } }

/**
 * @since 0.1.0
 * @category constructors
 */
export const Fault = {
  /** Answers with `status`; without a body a 4xx/5xx gets an RFC 6749 error JSON fitting the status. */
  status: (
    status: number,
    options?: { readonly body?: string; readonly contentType?: string; readonly headers?: Record<string, string> }
  ): Fault => ({ _tag: "Status", status, ...options }),
  /** 429 with `Retry-After` and `{"error":"temporarily_unavailable"}`. */
  rateLimited: (retryAfterSeconds: number): Fault => statusFault(429, retryAfterSeconds),
  /** 503 `{"error":"temporarily_unavailable"}`, with `Retry-After` when given. */
  unavailable: (retryAfterSeconds?: number): Fault => statusFault(503, retryAfterSeconds),
  /** Waits `millis` of real time (not the TestClock), then answers normally, or with the fault `then`. */
  delay: (millis: number, then?: Fault): Fault =>
    then === undefined ? { _tag: "Delay", millis } : { _tag: "Delay", millis, then },
  /** Destroys the socket without answering. */
  drop: (): Fault => ({ _tag: "Drop" }),
  /** Writes `body` as is (default status 200, content type `text/html`). */
  body: (body: string, options?: { readonly status?: number; readonly contentType?: string }): Fault => ({
    _tag: "Body",
    body,
    ...options
  })
}

/**
 * What `issueCode` registers: the authorization step's result, as the token endpoint will check it.
 *
 * @since 0.1.0
 * @category models
 */
export interface CodeRequest {
  readonly clientId: string
  readonly redirectUri?: string
  readonly scope?: string
  readonly codeChallenge?: string
  /** RFC 7636 section 4.3: `"plain"` when a challenge is given without a method. */
  readonly codeChallengeMethod?: "S256" | "plain"
}

/**
 * A token request that passed the generic checks (media type, single parameters, a `grant_type`, client
 * authentication), as a provider hook sees it.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenRequest {
  readonly grantType: string
  /** The authenticated client. */
  readonly clientId: string
  readonly authMethod: AuthMethod
  /** The form body, decoded; no parameter is repeated (RFC 6749 section 3.2). */
  readonly form: Readonly<Record<string, string>>
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string | undefined>>
}

/**
 * What a `check` hook answers instead of a token: an RFC 6749 section 5.2 error.
 *
 * @since 0.1.0
 * @category models
 */
export interface Refusal {
  /** Default 400; a 401 after Basic authentication gets `WWW-Authenticate`, as the server's own `invalid_client`. */
  readonly status?: number
  /** The RFC 6749 section 5.2 code: `invalid_request`, `invalid_scope`, `unauthorized_client`, ... */
  readonly error: string
  readonly description: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Default one client: `{ clientId: "client", clientSecret: "secret" }`. */
  readonly clients?: ReadonlyArray<ClientRegistration>
  /** Resource owners for the password grant; default `[{ username: "user", password: "pass" }]`. */
  readonly users?: ReadonlyArray<{ readonly username: string; readonly password: string }>
  /** Token lifetime; default 3600. An explicit `undefined` issues tokens that never expire (no `expires_in`). */
  readonly lifetimeSeconds?: number | undefined
  /** How `expires_in` is written; `"omit"` hides it while tokens still expire after their lifetime. */
  readonly expiresIn?: "number" | "string" | "omit"
  /** Default true for password, authorization_code and refresh_token. */
  readonly issueRefreshTokens?: boolean
  /** Default false: RFC 6749 section 4.4.3 says client_credentials should not get a refresh token. */
  readonly refreshTokensForClientCredentials?: boolean
  /** Default true: a refresh issues a new refresh token and revokes the presented one. */
  readonly rotateRefreshTokens?: boolean
  /** Default `"Bearer"`. */
  readonly tokenType?: string
  /** Access tokens become unsigned JWTs (`alg: none`) with an `exp` claim, to test peeking at `exp`. */
  readonly jwtAccessTokens?: boolean
  /** Token endpoint path, default `"/token"`. */
  readonly path?: string
  /** Server clock in epoch millis; default the `Clock` of the fiber running `make` (a TestClock in tests). */
  readonly now?: () => number
  /** Authorization codes valid from the start, in addition to those from `issueCode`. */
  readonly codes?: ReadonlyArray<CodeRequest & { readonly code: string }>
  /**
   * The grants this server accepts, default all four; any other is refused with 400
   * `unsupported_grant_type` once the client is authenticated.
   */
  readonly grantTypes?: ReadonlyArray<string>
  /**
   * A provider's own rules, run after client authentication and before the grant: a `Refusal` is
   * answered as an RFC 6749 section 5.2 error and nothing is issued; `undefined` lets the request on.
   */
  readonly check?: (request: TokenRequest) => Refusal | undefined
  /**
   * Rewrites each token response body (RFC 6749 section 5.1) into a provider's shape: drop, add or
   * reorder fields, rename them. Error answers and injected faults are never passed through it.
   */
  readonly shapeToken?: (body: Record<string, unknown>, request: TokenRequest) => Record<string, unknown>
  /**
   * Accepts the JWT bearer grant (RFC 7523 section 2.1): an assertion from `issuer`, signed with the
   * private half of `publicKey` (a JWK), addressed to the token endpoint, unexpired on the server's
   * clock and never seen before (its `jti`). Anything else is `invalid_grant`.
   */
  readonly jwtBearer?: {
    readonly issuer: string
    readonly publicKey: Jose.JWK
    readonly algorithms?: ReadonlyArray<string>
  }
  /**
   * Accepts the token exchange grant (RFC 8693) for the subject tokens `validSubject` approves
   * (`invalid_grant` otherwise); `subject_token_type` is required.
   */
  readonly tokenExchange?: {
    readonly validSubject: (subjectToken: string, subjectTokenType: string) => boolean
  }
}

const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// a client assertion's outcome, checked before the rest of the request
type Asserted =
  | { readonly clientId: string | undefined; readonly method: AuthMethod }
  | { readonly clientId: string | undefined; readonly refused: string }
const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

/**
 * @since 0.1.0
 * @category models
 */
export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly grantType: string | undefined
  readonly form: Readonly<Record<string, string>>
  /** The body exactly as received, to tell `scope=A+B` from `scope=A%20B`. */
  readonly rawBody: string
  readonly headers: Readonly<Record<string, string | undefined>>
  readonly clientId: string | undefined
  readonly authMethod: AuthMethod | undefined
  /** A request held by a `Delay` fault reads `"fault"` until it is answered. */
  readonly outcome: "token" | "error" | "fault"
}

/**
 * @since 0.1.0
 * @category models
 */
export interface IssuedToken {
  readonly accessToken: string
  readonly refreshToken?: string
  readonly expiresAt: number | undefined
  readonly grantType: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface AuthServer {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  readonly tokenUrl: string
  /** `GET` with `Authorization: Bearer <access token>`: 200 `{"ok":true}` or 401 (RFC 6750 `invalid_token`). */
  readonly resourceUrl: string
  readonly inject: (...faults: ReadonlyArray<Fault>) => Effect.Effect<void>
  /** Every request except those to the resource, in arrival order. */
  readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
  /** POSTs to the token endpoint (all outcomes), optionally of one `grant_type`. */
  readonly count: (grantType?: string) => Effect.Effect<number>
  readonly issueCode: (options: CodeRequest) => Effect.Effect<string>
  readonly revokeRefreshToken: (token: string) => Effect.Effect<void>
  readonly revokeAccessToken: (token: string) => Effect.Effect<void>
  /** Invalidates every issued token, as when a user revokes the app. */
  readonly revokeAll: Effect.Effect<void>
  /** Lifetime of tokens issued from now on; `undefined` issues tokens that never expire, without `expires_in`. */
  readonly setLifetime: (seconds: number | undefined) => Effect.Effect<void>
  /** Registers a new public key for a `private_key_jwt` client; assertions signed with the old one are refused. */
  readonly rotateClientKey: (clientId: string, publicKey: Jose.JWK) => Effect.Effect<void>
  /**
   * Replaces a registered client's secret, as an operator rotates it at a real server: from now on
   * only the new one is accepted (Basic, form body and `client_secret_jwt` alike). A client id not
   * registered is ignored.
   */
  readonly setClientSecret: (clientId: string, clientSecret: string) => Effect.Effect<void>
  readonly issued: Effect.Effect<ReadonlyArray<IssuedToken>>
  readonly resourceCalls: Effect.Effect<{ readonly ok: number; readonly rejected: number }>
}

const invalidGrant = (description: string) => oauthError(400, "invalid_grant", description)

/** RFC 6749 section 5.2 `unsupported_grant_type`, for a grant this server does not accept. */
const unsupportedGrant = (grantType: string) =>
  oauthError(400, "unsupported_grant_type", `grant_type ${grantType} is not supported`)

const errorCodes: Record<number, string> = {
  401: "invalid_client",
  403: "access_denied",
  429: "temporarily_unavailable",
  503: "temporarily_unavailable"
}
const errorCodeFor = (status: number) => errorCodes[status] ?? (status >= 500 ? "server_error" : "invalid_request")

const randomToken = (): string => Crypto.randomBytes(32).toString("base64url")

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url")
// unsigned (RFC 7519 section 6): enough for a client that only peeks at `exp`
const unsignedJwt = (claims: object): string => `${base64url({ alg: "none", typ: "JWT" })}.${base64url(claims)}.`

// RFC 6749 appendix B: '+' is a space, then percent-decoding; undefined on a malformed escape
const formDecode = (s: string): string | undefined => {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "))
  } catch {
    return undefined
  }
}

// RFC 6749 section 5.2: a 401 to a client that tried the Authorization header must carry WWW-Authenticate
const basicChallenge = { "WWW-Authenticate": "Basic realm=\"fake\"" }

const revoke = (entry: { revoked: boolean } | undefined): void => {
  if (entry !== undefined) entry.revoked = true
}

/** The tokens the server has issued, the lifetime of those to come, and which of them still stand. */
class Registry {
  lifetime: number | undefined
  readonly issued: Array<IssuedToken> = []
  readonly access = new Map<string, { expiresAt: number | undefined; revoked: boolean }>()
  readonly refresh = new Map<string, { clientId: string; scope: string | undefined; revoked: boolean }>()
  readonly options: Options
  readonly now: () => number

  constructor(options: Options, now: () => number) {
    this.options = options
    this.now = now
    this.lifetime = "lifetimeSeconds" in options ? options.lifetimeSeconds : 3600
  }

  /** Issues an access token (and a refresh token when `withRefresh`) and answers with the token response. */
  issue(request: TokenRequest, requestedScope: string | undefined, withRefresh: boolean): Reply {
    const { options } = this
    const { clientId, grantType } = request
    // RFC 6749 section 3.3: `scope=` asks for no scope, so none is echoed (nor stored for a refresh)
    const scope = requestedScope === "" ? undefined : requestedScope
    const lifetime = this.lifetime
    const issuedAt = this.now()
    const expiresAt = lifetime === undefined ? undefined : issuedAt + lifetime * 1000
    const accessToken = options.jwtAccessTokens === true
      ? unsignedJwt({
        jti: randomToken(),
        client_id: clientId,
        iat: Math.floor(issuedAt / 1000),
        ...(expiresAt === undefined ? {} : { exp: Math.floor(expiresAt / 1000) }),
        ...(scope === undefined ? {} : { scope })
      })
      : randomToken()
    this.access.set(accessToken, { expiresAt, revoked: false })
    const refreshToken = withRefresh ? randomToken() : undefined
    if (refreshToken !== undefined) this.refresh.set(refreshToken, { clientId, scope, revoked: false })
    this.issued.push(
      refreshToken === undefined
        ? { accessToken, expiresAt, grantType }
        : { accessToken, refreshToken, expiresAt, grantType }
    )
    const expiresIn = options.expiresIn ?? "number"
    const body = {
      access_token: accessToken,
      token_type: options.tokenType ?? "Bearer",
      ...(lifetime === undefined || expiresIn === "omit"
        ? {}
        : { expires_in: expiresIn === "string" ? String(lifetime) : lifetime }),
      ...(refreshToken === undefined ? {} : { refresh_token: refreshToken }),
      ...(scope === undefined ? {} : { scope })
    }
    return jsonReply(200, options.shapeToken === undefined ? body : options.shapeToken(body, request))
  }

  /** Whether `token` is an issued access token, neither revoked nor expired. */
  accepts(token: string | undefined): boolean {
    const entry = token === undefined ? undefined : this.access.get(token)
    return entry !== undefined && !entry.revoked && (entry.expiresAt === undefined || this.now() < entry.expiresAt)
  }

  /** Revokes every token issued so far. */
  revokeAll(): void {
    for (const entry of [...this.access.values(), ...this.refresh.values()]) revoke(entry)
  }
}

/** The JWTs the server verifies (RFC 7523): client assertions and the JWT bearer grant's assertion. */
class Assertions {
  // a `jti` is accepted once, across both kinds
  readonly seenJti = new Set<string>()
  readonly clientKeys = new Map<string, Jose.JWK>()
  readonly clients: ReadonlyArray<ClientRegistration>
  readonly jwtBearer: Options["jwtBearer"]
  readonly now: () => number

  constructor(clients: ReadonlyArray<ClientRegistration>, jwtBearer: Options["jwtBearer"], now: () => number) {
    this.clients = clients
    this.jwtBearer = jwtBearer
    this.now = now
    for (const c of clients) if (c.publicKey !== undefined) this.clientKeys.set(c.clientId, c.publicKey)
  }

  /**
   * RFC 7523 section 2.2 / OpenID Connect Core section 9: a client assertion, checked before the
   * (synchronous) rest of the request; the method it proves, or the refusal's description.
   */
  client(params: URLSearchParams, tokenUrl: string): Effect.Effect<Asserted> {
    return Effect.promise(async (): Promise<Asserted> => {
      const assertion = params.get("client_assertion")!
      let clientId: string | undefined = params.get("client_id") ?? undefined
      if (params.get("client_assertion_type") !== "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return { clientId, refused: "unsupported client_assertion_type" }
      }
      try {
        const claims = Jose.decodeJwt(assertion)
        const header = Jose.decodeProtectedHeader(assertion)
        if (typeof claims.iss === "string") clientId = claims.iss
        const client = this.clients.find((c) => c.clientId === claims.iss)
        if (client === undefined) return { clientId, refused: "unknown client" }
        const hmac = header.alg?.startsWith("HS") === true
        const key = hmac
          ? new TextEncoder().encode(client.clientSecret ?? "")
          : await Jose.importJWK(this.clientKeys.get(client.clientId) ?? {}, header.alg)
        const { payload } = await Jose.jwtVerify(assertion, key, {
          issuer: client.clientId,
          subject: client.clientId,
          audience: tokenUrl,
          currentDate: new Date(this.now()),
          requiredClaims: ["exp", "jti"]
        })
        if (this.seenJti.has(payload.jti!)) return { clientId, refused: "client assertion replayed (jti seen before)" }
        this.seenJti.add(payload.jti!)
        return { clientId, method: hmac ? "client_secret_jwt" : "private_key_jwt" }
      } catch (error) {
        const code = error instanceof Jose.errors.JOSEError ? `: ${error.code}` : ""
        return { clientId, refused: `client assertion refused${code}` }
      }
    })
  }

  /** RFC 7523 section 3: the grant assertion's checks; the refusal's description, or undefined when it passes. */
  grant(assertion: string | null, tokenUrl: string): Effect.Effect<string | undefined> {
    return Effect.promise(async (): Promise<string | undefined> => {
      const trusted = this.jwtBearer
      if (trusted === undefined) return undefined
      if (assertion === null) return "assertion is missing"
      try {
        const key = await Jose.importJWK(trusted.publicKey, trusted.publicKey.alg ?? trusted.algorithms?.[0])
        const { payload } = await Jose.jwtVerify(assertion, key, {
          issuer: trusted.issuer,
          audience: tokenUrl,
          currentDate: new Date(this.now()),
          requiredClaims: ["exp", "jti", "sub"],
          ...(trusted.algorithms === undefined ? {} : { algorithms: [...trusted.algorithms] })
        })
        if (this.seenJti.has(payload.jti!)) return "assertion replayed (jti seen before)"
        this.seenJti.add(payload.jti!)
        return undefined
      } catch (error) {
        return error instanceof Jose.errors.JOSEError ? `assertion refused: ${error.code}` : "assertion refused"
      }
    })
  }
}

/** A 401 `invalid_client`, carrying a challenge when the client tried Basic. */
const invalidClient = (basic: boolean, description: string) =>
  oauthError(401, "invalid_client", description, basic ? basicChallenge : {})
/** RFC 6749 section 2.3: a client must not use more than one authentication method in a request. */
const twoMethods = () => oauthError(400, "invalid_request", "more than one authentication method")

/** The client itself, when `method` is one it may use; `invalid_client` otherwise. */
const allow = (client: ClientRegistration, method: AuthMethod, basic: boolean): Reply | ClientRegistration => {
  const methods = client.authMethods ??
    (client.clientSecret === undefined ? ["none"] : ["client_secret_basic", "client_secret_post"])
  return methods.includes(method) ? client : invalidClient(basic, `${method} is not allowed for this client`)
}

/** Client authentication by an assertion already verified (`private_key_jwt`, `client_secret_jwt`). */
const authenticateAsserted = (
  clients: ReadonlyArray<ClientRegistration>,
  asserted: Asserted,
  basic: boolean,
  params: URLSearchParams,
  record: Mutable<RecordedRequest>
): Reply | ClientRegistration => {
  const formId = params.get("client_id") ?? undefined
  record.clientId = asserted.clientId
  if (basic || params.get("client_secret") !== null) return twoMethods()
  if ("refused" in asserted) return invalidClient(basic, asserted.refused)
  record.authMethod = asserted.method
  const client = clients.find((c) => c.clientId === record.clientId)!
  if (formId !== undefined && formId !== client.clientId) {
    return oauthError(400, "invalid_request", "client_id does not match the client assertion")
  }
  return allow(client, asserted.method, basic)
}

/** Client authentication by the Basic header (RFC 6749 section 2.3.1), in the encodings each client accepts. */
const authenticateBasic = (
  clients: ReadonlyArray<ClientRegistration>,
  header: string,
  params: URLSearchParams,
  record: Mutable<RecordedRequest>
): Reply | ClientRegistration => {
  const formId = params.get("client_id") ?? undefined
  record.authMethod = "client_secret_basic"
  if (params.get("client_secret") !== null) return twoMethods()
  const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  if (colon < 0) return invalidClient(true, "malformed Basic credentials")
  const [rawId, rawSecret] = [decoded.slice(0, colon), decoded.slice(colon + 1)]
  const [decodedId, decodedSecret] = [formDecode(rawId), formDecode(rawSecret)]
  const candidates = [{ encoding: "plain", id: rawId, secret: rawSecret }]
  if (decodedId !== undefined && decodedSecret !== undefined) {
    candidates.push({ encoding: "form", id: decodedId, secret: decodedSecret })
  }
  const accepts = (client: ClientRegistration, encoding: string) =>
    (client.basicEncoding ?? "either") === "either" || client.basicEncoding === encoding
  const client = clients.find((c) => candidates.some((d) => accepts(c, d.encoding) && d.id === c.clientId))
  record.clientId = client?.clientId ?? rawId
  if (client === undefined) return invalidClient(true, "unknown client")
  if (formId !== undefined && formId !== client.clientId) {
    return oauthError(400, "invalid_request", "client_id does not match the Basic credentials")
  }
  const secretOk = candidates.some((d) =>
    accepts(client, d.encoding) && d.id === client.clientId && d.secret === client.clientSecret
  )
  return secretOk ? allow(client, "client_secret_basic", true) : invalidClient(true, "wrong client secret")
}

/** Client authentication in the form body: `client_secret_post`, or `none` for a public client. */
const authenticateForm = (
  clients: ReadonlyArray<ClientRegistration>,
  params: URLSearchParams,
  record: Mutable<RecordedRequest>
): Reply | ClientRegistration => {
  const formId = params.get("client_id") ?? undefined
  const formSecret = params.get("client_secret") ?? undefined
  record.clientId = formId
  if (formId === undefined) return invalidClient(false, "no client authentication")
  const method: AuthMethod = formSecret === undefined ? "none" : "client_secret_post"
  record.authMethod = method
  const client = clients.find((c) => c.clientId === formId)
  if (client === undefined) return invalidClient(false, "unknown client")
  if (method === "client_secret_post" && formSecret !== client.clientSecret) {
    return invalidClient(false, "wrong client secret")
  }
  return allow(client, method, false)
}

/** RFC 6749 section 2.3: the authenticated client, or the error to answer with; records who and how. */
const authenticate = (
  clients: ReadonlyArray<ClientRegistration>,
  header: string | undefined,
  params: URLSearchParams,
  record: Mutable<RecordedRequest>,
  asserted: Asserted | undefined
): Reply | ClientRegistration => {
  const basic = header !== undefined && /^basic /i.test(header)
  if (asserted !== undefined) return authenticateAsserted(clients, asserted, basic, params, record)
  if (basic) return authenticateBasic(clients, header, params, record)
  return authenticateForm(clients, params, record)
}

// what the grant handlers share: the server's settings and state
interface Grants {
  readonly options: Options
  readonly users: ReadonlyArray<{ readonly username: string; readonly password: string }>
  readonly codes: Map<string, CodeRequest>
  readonly registry: Registry
  readonly issueRefresh: boolean
  readonly rotate: boolean
}

// one token request as a grant handler sees it, authenticated and past the provider's `check`
interface GrantInput {
  readonly request: TokenRequest
  readonly params: URLSearchParams
  readonly scope: string | undefined
  readonly assertionRefusal: string | undefined
}

/** RFC 6749 section 4.1.3: redeems an authorization code, once, checking its redirect URI and PKCE verifier. */
const redeemCode = (grants: Grants, { params, request }: GrantInput): Reply => {
  const code = params.get("code")
  if (code === null) return oauthError(400, "invalid_request", "code is missing")
  const grant = grants.codes.get(code)
  if (grant === undefined) return invalidGrant("unknown or already used code")
  grants.codes.delete(code) // RFC 6749 section 4.1.2: single use, a failed attempt burns it too
  if (grant.clientId !== request.clientId) return invalidGrant("code was issued to another client")
  if (grant.redirectUri !== undefined && params.get("redirect_uri") !== grant.redirectUri) {
    return invalidGrant("redirect_uri does not match") // RFC 6749 section 4.1.3: identical, not equivalent
  }
  if (grant.codeChallenge !== undefined) {
    const verifier = params.get("code_verifier")
    if (verifier === null) return invalidGrant("code_verifier is missing")
    const computed = grant.codeChallengeMethod === "S256"
      ? Crypto.createHash("sha256").update(verifier).digest("base64url")
      : verifier
    if (computed !== grant.codeChallenge) return invalidGrant("code_verifier does not match the code_challenge")
  }
  return grants.registry.issue(request, grant.scope, grants.issueRefresh)
}

/** RFC 6749 section 6: a refresh, revoking the presented token when refresh tokens rotate. */
const refreshGrant = (grants: Grants, { params, request }: GrantInput): Reply => {
  const token = params.get("refresh_token")
  if (token === null) return oauthError(400, "invalid_request", "refresh_token is missing")
  const entry = grants.registry.refresh.get(token)
  if (entry === undefined || entry.revoked || entry.clientId !== request.clientId) {
    return invalidGrant("refresh token is unknown, revoked or issued to another client")
  }
  if (grants.rotate) entry.revoked = true
  // without rotation the response omits refresh_token: the client keeps the one it has (RFC 6749 section 6)
  return grants.registry.issue(request, entry.scope, grants.rotate && grants.issueRefresh)
}

/** RFC 8693: a token exchange, for the subject tokens the options approve. */
const tokenExchangeGrant = (grants: Grants, { params, request, scope }: GrantInput): Reply => {
  const exchange = grants.options.tokenExchange
  if (exchange === undefined) return unsupportedGrant(request.grantType)
  const [subjectToken, subjectTokenType] = [params.get("subject_token"), params.get("subject_token_type")]
  if (subjectToken === null || subjectTokenType === null) {
    return oauthError(400, "invalid_request", "subject_token and subject_token_type are required")
  }
  return exchange.validSubject(subjectToken, subjectTokenType)
    ? grants.registry.issue(request, scope, false)
    : invalidGrant("subject_token is not valid")
}

// the grant handlers by `grant_type` (a Map: a grant type is the client's text, "__proto__" included)
const grantHandlers = new Map<string, (grants: Grants, input: GrantInput) => Reply>([
  ["client_credentials", (grants, { request, scope }) =>
    request.authMethod === "none"
      ? oauthError(400, "unauthorized_client", "client_credentials needs a confidential client")
      : grants.registry.issue(request, scope, grants.options.refreshTokensForClientCredentials ?? false)],
  ["password", (grants, { params, request, scope }) => {
    const [username, password] = [params.get("username"), params.get("password")]
    if (username === null || password === null) {
      return oauthError(400, "invalid_request", "username and password are required")
    }
    return grants.users.some((u) => u.username === username && u.password === password)
      ? grants.registry.issue(request, scope, grants.issueRefresh)
      : invalidGrant("wrong username or password")
  }],
  ["authorization_code", redeemCode],
  ["refresh_token", refreshGrant],
  [TOKEN_EXCHANGE, tokenExchangeGrant],
  [JWT_BEARER, (grants, { assertionRefusal, request, scope }) => {
    if (grants.options.jwtBearer === undefined) return unsupportedGrant(request.grantType)
    return assertionRefusal === undefined
      ? grants.registry.issue(request, scope, false)
      : invalidGrant(assertionRefusal)
  }]
])

/**
 * A POST to the token endpoint once its faults are spent: the generic checks (media type, single
 * parameters, a `grant_type`, client authentication, the accepted grants, the provider's `check`), then the grant.
 */
const tokenRequest = (
  grants: Grants,
  clients: ReadonlyArray<ClientRegistration>,
  req: Http.IncomingMessage,
  params: URLSearchParams,
  record: Mutable<RecordedRequest>,
  assertionRefusal: string | undefined,
  asserted: Asserted | undefined
): Reply => {
  const { options } = grants
  const mediaType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase()
  if (mediaType !== "application/x-www-form-urlencoded") {
    return oauthError(400, "invalid_request", "expected application/x-www-form-urlencoded")
  }
  const keys = [...params.keys()]
  if (new Set(keys).size !== keys.length) return oauthError(400, "invalid_request", "repeated parameter")
  const grantType = params.get("grant_type")
  if (grantType === null || grantType === "") return oauthError(400, "invalid_request", "grant_type is missing")
  const client = authenticate(clients, req.headers.authorization, params, record, asserted)
  if (!("clientId" in client)) return client
  if (options.grantTypes !== undefined && !options.grantTypes.includes(grantType)) return unsupportedGrant(grantType)
  const request: TokenRequest = {
    grantType,
    clientId: client.clientId,
    authMethod: record.authMethod!, // set by a successful `authenticate`
    form: record.form,
    headers: record.headers
  }
  const refusal = options.check?.(request)
  if (refusal !== undefined) {
    const status = refusal.status ?? 400
    const challenge = status === 401 && request.authMethod === "client_secret_basic" ? basicChallenge : {}
    return oauthError(status, refusal.error, refusal.description, challenge)
  }
  const handler = grantHandlers.get(grantType)
  if (handler === undefined) return unsupportedGrant(grantType)
  return handler(grants, { request, params, scope: params.get("scope") ?? undefined, assertionRefusal })
}

/**
 * Plays the queued fault, if any: true when it answered the request (or dropped it), false when the
 * request goes on to be answered normally (no fault, or a `Delay` without `then`).
 */
const playFault = (
  fault: Fault | undefined,
  req: Http.IncomingMessage,
  res: Http.ServerResponse,
  liveClock: Clock.Clock
): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    while (fault !== undefined) {
      switch (fault._tag) {
        case "Drop":
          req.socket.destroy()
          return true
        case "Body":
          send(res, {
            status: fault.status ?? 200,
            headers: { "Content-Type": fault.contentType ?? "text/html" },
            body: fault.body
          })
          return true
        case "Status": {
          const error = { error: errorCodeFor(fault.status), error_description: "injected fault" }
          const body = fault.body ?? (fault.status >= 400 ? JSON.stringify(error) : "")
          const headers = { "Content-Type": fault.contentType ?? "application/json", ...fault.headers }
          send(res, { status: fault.status, headers, body })
          return true
        }
        case "Delay":
          // real time, so a client timeout under TestClock fires while the server still holds the request
          yield* Effect.sleep(Duration.millis(fault.millis)).pipe(Effect.withClock(liveClock))
          fault = fault.then
      }
    }
    return false
  })

/** The protected resource (RFC 6750): 200 for a standing access token, 401 `invalid_token` otherwise. */
const resource = (
  registry: Registry,
  resourceCalls: { ok: number; rejected: number },
  req: Http.IncomingMessage,
  res: Http.ServerResponse
): void => {
  if (req.method !== "GET") return send(res, { status: 405, headers: { Allow: "GET" }, body: "" })
  if (registry.accepts(/^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1])) {
    resourceCalls.ok++
    return send(res, jsonReply(200, { ok: true }))
  }
  resourceCalls.rejected++
  send(res, jsonReply(401, { error: "invalid_token" }, { "WWW-Authenticate": "Bearer error=\"invalid_token\"" }))
}

// everything the router reaches: the settings, the state, and the endpoint's own URL once it listens
interface Server {
  readonly grants: Grants
  readonly clients: ReadonlyArray<ClientRegistration>
  readonly path: string
  readonly faults: Array<Fault>
  readonly requests: Array<Mutable<RecordedRequest>>
  readonly resourceCalls: { ok: number; rejected: number }
  readonly assertions: Assertions
  readonly liveClock: Clock.Clock
  // an assertion's audience, known once the server listens
  tokenUrl: string
}

/** A new request's record, before anything is known of its client or outcome. */
const recordOf = (
  req: Http.IncomingMessage,
  pathname: string,
  rawBody: string,
  params: URLSearchParams
): Mutable<RecordedRequest> => ({
  method: req.method ?? "",
  path: pathname,
  grantType: params.get("grant_type") ?? undefined,
  form: Object.fromEntries(params),
  rawBody,
  headers: headersOf(req),
  clientId: undefined,
  authMethod: undefined,
  outcome: "error"
})

/** The request router: the resource, then the token endpoint (recorded, faults first), then 404 or 405. */
const route = (server: Server, req: Http.IncomingMessage, res: Http.ServerResponse) =>
  Effect.gen(function*() {
    const pathname = new URL(req.url ?? "/", "http://127.0.0.1").pathname
    if (pathname === "/resource") return resource(server.grants.registry, server.resourceCalls, req, res)
    const rawBody = yield* readBody(req)
    const params = new URLSearchParams(rawBody)
    const record = recordOf(req, pathname, rawBody, params)
    server.requests.push(record)
    if (pathname !== server.path) return send(res, oauthError(404, "invalid_request", "not found"))
    if (req.method !== "POST") return send(res, { status: 405, headers: { Allow: "POST" }, body: "" })
    const fault = server.faults.shift()
    if (fault !== undefined) record.outcome = "fault"
    if (yield* playFault(fault, req, res, server.liveClock)) return
    const assertionRefusal = params.get("grant_type") === JWT_BEARER
      ? yield* server.assertions.grant(params.get("assertion"), server.tokenUrl)
      : undefined
    const asserted = params.get("client_assertion") === null
      ? undefined
      : yield* server.assertions.client(params, server.tokenUrl)
    const reply = tokenRequest(server.grants, server.clients, req, params, record, assertionRefusal, asserted)
    record.outcome = reply.status === 200 ? "token" : "error"
    send(res, reply)
  })

/**
 * Starts the server on 127.0.0.1 with a random port; it stops, dropping open connections, when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<AuthServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const now = options.now ?? (() => clock.unsafeCurrentTimeMillis())
    // a copy the server owns: `setClientSecret` replaces an entry in place, seen by every check
    const clients: Array<ClientRegistration> = [
      ...(options.clients ?? [{ clientId: "client", clientSecret: "secret" }])
    ]
    const registry = new Registry(options, now)
    const codes = new Map<string, CodeRequest>((options.codes ?? []).map((grant) => [grant.code, grant]))
    const server: Server = {
      grants: {
        options,
        users: options.users ?? [{ username: "user", password: "pass" }],
        codes,
        registry,
        issueRefresh: options.issueRefreshTokens ?? true,
        rotate: options.rotateRefreshTokens ?? true
      },
      clients,
      path: options.path ?? "/token",
      faults: [],
      requests: [],
      resourceCalls: { ok: 0, rejected: 0 },
      assertions: new Assertions(clients, options.jwtBearer, now),
      liveClock: Clock.make(),
      tokenUrl: ""
    }
    const { path, requests } = server

    const url = yield* serve((req, res) => route(server, req, res))
    server.tokenUrl = url + path

    return {
      url,
      tokenUrl: url + path,
      resourceUrl: url + "/resource",
      inject: (...more) => Effect.sync(() => void server.faults.push(...more)),
      requests: Effect.sync(() => requests.map((r) => ({ ...r }))),
      count: (grantType) =>
        Effect.sync(() =>
          requests.filter((r) =>
            r.path === path && r.method === "POST" && (grantType === undefined || r.grantType === grantType)
          ).length
        ),
      issueCode: (request) =>
        Effect.sync(() => {
          const code = randomToken()
          codes.set(code, request)
          return code
        }),
      revokeRefreshToken: (token) => Effect.sync(() => revoke(registry.refresh.get(token))),
      revokeAccessToken: (token) => Effect.sync(() => revoke(registry.access.get(token))),
      revokeAll: Effect.sync(() => registry.revokeAll()),
      rotateClientKey: (clientId, publicKey) =>
        Effect.sync(() => void server.assertions.clientKeys.set(clientId, publicKey)),
      setClientSecret: (clientId, clientSecret) =>
        Effect.sync(() => {
          const index = clients.findIndex((c) => c.clientId === clientId)
          const client = clients[index]
          if (client !== undefined) clients[index] = { ...client, clientSecret }
        }),
      setLifetime: (seconds) =>
        Effect.sync(() => {
          registry.lifetime = seconds
        }),
      issued: Effect.sync(() => registry.issued.slice()),
      resourceCalls: Effect.sync(() => ({ ...server.resourceCalls }))
    } satisfies AuthServer
  })

/**
 * The server as a program not written with Effect holds it: its URLs, its request count, and `close`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Started {
  readonly url: string
  readonly tokenUrl: string
  readonly resourceUrl: string
  /** Token requests received, of one grant type or all. */
  readonly count: (grantType?: string) => Promise<number>
  /** Calls of the protected resource, accepted and refused. */
  readonly resourceCalls: () => Promise<{ readonly ok: number; readonly rejected: number }>
  /** Stops the server, dropping open connections. */
  readonly close: () => Promise<void>
}

/**
 * Starts the server for a program not written with Effect (a plain Node test or demo): resolves once
 * it listens on 127.0.0.1, runs until `close`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = async (options?: Options): Promise<Started> => {
  const scope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(Scope.extend(make(options), scope))
  return {
    url: server.url,
    tokenUrl: server.tokenUrl,
    resourceUrl: server.resourceUrl,
    count: (grantType) => Effect.runPromise(server.count(grantType)),
    resourceCalls: () => Effect.runPromise(server.resourceCalls),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}
