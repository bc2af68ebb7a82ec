/**
 * A headless user agent for oidc-provider's development interactions: `fetch` with
 * `redirect: "manual"` and a cookie jar, following redirects and submitting the forms it is shown
 * (login with any name, consent, the device flow's code confirmation), the way a person in a browser
 * would click through them.
 */
import { Effect } from "effect"

interface Form {
  readonly action: string
  readonly method: string
  readonly fields: Array<[string, string]>
  readonly names: ReadonlySet<string>
}

const decodeEntities = (s: string) =>
  s.replace(/&quot;/g, "\"").replace(/&#39;|&#x27;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(
    /&amp;/g,
    "&"
  )

const attribute = (attributes: string, name: string): string | undefined => {
  const match = new RegExp(`\\b${name}="([^"]*)"`, "i").exec(attributes)
  return match?.[1] === undefined ? undefined : decodeEntities(match[1])
}

const firstForm = (html: string): Form | undefined => {
  const match = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html)
  if (match === null) return undefined
  const fields: Array<[string, string]> = []
  const names = new Set<string>()
  for (const input of match[2]!.matchAll(/<input\b([^>]*)>/gi)) {
    const name = attribute(input[1]!, "name")
    if (name === undefined) continue
    names.add(name)
    fields.push([name, attribute(input[1]!, "value") ?? ""])
  }
  return {
    action: attribute(match[1]!, "action") ?? "",
    method: (attribute(match[1]!, "method") ?? "get").toUpperCase(),
    fields,
    names
  }
}

/** What the user does at each form. */
export interface Choices {
  readonly login: string
  /** At the device flow's confirmation: refuse instead of confirming. */
  readonly deny?: boolean
}

export interface UserAgent {
  /**
   * Opens `url` and clicks through every page until a redirect to `stopAt` (returned), or a page
   * without a form (its text is returned).
   */
  readonly browse: (url: string, choices: Choices, stopAt?: string) => Effect.Effect<{
    readonly redirectedTo?: string
    readonly page?: string
  }>
}

export const make = (): UserAgent => {
  const jar = new Map<string, string>()

  const request = async (url: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers)
    if (jar.size > 0) headers.set("cookie", Array.from(jar, ([k, v]) => `${k}=${v}`).join("; "))
    const response = await fetch(url, { ...init, headers, redirect: "manual", signal: AbortSignal.timeout(10_000) })
    for (const cookie of response.headers.getSetCookie()) {
      const [pair, ...attributes] = cookie.split(";")
      const eq = pair!.indexOf("=")
      const name = pair!.slice(0, eq).trim()
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=.*1970/i.test(a))
      if (expired) jar.delete(name)
      else jar.set(name, pair!.slice(eq + 1).trim())
    }
    return response
  }

  const browse = async (start: string, choices: Choices, stopAt?: string) => {
    let response = await request(start)
    let base = start
    let refused = false
    for (let step = 0; step < 30; step++) {
      if (response.status >= 300 && response.status < 400) {
        const location = new URL(response.headers.get("location") ?? "", base).href
        await response.body?.cancel()
        if (stopAt !== undefined && location.startsWith(stopAt)) return { redirectedTo: location }
        base = location
        response = await request(location)
        continue
      }
      const page = await response.text()
      if (response.status !== 200) {
        throw new Error(`user agent: HTTP ${response.status} at ${base}: ${page.slice(0, 300)}`)
      }
      const form = firstForm(page)
      // after a refusal the server shows its page again (with a form to start over): done
      if (form === undefined || refused) return { page }
      const fields = form.fields.flatMap(([name, value]): Array<[string, string]> => {
        if (name === "login") return [[name, choices.login]]
        if (name === "password") return [[name, "any password"]]
        if (name === "confirm" && choices.deny === true) {
          refused = true
          return [["abort", "yes"]]
        }
        return [[name, value]]
      })
      const action = new URL(form.action, base).href
      base = action
      response = await request(action, {
        method: form.method,
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(fields).toString()
      })
    }
    throw new Error(`user agent: more than 30 steps from ${start}`)
  }

  return {
    browse: (url, choices, stopAt) => Effect.promise(() => browse(url, choices, stopAt))
  }
}
