/**
 * Every library under test behind one shape: a session per child process, a holder per credential,
 * and `get()` as an application would call it (each library's documented way to get a cached token).
 * Libraries are imported lazily, so a child process loads only the one it measures.
 */
import { HttpClient } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { Context, Effect, Exit, Layer, Logger, LogLevel, ManagedRuntime, Redacted, Scope } from "effect"
import { type AccessToken, ClientAuth, Grant, RefreshPolicy, TokenSource } from "tokenwarden"
import * as TokenClient from "../../src/TokenClient.js"
import * as TokenPool from "../../src/TokenPool.js"
import { tokenPath } from "./tenant.js"

export interface Holder {
  /** One `get` as an application calls it. */
  readonly get: () => Promise<unknown>
  /**
   * What an application must keep to use this token again (the memory scenario keeps it): the
   * library's object for it by default (this holder); `null` when nothing is needed (a TokenPool key is
   * built again from the application's own data whenever it asks).
   */
  readonly handle?: unknown
  /** tokenwarden only: the Effect a program yields for a token (direct once the source is built). */
  readonly effect?: () => Effect.Effect<unknown, unknown>
  /**
   * Until when (epoch ms) the library, by its own bookkeeping, hands out the token `get` just resolved
   * with: its own expiry (counted from wherever the library counts it) less its own margin.
   */
  readonly usableUntil: (result: unknown) => number
}

export interface Session {
  readonly holder: (index: number) => Holder
  readonly close: () => Promise<void>
  /** tokenwarden only: runs an Effect in the session's runtime. */
  readonly run?: <A>(effect: Effect.Effect<A, unknown>) => Promise<A>
}

export interface SessionOptions {
  readonly origin: string
  readonly tenant: string
  /** TokenPool: requests under way at once per endpoint. */
  readonly maxConcurrentPerEndpoint?: number
  /** TokenPool: keep every token (memory and spread scenarios). */
  readonly keepIdle?: boolean
  /**
   * A client registration per token (`client-{i}`) instead of one for the provider: what a platform
   * holding its customers' own credentials keeps.
   */
  readonly distinctClients?: boolean
}

export interface Library {
  readonly id: string
  readonly name: string
  /** How long before expiry the library stops handing a token out (its refresh margin), seconds. */
  readonly margin: (lifetime: number) => number
  /** Whether it refreshes on its own schedule (else a token is replaced when a caller asks after its margin). */
  readonly proactive: boolean
  readonly open: (options: SessionOptions) => Promise<Session>
  /** The access token string in what `get` resolved with. */
  readonly tokenOf: (result: unknown) => string
}

/** The lifetime (whole seconds) a library needs so that it hands a token out for at least `usable` seconds. */
export const lifetimeFor = (library: Library, usable: number): number => {
  for (let lifetime = Math.ceil(usable);; lifetime++) {
    if (lifetime - library.margin(lifetime) >= usable) return lifetime
  }
}

/** How long a library hands out a token of this lifetime, seconds. */
export const usableFor = (library: Library, lifetime: number): number => lifetime - library.margin(lifetime)

// One client registration per provider, as a platform has: tokens differ by tenant (subject) and scope;
// or, with `distinctClients`, a registration per token.
const clientId = (options: SessionOptions, i: number) =>
  options.distinctClients === true ? `client-${i}` : "platform-client"
const scopeOf = (i: number) => `api://tenant-${i}/.default`
const secret = "bench-secret"
const quiet = Logger.minimumLogLevel(LogLevel.None)
const effectRuntime = () => ManagedRuntime.make(Layer.merge(NodeHttpClient.layerUndici, quiet))

const platformAuth = ClientAuth.basic("platform-client", Redacted.make(secret))

const sourceOptions = (options: SessionOptions, i: number): TokenSource.Options => ({
  url: options.origin + tokenPath(options.tenant),
  clientAuth: options.distinctClients === true
    ? ClientAuth.basic(clientId(options, i), Redacted.make(secret))
    : platformAuth,
  grant: Grant.clientCredentials({ scopes: [scopeOf(i)] })
})

const twMargin = (lifetime: number) =>
  lifetime - (RefreshPolicy.usableUntil(RefreshPolicy.defaults, {
    value: Redacted.make(""),
    type: "Bearer",
    issuedAt: 0,
    expiresAt: lifetime * 1000,
    lifetimeSource: "expires_in",
    scopes: [],
    extra: Redacted.make({})
  }) / 1000)

const twToken = (result: unknown) => Redacted.value((result as { value: Redacted.Redacted<string> }).value)

// tokenwarden's own bookkeeping: the token's expiry counted from when it was requested, less its skew
const twUsableUntil = (result: unknown) =>
  RefreshPolicy.usableUntil(RefreshPolicy.defaults, result as AccessToken.AccessToken)

/** tokenwarden's per-credential service, used from inside an Effect program. */
const tokenSource: Library = {
  id: "tws",
  name: "tokenwarden TokenSource",
  margin: twMargin,
  proactive: true,
  tokenOf: twToken,
  open: async (options) => {
    const runtime = effectRuntime()
    const client = await runtime.runPromise(HttpClient.HttpClient)
    const scopes: Array<Scope.CloseableScope> = []
    return {
      run: (effect) => runtime.runPromise(effect),
      holder: (i) => {
        const scope = Effect.runSync(Scope.make())
        scopes.push(scope)
        let source: TokenSource.TokenSource | undefined
        // a source is built once, by the first caller; every caller meanwhile waits for that one
        const built = runtime.runSync(Effect.cached(
          Scope.extend(TokenSource.make(sourceOptions(options, i)), scope).pipe(
            Effect.provideService(HttpClient.HttpClient, client),
            Effect.tap((s) => Effect.sync(() => (source = s)))
          )
        ))
        const effect = () => source !== undefined ? source.get : Effect.flatMap(built, (s) => s.get)
        return { effect, get: () => runtime.runPromise(effect()), usableUntil: twUsableUntil }
      },
      close: async () => {
        await Promise.all(scopes.map((scope) => Effect.runPromise(Scope.close(scope, Exit.void))))
        await runtime.dispose()
      }
    }
  }
}

class BenchToken extends Context.Tag("bench/Token")<BenchToken, TokenSource.TokenSource>() {}

/** tokenwarden's Promise facade over a TokenSource layer, for programs not written with Effect. */
const facade: Library = {
  id: "twf",
  name: "tokenwarden facade",
  margin: twMargin,
  proactive: true,
  tokenOf: twToken,
  open: async (options) => {
    const clients: Array<Promise<TokenClient.TokenClient>> = []
    return {
      holder: (i) => {
        let client: TokenClient.TokenClient | undefined
        let starting: Promise<TokenClient.TokenClient> | undefined
        const start = () => {
          if (starting === undefined) {
            starting = TokenClient.fromLayer(
              BenchToken,
              TokenSource.layer(BenchToken, sourceOptions(options, i)).pipe(
                Layer.provide(NodeHttpClient.layerUndici),
                Layer.merge(quiet)
              )
            ).then((c) => (client = c))
            clients.push(starting)
          }
          return starting
        }
        return {
          get: () => client !== undefined ? client.get() : start().then((c) => c.get()),
          usableUntil: twUsableUntil
        }
      },
      close: async () => {
        for (const c of await Promise.allSettled(clients)) if (c.status === "fulfilled") await c.value.close()
      }
    }
  }
}

/** tokenwarden's keyed pool: one scheduler fiber for every token. */
const pool: Library = {
  id: "twp",
  name: "tokenwarden TokenPool",
  margin: twMargin,
  proactive: true,
  tokenOf: twToken,
  open: async (options) => {
    const runtime = effectRuntime()
    const scope = Effect.runSync(Scope.make())
    const tokens = await runtime.runPromise(Scope.extend(
      TokenPool.make({
        maxConcurrentPerEndpoint: options.maxConcurrentPerEndpoint,
        idleTimeToLive: options.keepIdle === true ? Infinity : undefined
      }),
      scope
    ))
    return {
      run: (effect) => runtime.runPromise(effect),
      holder: (i) => {
        // built once per holder and reused, as an application keeps its tenants' credentials; the
        // memory scenario keeps no holder (`handle: null`), so only what the pool retains is counted
        let credential: TokenPool.Credential | undefined
        const effect = () => tokens.get(credential ??= { ...sourceOptions(options, i), subject: `tenant-${i}` })
        return { effect, get: () => runtime.runPromise(effect()), handle: null, usableUntil: twUsableUntil }
      },
      close: async () => {
        await Effect.runPromise(Scope.close(scope, Exit.void))
        await runtime.dispose()
      },
      pool: tokens
    } as Session & { readonly pool: TokenPool.TokenPool }
  }
}

/** google-auth-library: OAuth2Client with a refresh token; getAccessToken() caches until 5 minutes before expiry. */
const google: Library = {
  id: "google",
  name: "google-auth-library",
  margin: () => 300,
  proactive: false,
  tokenOf: (result) => (result as { token: string }).token,
  open: async (options) => {
    const { OAuth2Client } = await import("google-auth-library")
    return {
      holder: (i) => {
        const client = new OAuth2Client({
          clientId: clientId(options, i),
          clientSecret: secret,
          endpoints: { oauth2TokenUrl: options.origin + tokenPath(options.tenant) }
        })
        client.setCredentials({ refresh_token: `rt-${i}` })
        return {
          get: () => client.getAccessToken(),
          // expiry_date counts from receipt; isTokenExpiring() is `expiry_date <= now + threshold`
          usableUntil: () => (client.credentials.expiry_date ?? 0) - client.eagerRefreshThresholdMillis
        }
      },
      close: async () => {}
    }
  }
}

/**
 * simple-oauth2: ClientCredentials with its documented caching pattern (keep the AccessToken, get a new
 * one when `expired(300)`); like its README, no request sharing.
 */
const simple: Library = {
  id: "simple",
  name: "simple-oauth2",
  margin: () => 300,
  proactive: false,
  tokenOf: (result) => (result as { token: { access_token: string } }).token.access_token,
  open: async (options) => {
    const { ClientCredentials } = await import("simple-oauth2")
    const clientFor = (i: number) =>
      new ClientCredentials({
        client: { id: clientId(options, i), secret },
        auth: { tokenHost: options.origin, tokenPath: tokenPath(options.tenant) }
      })
    // one client for the provider and a token per tenant scope, or a client per token
    const shared = options.distinctClients === true ? undefined : clientFor(0)
    return {
      holder: (i) => {
        const client = shared ?? clientFor(i)
        let token: Awaited<ReturnType<typeof client.getToken>> | undefined
        return {
          get: async () => {
            if (token === undefined || token.expired(300)) token = await client.getToken({ scope: scopeOf(i) })
            return token
          },
          // expires_at counts from receipt; expired(300) is `expires_at - (now + 300 s) <= 0`
          usableUntil: () => ((token?.token.expires_at as Date | undefined)?.getTime() ?? 0) - 300_000
        }
      },
      close: async () => {}
    }
  }
}

/** openid-client v6: clientCredentialsGrant and the usual cache of its response until 5 minutes before expiry. */
const openid: Library = {
  id: "openid",
  name: "openid-client",
  margin: () => 300,
  proactive: false,
  tokenOf: (result) => (result as { access_token: string }).access_token,
  open: async (options) => {
    const client = await import("openid-client")
    const server = {
      issuer: `${options.origin}/${options.tenant}/v2.0`,
      token_endpoint: options.origin + tokenPath(options.tenant)
    }
    // one configuration for the provider and a token per tenant scope, or a configuration per token
    const shared = options.distinctClients === true
      ? undefined
      : new client.Configuration(server, clientId(options, 0), secret)
    return {
      holder: (i) => {
        const config = shared ?? new client.Configuration(server, clientId(options, i), secret)
        let response: Awaited<ReturnType<typeof client.clientCredentialsGrant>> | undefined
        let expiresAt = 0
        return {
          get: async () => {
            if (response === undefined || Date.now() >= expiresAt - 300_000) {
              response = await client.clientCredentialsGrant(config, { scope: scopeOf(i) })
              expiresAt = Date.now() + (response.expires_in ?? 0) * 1000
            }
            return response
          },
          usableUntil: () => expiresAt - 300_000
        }
      },
      close: async () => {}
    }
  }
}

/**
 * @azure/identity: ClientSecretCredential against the local authority (instance discovery off);
 * getToken() answers from MSAL's cache until 5 minutes before expiry.
 */
const azure: Library = {
  id: "azure",
  name: "@azure/identity",
  margin: () => 300,
  proactive: false,
  tokenOf: (result) => (result as { token: string }).token,
  open: async (options) => {
    const { ClientSecretCredential } = await import("@azure/identity")
    return {
      holder: (i) => {
        const credential = new ClientSecretCredential(options.tenant, clientId(options, i), secret, {
          authorityHost: options.origin,
          disableInstanceDiscovery: true
        })
        return {
          get: () => credential.getToken(scopeOf(i)),
          // MSAL keeps expiresOn in whole seconds (from the request) and refuses a token once
          // round(now / 1 s) + 300 > expiresOn: until half a second past expiresOn - 300 s
          usableUntil: (result) => (result as { expiresOnTimestamp: number }).expiresOnTimestamp - 300_000 + 500
        }
      },
      close: async () => {}
    }
  }
}

/**
 * The baseline: a plain hand-written fetch-and-cache, proactive (a timer refreshes at 75 % of the
 * lifetime, retried after 1 s on failure) and sharing the one request in flight.
 */
const baseline: Library = {
  id: "base",
  name: "baseline (hand-written)",
  margin: () => 0,
  proactive: true,
  tokenOf: (result) => result as string,
  open: async (options) => {
    const url = options.origin + tokenPath(options.tenant)
    const timers = new Set<ReturnType<typeof setTimeout>>()
    let closed = false
    return {
      holder: (i) => {
        let token: string | undefined
        let expiresAt = 0
        let pending: Promise<string> | undefined
        const schedule = (delay: number) => {
          if (closed) return
          const timer = setTimeout(() => {
            timers.delete(timer)
            fetchToken().catch(() => schedule(1000))
          }, delay)
          timer.unref()
          timers.add(timer)
        }
        const fetchToken = () =>
          pending ??= (async () => {
            try {
              const response = await fetch(url, {
                method: "POST",
                headers: { "content-type": "application/x-www-form-urlencoded" },
                body: new URLSearchParams({
                  grant_type: "client_credentials",
                  client_id: clientId(options, i),
                  client_secret: secret,
                  scope: scopeOf(i)
                })
              })
              if (!response.ok) throw new Error(`token endpoint answered ${response.status}`)
              const body = await response.json() as { access_token: string; expires_in: number }
              token = body.access_token
              expiresAt = Date.now() + body.expires_in * 1000
              schedule(body.expires_in * 750)
              return token
            } finally {
              pending = undefined
            }
          })()
        return {
          get: async () => token !== undefined && Date.now() < expiresAt ? token : fetchToken(),
          usableUntil: () => expiresAt
        }
      },
      close: async () => {
        closed = true
        for (const timer of timers) clearTimeout(timer)
      }
    }
  }
}

export const libraries: ReadonlyArray<Library> = [tokenSource, facade, pool, google, simple, openid, azure, baseline]

export const libraryById = (id: string): Library => {
  const library = libraries.find((l) => l.id === id)
  if (library === undefined) throw new Error(`unknown library ${id}`)
  return library
}
