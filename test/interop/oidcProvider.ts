/**
 * A real authorization server for the interop suite: oidc-provider 9 (panva), in-process on
 * 127.0.0.1 with a random port, as an Effect scoped resource. Short access-token lifetimes, refresh
 * token rotation (with reuse detection: presenting a rotated refresh token revokes the grant),
 * revocation, introspection, discovery, client credentials, the device flow and PKCE; development
 * interactions (any login) that `userAgent.ts` clicks through.
 */
import { Effect } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import Provider, { errors } from "oidc-provider"
import { EC_PUBLIC } from "../fixtures/keys.js"
import { JWT_SECRET } from "../secrets.js"
import * as UserAgent from "./userAgent.js"

/** RFC 8693's grant type, which oidc-provider does not implement: the suite registers a fake of it. */
export const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

export const clients = {
  /** confidential, client_secret_basic: client credentials, and the code flow with refresh tokens */
  basic: { id: "basic-client", secret: "b4sic secret:+/%&=" },
  /** confidential, client_secret_post: client credentials */
  post: { id: "post-client", secret: "post-secret" },
  /** public (`none`): code + PKCE, device flow */
  public: { id: "public-app" },
  /** private_key_jwt with an ES256 key (kid "k1"): client credentials and token exchange */
  privateKeyJwt: { id: "pkjwt-client", keyId: "k1" },
  /** client_secret_jwt (HS256): client credentials */
  clientSecretJwt: { id: "csjwt-client", secret: JWT_SECRET }
} as const

export const redirectUri = "http://127.0.0.1/callback"

export interface TokenRequest {
  readonly grantType: string | undefined
  readonly clientId: string | undefined
  /** How the client authenticated, as sent. */
  readonly auth: "basic" | "post" | "none" | "jwt"
  readonly refreshToken: string | undefined
  readonly status: number
  readonly error: string | undefined
}

export interface ProviderEvent {
  readonly name: string
  readonly detail: string | undefined
}

export interface OidcProvider {
  /** `http://127.0.0.1:PORT`, exactly as discovery must report it */
  readonly issuer: string
  readonly tokenUrl: string
  readonly authorizationUrl: string
  readonly revocationUrl: string
  readonly introspectionUrl: string
  readonly deviceAuthorizationUrl: string
  /** Every request to the token endpoint, as the server saw it. */
  readonly tokenRequests: Effect.Effect<ReadonlyArray<TokenRequest>>
  /** oidc-provider's events: `grant.revoked`, `grant.error` (with the error's message), `refresh_token.consumed`. */
  readonly events: Effect.Effect<ReadonlyArray<ProviderEvent>>
  /** RFC 7662 introspection, as the basic client. */
  readonly introspect: (token: string) => Effect.Effect<{ readonly active: boolean; readonly [key: string]: unknown }>
  /**
   * Destroys one access token at the server, leaving the rest of its grant alive (RFC 7009 revocation
   * at oidc-provider revokes every token of the grant).
   */
  readonly dropAccessToken: (token: string) => Effect.Effect<void>
  /** A raw token request (for what a well-behaved client never sends, such as a rotated refresh token). */
  readonly tokenRequest: (
    params: Record<string, string>
  ) => Effect.Effect<{ readonly status: number; readonly body: Record<string, unknown> }>
  /** Opens an authorize URL as a user (logs in, consents) and returns the callback URL with the code. */
  readonly authorize: (url: string) => Effect.Effect<string>
  /** Opens a device flow's `verification_uri_complete` as a user and approves, or refuses. */
  readonly completeDevice: (verificationUriComplete: string, choice: "approve" | "deny") => Effect.Effect<string>
}

export interface Options {
  /** Access token lifetime in seconds (both user and client credentials tokens); default 4. */
  readonly accessTokenTtl?: number
  /** Device code lifetime in seconds; default 120. */
  readonly deviceCodeTtl?: number
  /**
   * The polling `interval` added to device authorization responses, in seconds; default 1.
   * oidc-provider sends none, which means 5 seconds (RFC 8628 section 3.2).
   */
  readonly deviceInterval?: number | undefined
}

const basicHeader = (id: string, secret: string) => {
  // RFC 6749 section 2.3.1: form-encoded, then base64
  const form = (s: string) => new URLSearchParams({ s }).toString().slice(2)
  return `Basic ${Buffer.from(`${form(id)}:${form(secret)}`).toString("base64")}`
}

export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const ttl = options.accessTokenTtl ?? 4
    const tokenRequests: Array<TokenRequest> = []
    const events: Array<ProviderEvent> = []

    const server = yield* Effect.acquireRelease(
      Effect.async<Http.Server>((resume) => {
        const server = Http.createServer()
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: clients.basic.id,
          client_secret: clients.basic.secret,
          token_endpoint_auth_method: "client_secret_basic",
          grant_types: ["client_credentials", "authorization_code", "refresh_token"],
          response_types: ["code"],
          redirect_uris: [redirectUri],
          application_type: "native",
          scope: "openid offline_access api:read api:write"
        },
        {
          client_id: clients.post.id,
          client_secret: clients.post.secret,
          token_endpoint_auth_method: "client_secret_post",
          grant_types: ["client_credentials"],
          response_types: [],
          redirect_uris: [],
          scope: "api:read"
        },
        {
          client_id: clients.privateKeyJwt.id,
          token_endpoint_auth_method: "private_key_jwt",
          token_endpoint_auth_signing_alg: "ES256",
          jwks: { keys: [{ ...EC_PUBLIC, kid: clients.privateKeyJwt.keyId, alg: "ES256", use: "sig" }] },
          grant_types: ["client_credentials", TOKEN_EXCHANGE],
          response_types: [],
          redirect_uris: [],
          scope: "api:read"
        },
        {
          client_id: clients.clientSecretJwt.id,
          client_secret: clients.clientSecretJwt.secret,
          token_endpoint_auth_method: "client_secret_jwt",
          token_endpoint_auth_signing_alg: "HS256",
          grant_types: ["client_credentials"],
          response_types: [],
          redirect_uris: [],
          scope: "api:read"
        },
        {
          client_id: clients.public.id,
          token_endpoint_auth_method: "none",
          application_type: "native",
          grant_types: ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
          response_types: ["code"],
          redirect_uris: [redirectUri]
        }
      ],
      scopes: ["openid", "offline_access", "api:read", "api:write"],
      features: {
        devInteractions: { enabled: true },
        clientCredentials: { enabled: true },
        revocation: { enabled: true, allowedPolicy: async () => true },
        introspection: { enabled: true, allowedPolicy: async () => true },
        deviceFlow: { enabled: true }
      },
      // every client allowed the refresh_token grant gets one (not only with offline_access)
      issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed: (grant: string) => boolean }) =>
        client.grantTypeAllowed("refresh_token"),
      // rotate on every use, for every client (the default rotates confidential clients' tokens late)
      rotateRefreshToken: true,
      pkce: { required: () => true },
      ttl: {
        AccessToken: ttl,
        ClientCredentials: ttl,
        AuthorizationCode: 60,
        DeviceCode: options.deviceCodeTtl ?? 120,
        RefreshToken: 3600,
        IdToken: 3600,
        Grant: 3600,
        Session: 3600,
        Interaction: 3600
      },
      findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
      cookies: { keys: ["interop-cookie-key"] }
    })

    provider.use(async (ctx, next) => {
      await next()
      const interval = "deviceInterval" in options ? options.deviceInterval : 1
      if (ctx.oidc?.route === "device_authorization" && ctx.status === 200 && interval !== undefined) {
        ctx.body = { ...ctx.body, interval }
      }
      if (ctx.oidc?.route !== "token") return
      const body = (ctx.oidc.body ?? {}) as Record<string, unknown>
      const authorization = String(ctx.headers.authorization ?? "")
      tokenRequests.push({
        grantType: ctx.oidc.params?.grant_type,
        clientId: ctx.oidc.client?.clientId,
        auth: /^basic /i.test(authorization)
          ? "basic"
          : body.client_assertion !== undefined
          ? "jwt"
          : body.client_secret !== undefined
          ? "post"
          : "none",
        refreshToken: ctx.oidc.params?.refresh_token,
        status: ctx.status,
        error: typeof ctx.body?.error === "string" ? ctx.body.error : undefined
      })
    })
    provider.on("grant.revoked", (_ctx, grantId: string) => events.push({ name: "grant.revoked", detail: grantId }))
    provider.on("grant.error", (_ctx, error: Error) => events.push({ name: "grant.error", detail: error.message }))
    provider.on("refresh_token.consumed", () => events.push({ name: "refresh_token.consumed", detail: undefined }))
    provider.on("server_error", (_ctx, error: Error) => events.push({ name: "server_error", detail: error.message }))
    // a FAKE token exchange (RFC 8693), registered through oidc-provider's extension point: it trades
    // a client-credentials token this server issued for a new one of the calling client
    provider.registerGrantType(
      TOKEN_EXCHANGE,
      async (ctx) => {
        const { subject_token, subject_token_type } = ctx.oidc.params as Record<string, string | undefined>
        if (subject_token_type !== "urn:ietf:params:oauth:token-type:access_token") {
          throw new errors.InvalidGrant("unsupported subject_token_type")
        }
        const subject = subject_token === undefined ? undefined : await provider.ClientCredentials.find(subject_token)
        if (subject === undefined) throw new errors.InvalidGrant("subject_token is not valid")
        const token = new provider.ClientCredentials({ client: ctx.oidc.client, scope: "api:read" })
        ctx.body = {
          access_token: await token.save(),
          issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
          token_type: "Bearer",
          expires_in: token.expiration
        }
      },
      new Set(["subject_token", "subject_token_type", "audience", "resource", "requested_token_type", "scope"])
    )
    server.on("request", provider.callback())

    const post = (url: string, params: Record<string, string>, headers: Record<string, string> = {}) =>
      Effect.promise(async () => {
        const response = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
          body: new URLSearchParams(params).toString(),
          signal: AbortSignal.timeout(10_000)
        })
        const text = await response.text()
        return { status: response.status, body: (text === "" ? {} : JSON.parse(text)) as Record<string, unknown> }
      })

    return {
      issuer,
      tokenUrl: `${issuer}/token`,
      authorizationUrl: `${issuer}/auth`,
      revocationUrl: `${issuer}/token/revocation`,
      introspectionUrl: `${issuer}/token/introspection`,
      deviceAuthorizationUrl: `${issuer}/device/auth`,
      tokenRequests: Effect.sync(() => tokenRequests.slice()),
      events: Effect.sync(() => events.slice()),
      introspect: (token) =>
        Effect.map(
          post(`${issuer}/token/introspection`, { token }, {
            authorization: basicHeader(clients.basic.id, clients.basic.secret)
          }),
          (answer) => answer.body as { readonly active: boolean; readonly [key: string]: unknown }
        ),
      dropAccessToken: (token) =>
        Effect.promise(async () => {
          const found = await provider.AccessToken.find(token)
          if (found === undefined) throw new Error("no such access token")
          await found.destroy()
        }),
      tokenRequest: (params) => post(`${issuer}/token`, params),
      authorize: (url) =>
        Effect.flatMap(UserAgent.make().browse(url, { login: "alice" }, redirectUri), (result) =>
          result.redirectedTo === undefined
            ? Effect.dieMessage(`authorization ended without a redirect: ${result.page?.slice(0, 300)}`)
            : Effect.succeed(result.redirectedTo)),
      completeDevice: (url, choice) =>
        Effect.map(UserAgent.make().browse(url, { login: "alice", deny: choice === "deny" }), (r) =>
          r.page ?? "")
    } satisfies OidcProvider
  })
