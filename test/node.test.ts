/**
 * `tokenwarden/node`: plain values in, Promises out, the same token source and the same tagged errors
 * underneath, over Node's global fetch. Real HTTP against the fakes on 127.0.0.1, in real time.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Redacted, Scope } from "effect"
import { Baack, TokenError } from "tokenwarden"
import * as Node from "tokenwarden/node"
import { AuthServer, BaackFake, BarapiCloudFake, BarracudaFake, BaruwaFake, BuddyFake } from "tokenwarden/testing"
import { EC_PEM, EC_PUBLIC } from "./fixtures/keys.js"

const scopes: Array<Scope.CloseableScope> = []
const closing: Array<() => Promise<void>> = []
afterEach(async () => {
  await Promise.all(closing.splice(0).map((close) => close()))
  await Promise.all(scopes.splice(0).map((scope) => Effect.runPromise(Scope.close(scope, Exit.void))))
})

/** A fake server for the test, stopped after it. */
const serve = <A>(make: Effect.Effect<A, never, Scope.Scope>): Promise<A> => {
  const scope = Effect.runSync(Scope.make())
  scopes.push(scope)
  return Effect.runPromise(Scope.extend(make, scope))
}

/** A client for the test, closed after it; its lines collected instead of printed. */
const held = async <C extends { readonly close: () => Promise<void> }>(client: Promise<C>): Promise<C> => {
  const c = await client
  closing.push(c.close)
  return c
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls until `check` holds, at most `ms`. */
const until = async (check: () => boolean | Promise<boolean>, ms = 10_000) => {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out")
    await sleep(20)
  }
}

const rejection = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(() => assert.fail("expected a rejection"), (error: unknown) => error)

const lineFormat = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARN |ERROR) \S.*$/

describe("tokenwarden/node", () => {
  it("start: a token from any endpoint, the Authorization header ready, no request while it is valid", async () => {
    const server = await serve(AuthServer.make())
    const lines: Array<string> = []
    const tokens = await held(Node.start({
      url: server.tokenUrl,
      clientId: "client",
      clientSecret: "secret",
      scopes: ["api"],
      log: (line) => lines.push(line)
    }))
    const current = tokens.current()
    assert.isDefined(current, "start resolves once the first token has arrived")
    const headers = await Promise.all(Array.from({ length: 100 }, () => tokens.authorization()))
    const issued = await Effect.runPromise(server.issued)
    assert.strictEqual(issued.length, 1)
    assert.isTrue(headers.every((h) => h === `Bearer ${issued[0]!.accessToken}`))
    assert.strictEqual(Redacted.value((await tokens.get()).value), issued[0]!.accessToken)
    const requests = await Effect.runPromise(server.requests)
    assert.deepStrictEqual(requests.map((r) => [r.grantType, r.authMethod, r.form.scope]), [[
      "client_credentials",
      "client_secret_basic",
      "api"
    ]])
    // its own lines, in the one format, without the secret or the token
    assert.isAbove(lines.length, 0)
    for (const line of lines) {
      assert.match(line, lineFormat)
      assert.notInclude(line, "secret=")
      assert.notInclude(line, issued[0]!.accessToken)
    }
    assert.isTrue(
      lines.some((line) => / INFO {2}token received .*expires_in=(1h|59m\d+s)/.test(line)),
      lines.join("\n")
    )
  })

  it("onChange sees the background refresh; close stops it, and a closed client rejects with ClientClosed", async () => {
    const server = await serve(AuthServer.make({ lifetimeSeconds: 2 }))
    const tokens = await Node.start({
      url: server.tokenUrl,
      clientId: "client",
      clientSecret: "secret",
      logLevel: "none"
    })
    const states: Array<string> = []
    const unsubscribe = tokens.onChange((state) => states.push(state._tag))
    const first = tokens.current()
    // a 2-second token is refreshed after about a second
    await until(() => tokens.current() !== first)
    assert.include(states, "Refreshing")
    assert.include(states, "Valid")
    unsubscribe()
    await tokens.close()
    const requests = await Effect.runPromise(server.count())
    await sleep(1500)
    assert.strictEqual(await Effect.runPromise(server.count()), requests, "no refresh after close")
    const error = await rejection(tokens.authorization())
    assert.strictEqual((error as { _tag?: string })._tag, "ClientClosed")
    assert.isUndefined(tokens.current())
  })

  it("a wrong secret rejects start with the same InvalidClient class as the Effect API, before anything runs", async () => {
    const server = await serve(AuthServer.make())
    const lines: Array<string> = []
    const error = await rejection(Node.start({
      url: server.tokenUrl,
      clientId: "client",
      clientSecret: "not-the-secret",
      log: (line) => lines.push(line)
    }))
    assert.instanceOf(error, TokenError.InvalidClient)
    const e = error as TokenError.InvalidClient
    assert.strictEqual(e._tag, "InvalidClient")
    assert.isFalse(e.transient)
    assert.isTrue(TokenError.isTokenwardenError(e))
    assert.notInclude(e.message, "not-the-secret")
    assert.notInclude(lines.join("\n"), "not-the-secret")
    assert.strictEqual(await Effect.runPromise(server.count()), 1, "a permanent error is not retried")
  })

  it("a transient failure at start does not reject: the client starts, and heals by itself", async () => {
    const server = await serve(AuthServer.make())
    await Effect.runPromise(server.inject(AuthServer.Fault.unavailable()))
    const tokens = await held(Node.start({
      url: server.tokenUrl,
      clientId: "client",
      clientSecret: "secret",
      logLevel: "none"
    }))
    await until(async () => (await tokens.get().catch(() => undefined)) !== undefined)
    assert.strictEqual(await Effect.runPromise(server.count()), 2)
  })

  it("plain values: durations as milliseconds or strings, and the policy reaches the source", async () => {
    const server = await serve(AuthServer.make({ lifetimeSeconds: 60 }))
    const lines: Array<string> = []
    await held(Node.start({
      url: server.tokenUrl,
      clientId: "client",
      clientSecret: "secret",
      timeout: 5_000,
      policy: { leadFraction: 0.1, jitterFraction: 0, minLead: "20 seconds", expirySkew: 2_000 },
      log: (line) => lines.push(line)
    }))
    // refreshed 20 s before expiry (minLead), not at the default 25-35 % of the lifetime
    assert.isTrue(lines.some((line) => / token received .*refresh_in=40s/.test(line)), lines.join("\n"))
  })

  it("the password and refresh-token grants, post and public clients", async () => {
    const server = await serve(AuthServer.make({
      clients: [
        { clientId: "client", clientSecret: "secret", authMethods: ["client_secret_post"] },
        { clientId: "public-app" }
      ]
    }))
    const password = await held(Node.start({
      url: server.tokenUrl,
      clientId: "client",
      clientSecret: "secret",
      clientAuth: "post",
      grant: { type: "password", username: "user", password: "pass" },
      logLevel: "none"
    }))
    const refreshToken = (await Effect.runPromise(server.issued))[0]!.refreshToken!
    await held(Node.start({
      url: server.tokenUrl,
      clientId: "client",
      clientSecret: "secret",
      clientAuth: "post",
      grant: { type: "refresh_token", refreshToken },
      logLevel: "none"
    }))
    // without a secret, a public client
    await held(Node.start({
      url: server.tokenUrl,
      clientId: "public-app",
      grant: { type: "password", username: "user", password: "pass" },
      logLevel: "none"
    }))
    const requests = await Effect.runPromise(server.requests)
    assert.deepStrictEqual(requests.map((r) => [r.grantType, r.clientId, r.authMethod]), [
      ["password", "client", "client_secret_post"],
      ["refresh_token", "client", "client_secret_post"],
      ["password", "public-app", "none"]
    ])
    assert.isDefined(password.current())
  })

  it("invalid plain values reject with InvalidConfiguration naming the option, never quoting it, before any request", async () => {
    const server = await serve(AuthServer.make())
    const base = { url: server.tokenUrl, clientId: "client", clientSecret: "secret", logLevel: "none" } as const
    const cases: ReadonlyArray<readonly [unknown, string]> = [
      [{ ...base, clientSecret: undefined, clientAuth: "basic" }, "clientAuth basic needs a clientSecret"],
      [{ ...base, clientSecret: "" }, "clientSecret must be a non-empty string"],
      [{ ...base, clientSecret: 42 }, "clientSecret must be a non-empty string"],
      [{ ...base, timeout: "hunter2 secs" }, "timeout is not a duration"],
      [{ ...base, timeout: -5 }, "timeout is not a duration"],
      [{ ...base, policy: { expirySkew: "soon" } }, "policy.expirySkew is not a duration"],
      [{ ...base, policy: "fast" }, "policy must be an object"],
      [{ ...base, logLevel: "loud" }, "logLevel must be one of"],
      [{ ...base, grant: { type: "password", username: "user" } }, "grant.password is missing"],
      [{ ...base, grant: { type: "implicit" } }, "grant.type must be"],
      [{ ...base, clientAuth: "jwt" }, "clientAuth must be basic, post, none, client_secret_jwt or private_key_jwt"],
      [{ ...base, clientAuth: "private_key_jwt" }, "privateKey is missing"],
      [{ ...base, privateKey: "-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----" }, "signing key"],
      [{ ...base, url: "http://auth.example.com/token" }, "https"]
    ]
    for (const [options, reason] of cases) {
      const error = await rejection(Node.start(options as Node.Options))
      assert.instanceOf(error, TokenError.InvalidConfiguration, reason)
      assert.include((error as Error).message, reason)
      assert.notInclude((error as Error).message, "hunter2")
    }
    assert.strictEqual(await Effect.runPromise(server.count()), 0)
  })

  it("private_key_jwt from a PEM, or a function giving it that is called again after a refusal", async () => {
    const server = await serve(AuthServer.make({
      clients: [{ clientId: "jwt-client", publicKey: EC_PUBLIC, authMethods: ["private_key_jwt"] }]
    }))
    let reads = 0
    const tokens = await held(Node.start({
      url: server.tokenUrl,
      clientId: "jwt-client",
      privateKey: () => {
        reads++
        return EC_PEM
      },
      signingAlgorithm: "ES256",
      logLevel: "none"
    }))
    assert.isString((await tokens.get()).type)
    const requests = await Effect.runPromise(server.requests)
    assert.deepStrictEqual(requests.map((r) => [r.authMethod, r.outcome]), [["private_key_jwt", "token"]])
    assert.strictEqual(reads, 1)
  })

  it("logLevel: warning hides the info lines, none prints nothing", async () => {
    const server = await serve(AuthServer.make())
    const warning: Array<string> = []
    const none: Array<string> = []
    await held(Node.start({ ...options(server), logLevel: "warning", log: (line) => warning.push(line) }))
    await held(Node.start({ ...options(server), logLevel: "none", log: (line) => none.push(line) }))
    await Effect.runPromise(server.inject(AuthServer.Fault.unavailable()))
    const failing = await held(
      Node.start({ ...options(server), logLevel: "warning", log: (line) => warning.push(line) })
    )
    await until(() => failing.current() !== undefined)
    assert.deepStrictEqual(none, [])
    assert.isTrue(warning.every((line) => / (WARN |ERROR) /.test(line)), warning.join("\n"))
    assert.isTrue(warning.some((line) => / WARN {2}token request failed; retrying .*retry_in=\d/.test(line)))
  })

  it("token requests never follow a redirect, whatever fetch would do by default", async () => {
    const server = await serve(AuthServer.make())
    const elsewhere = await serve(AuthServer.make())
    await Effect.runPromise(
      server.inject(AuthServer.Fault.status(307, { headers: { location: elsewhere.tokenUrl }, body: "" }))
    )
    const error = await rejection(Node.start({ ...options(server), logLevel: "none" }))
    assert.strictEqual((error as { _tag?: string })._tag, "MalformedResponse")
    assert.strictEqual(await Effect.runPromise(elsewhere.count()), 0, "nothing was sent to the redirect's target")
  })

  it("a given fetch sends the requests", async () => {
    const server = await serve(AuthServer.make())
    const sent: Array<string> = []
    const fetch: typeof globalThis.fetch = (input, init) => {
      sent.push(String(input instanceof Request ? input.url : input))
      return globalThis.fetch(input, init)
    }
    await held(Node.start({ ...options(server), fetch, logLevel: "none" }))
    assert.deepStrictEqual(sent, [server.tokenUrl])
  })

  describe("each provider, secrets as strings", () => {
    it("Baruwa", async () => {
      const fake = await serve(BaruwaFake.make({ clientId: "app", clientSecret: "s3cret" }))
      const tokens = await held(Node.baruwa({
        baseUrl: fake.url,
        clientId: "app",
        clientSecret: "s3cret",
        logLevel: "none"
      }))
      const issued = await Effect.runPromise(fake.issued)
      assert.strictEqual(await tokens.authorization(), `Bearer ${issued[0]!.accessToken}`)
      assert.strictEqual((await Effect.runPromise(fake.requests))[0]!.authMethod, "client_secret_basic")
    })

    it("Baruwa with the client secret as a function: called at the first request, not at every one", async () => {
      const fake = await serve(BaruwaFake.make({ clientId: "app", clientSecret: "s3cret" }))
      let reads = 0
      const tokens = await held(Node.baruwa({
        baseUrl: fake.url,
        clientId: "app",
        clientSecret: () => {
          reads++
          return Promise.resolve("s3cret")
        },
        logLevel: "none"
      }))
      const first = await tokens.get()
      assert.strictEqual((await tokens.get()).value, first.value)
      assert.strictEqual(reads, 1)
      // a function giving nothing usable is InvalidConfiguration, never a request with an empty secret
      const error = await rejection(
        Node.baruwa({ baseUrl: fake.url, clientId: "app", clientSecret: () => "", logLevel: "none" })
      )
      assert.strictEqual((error as { readonly _tag: string })._tag, "InvalidConfiguration")
      assert.strictEqual(await Effect.runPromise(fake.count()), 1)
    })

    it("barapi.cloud", async () => {
      const fake = await serve(BarapiCloudFake.make())
      const tokens = await held(Node.barapiCloud({
        clientId: "barapi-client",
        clientSecret: "barapi-secret",
        username: "john@doe.com",
        password: "mypassword123",
        url: fake.tokenUrl,
        logLevel: "none"
      }))
      const issued = await Effect.runPromise(fake.issued)
      assert.strictEqual(issued[0]!.grantType, "password")
      assert.strictEqual(await tokens.authorization(), `Bearer ${issued[0]!.accessToken}`)
    })

    it("Buddy (client credentials)", async () => {
      const fake = await serve(BuddyFake.make())
      const tokens = await held(Node.buddy({
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
        scopes: ["WORKSPACE", "EXECUTION_RUN"],
        baseUrl: fake.url,
        logLevel: "none"
      }))
      const issued = await Effect.runPromise(fake.issued)
      assert.strictEqual(Redacted.value((await tokens.get()).value), issued[0]!.accessToken)
      assert.include(await tokens.authorization(), issued[0]!.accessToken)
    })

    it("Barracuda", async () => {
      const fake = await serve(BarracudaFake.make({ clientId: "bts", clientSecret: "bts-secret" }))
      const tokens = await held(Node.barracuda({
        clientId: "bts",
        clientSecret: "bts-secret",
        scopes: ["ess:account:read"],
        url: fake.tokenUrl,
        policy: { expirySkew: "30 seconds" },
        logLevel: "none"
      }))
      const issued = await Effect.runPromise(fake.issued)
      assert.strictEqual(await tokens.authorization(), `Bearer ${issued[0]!.accessToken}`)
    })

    it("Baack: a root token given as a function is read again after a 401, so a rotation needs no restart", async () => {
      const fake = await serve(BaackFake.make())
      let mounted = fake.rootToken
      let reads = 0
      const clients = await held(Node.baack({
        baseUrl: fake.url,
        rootToken: async () => {
          reads++
          return mounted
        },
        logLevel: "none"
      }))
      assert.deepStrictEqual(await clients.list(), [])
      const readsBefore = reads
      mounted = await Effect.runPromise(fake.rotateRootToken())
      assert.deepStrictEqual(await clients.list(), [])
      assert.isAbove(reads, readsBefore, "read again after the 401")
      // read at start: an empty one rejects there
      const error = await rejection(Node.baack({ baseUrl: fake.url, rootToken: () => "", logLevel: "none" }))
      assert.instanceOf(error, TokenError.InvalidConfiguration)
      assert.include((error as Error).message, "rootToken must be a non-empty string")
    })

    it("a provider's wrong secret rejects with InvalidClient", async () => {
      const fake = await serve(BarracudaFake.make({ clientId: "bts", clientSecret: "bts-secret" }))
      const error = await rejection(Node.barracuda({
        clientId: "bts",
        clientSecret: "wrong",
        scopes: ["ess:account:read"],
        url: fake.tokenUrl,
        logLevel: "none"
      }))
      assert.instanceOf(error, TokenError.InvalidClient)
    })

    it("Baack: the API clients as Promises, errors as the same classes, closed after close", async () => {
      const fake = await serve(BaackFake.make())
      const clients = await Node.baack({ baseUrl: fake.url, rootToken: fake.rootToken, logLevel: "none" })
      const created = await clients.create({
        scope: "api.baack.co",
        owner: { urn: fake.companyUrn },
        clientID: "Bearer",
        fields: { name: "kiosk" }
      })
      assert.isDefined(created.urn)
      assert.isTrue(Redacted.isRedacted(created.token), "a minted client's token stays Redacted")
      assert.strictEqual((await clients.read(created.urn!))?.urn, created.urn)
      assert.strictEqual((await clients.list()).length, 1)
      await clients.delete(created.urn!)
      assert.isUndefined(await clients.read(created.urn!))

      const kiosk = await Node.baack({ baseUrl: fake.url, rootToken: Redacted.value(created.token!), logLevel: "none" })
      closing.push(kiosk.close)
      assert.instanceOf(await rejection(kiosk.list()), Baack.Forbidden)

      await clients.close()
      assert.strictEqual((await rejection(clients.list()) as { _tag?: string })._tag, "ClientClosed")
      const error = await rejection(Node.baack({ baseUrl: fake.url, rootToken: "", logLevel: "none" }))
      assert.instanceOf(error, TokenError.InvalidConfiguration)
      assert.include((error as Error).message, "rootToken must be a non-empty string")
    })
  })

  it("log prints the program's own lines in the same format", async () => {
    const written: Array<string> = []
    const write = process.stdout.write
    process.stdout.write = ((chunk: string) => written.push(chunk) > 0) as typeof process.stdout.write
    try {
      Node.log("info", "API answered", { status: 200, took_ms: 35, path: "/v1/me" })
    } finally {
      process.stdout.write = write
    }
    assert.strictEqual(written.length, 1)
    assert.match(written[0]!, /^\S+Z INFO {2}API answered status=200 took=35ms path=\/v1\/me\n$/)
  })
})

const options = (server: AuthServer.AuthServer) => ({
  url: server.tokenUrl,
  clientId: "client",
  clientSecret: "secret"
})
