/**
 * The benchmark's token server, in a process of its own so that its work does not land in the
 * measurements: OAuth 2.0 token endpoint over TLS on 127.0.0.1 with a configurable latency and
 * injected faults, the OpenID configuration @azure/identity (MSAL) fetches first, and counters.
 *
 *   node --import tsx bench/server.ts <cert.pem> <key.pem>     prints "LISTENING <port>"
 *
 * Control (GET): /_stats/{tenant}[?arrivals=1] → {count, faults, arrivals}; /_shutdown.
 */
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import type * as Http from "node:http"
import * as Https from "node:https"
import type { AddressInfo } from "node:net"
import { parseTenant } from "./lib/tenant.js"

const [certFile, keyFile] = process.argv.slice(2)
if (certFile === undefined || keyFile === undefined) {
  console.error("usage: server.ts <cert.pem> <key.pem>")
  process.exit(2)
}

interface Counters {
  count: number
  faults: number
  arrivals: Array<number>
  seed: number
  /** When the first token of the tenant was issued (the cohort's common issue time). */
  firstIssued: number | undefined
}
const tenants = new Map<string, Counters>()
const countersOf = (tenant: string): Counters => {
  let c = tenants.get(tenant)
  if (c === undefined) {
    c = {
      count: 0,
      faults: 0,
      arrivals: [],
      seed: Crypto.createHash("sha256").update(tenant).digest().readUInt32LE(),
      firstIssued: undefined
    }
    tenants.set(tenant, c)
  }
  return c
}
// mulberry32: reproducible fault sequences per tenant
const nextRandom = (c: Counters): number => {
  let t = (c.seed = (c.seed + 0x6d2b79f5) | 0)
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

let sequence = 0
const json = (res: Http.ServerResponse, status: number, body: unknown, headers = {}) => {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    "content-type": "application/json",
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(text),
    ...headers
  })
  res.end(text)
}

const server = Https.createServer({
  cert: Fs.readFileSync(certFile),
  key: Fs.readFileSync(keyFile),
  keepAliveTimeout: 120_000
})
server.headersTimeout = 130_000
server.requestTimeout = 0

server.on("request", (req, res) => {
  const url = new URL(req.url ?? "/", "https://127.0.0.1")
  const parts = url.pathname.split("/").filter((p) => p !== "")
  if (req.method === "GET" && parts[0] === "_stats" && parts[1] !== undefined) {
    const c = tenants.get(parts[1])
    return json(res, 200, {
      count: c?.count ?? 0,
      faults: c?.faults ?? 0,
      ...(url.searchParams.get("arrivals") === "1" ? { arrivals: c?.arrivals ?? [] } : {})
    })
  }
  if (req.method === "GET" && parts[0] === "_shutdown") {
    json(res, 200, {})
    server.close()
    server.closeAllConnections()
    return setTimeout(() => process.exit(0), 50).unref()
  }
  const tenant = parts[0] ?? ""
  const config = parseTenant(tenant)
  const origin = `https://${req.headers.host}`
  if (config === undefined) return json(res, 404, { error: "invalid_request", error_description: "unknown tenant" })
  // MSAL's authority metadata (its instance discovery is disabled by the benchmark)
  if (req.method === "GET" && url.pathname === `/${tenant}/v2.0/.well-known/openid-configuration`) {
    return json(res, 200, {
      issuer: `${origin}/${tenant}/v2.0`,
      token_endpoint: `${origin}/${tenant}/oauth2/v2.0/token`,
      authorization_endpoint: `${origin}/${tenant}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${origin}/${tenant}/oauth2/v2.0/devicecode`,
      end_session_endpoint: `${origin}/${tenant}/oauth2/v2.0/logout`,
      jwks_uri: `${origin}/${tenant}/discovery/v2.0/keys`,
      response_types_supported: ["code", "token"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      scopes_supported: ["openid"],
      tenant_region_scope: null,
      cloud_instance_name: "127.0.0.1",
      cloud_graph_host_name: "127.0.0.1",
      msgraph_host: "127.0.0.1"
    })
  }
  if (req.method !== "POST" || parts.slice(1).join("/") !== "oauth2/v2.0/token") {
    console.error(`bench server: unexpected ${req.method} ${url.pathname}`)
    return json(res, 404, { error: "invalid_request", error_description: "not found" })
  }
  const counters = countersOf(tenant)
  counters.count++
  counters.arrivals.push(Date.now())
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => {
    const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"))
    const answer = () => {
      if (config.faults > 0 && nextRandom(counters) * 100 < config.faults) {
        counters.faults++
        switch (counters.faults % 3) {
          case 0:
            return json(res, 503, { error: "temporarily_unavailable", error_description: "injected 503" }, {
              "retry-after": "1"
            })
          case 1:
            return json(res, 429, { error: "temporarily_unavailable", error_description: "injected 429" }, {
              "retry-after": "1"
            })
          default:
            return void req.socket.destroy()
        }
      }
      const grantType = form.get("grant_type")
      if (grantType !== "client_credentials" && grantType !== "refresh_token") {
        return json(res, 400, { error: "unsupported_grant_type" })
      }
      const now = Date.now()
      counters.firstIssued ??= now
      // a cohort's tokens expire with the first one (to the second): issued, in effect, at one moment
      const lifetime = config.cohort !== undefined && counters.count <= config.cohort
        ? Math.max(1, Math.round((counters.firstIssued + config.lifetime * 1000 - now) / 1000))
        : config.lifetime
      const expiresAt = now + lifetime * 1000
      const accessToken = `at.${expiresAt}.${++sequence}.${Crypto.randomBytes(12).toString("base64url")}`
      json(res, 200, {
        access_token: accessToken,
        token_type: "Bearer",
        expires_in: lifetime
      })
    }
    if (config.delay > 0) setTimeout(answer, config.delay)
    else answer()
  })
})

// a deep accept queue: a library that opens one connection per waiting caller opens thousands at once
server.listen({ port: 0, host: "127.0.0.1", backlog: 65535 }, () => {
  console.log(`LISTENING ${(server.address() as AddressInfo).port}`)
})
process.on("disconnect", () => process.exit(0))
