// @ts-check
/**
 * A daemon not written with Effect, in plain JavaScript: `tokenwarden/node` keeps its token fresh while
 * a loop calls an API every half second with `await tokens.authorization()`. On SIGINT or SIGTERM it
 * closes the client (no request is left half done) and prints what it did.
 *
 *   npx tsx examples/node.mjs            offline: an embedded test server on 127.0.0.1 (6-second tokens)
 *   TOKEN_URL=https://auth.example.com/oauth/token API_URL=https://api.example.com/v1/me \
 *   CLIENT_ID=my-client CLIENT_SECRET=… node examples/node.mjs
 *
 * From the installed package this runs in plain `node`; in this repository `npx tsx` maps the
 * package's name to its sources.
 */
import { log, start } from "tokenwarden/node"
import { AuthServer } from "tokenwarden/testing"

const { API_URL, CLIENT_ID = "client", CLIENT_SECRET = "secret", TOKEN_URL } = process.env

// without TOKEN_URL and API_URL, the testing server stands in for the provider and the API
const server = TOKEN_URL && API_URL
  ? { tokenUrl: TOKEN_URL, resourceUrl: API_URL, close: async () => {} }
  : await AuthServer.start({ lifetimeSeconds: 6 })

const tokens = await start({
  url: server.tokenUrl,
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  scopes: ["api"]
}).catch((error) => {
  // a permanent error at start (a wrong secret is InvalidClient): stop here, with the typed error
  log("error", "cannot get a token", { error: error._tag, detail: error.message })
  process.exit(1)
})

const stats = { calls: 0, ok: 0, rejected: 0, failed: 0, tokens: 1 }
// every state of the source, as in the Effect API: Valid, Refreshing, Retrying, Failed…
tokens.onChange((state) => {
  if (state._tag === "Valid") stats.tokens++
})

const call = async () => {
  stats.calls++
  try {
    // resolves at once from the cached token; the refresh happens in the background
    const response = await fetch(server.resourceUrl, { headers: { authorization: await tokens.authorization() } })
    if (response.ok) stats.ok++
    else stats.rejected++
  } catch (error) {
    // no valid token (the provider has been down longer than the token lived): the same tagged errors
    stats.failed++
    log("warning", "API call without a token", { error: /** @type {any} */ (error)._tag })
  }
}

let running = true
const loop = (async () => {
  while (running) {
    await call()
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
})()

// the call under way ends first, then the client closes: its refresh stops, nothing is left half done
const stop = async () => {
  running = false
  await loop
  await tokens.close()
  await server.close()
  log("info", "stopped", stats)
  process.exitCode = stats.rejected === 0 && stats.failed === 0 ? 0 : 1
}
process.once("SIGINT", stop)
process.once("SIGTERM", stop)
