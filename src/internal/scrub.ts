/**
 * Every string a server sends us is hostile until it has been through `clean`: cut to `MAX_INPUT`
 * before anything else looks at it (so the work is bounded whatever the body), stripped of control
 * characters and extra white space, scrubbed of the exact values the request carried (`Sent`), masked
 * where it looks like a credential, and only then cut to the length its field allows. Scrubbing comes
 * before the cut, so a cut never leaves half a secret showing.
 *
 * Everything here runs in time linear in its input: the regular expressions are character classes,
 * anchored bounded repetitions and alternations of literals (eslint-plugin-regexp checks that none
 * backtracks or moves super-linearly), the maskers resume after each value they mask, and the sent
 * values are found by Knuth-Morris-Pratt, one pass per value.
 *
 * @internal
 */
import * as Inspectable from "effect/Inspectable"
import * as Redacted from "effect/Redacted"

/**
 * Server text is cut to this many characters before it is cleaned.
 *
 * @internal
 */
export const MAX_INPUT = 4096

/**
 * How long the cleaned forms may be: a body excerpt, a description (`error_description`, an API
 * `message`, a challenge's `error_description`), a code (`error`, an API `code`), a JSON field name.
 *
 * @internal
 */
export const MaxLength = {
  excerpt: 200,
  description: 256,
  code: 64,
  field: 64
} as const

const MASK = "***"

/** Sent values shorter than this are not scrubbed: they cannot be told apart from prose. */
const MIN_NEEDLE = 6

/**
 * The form parameters whose values are secret. A new kind of secret on a request (a JWT client
 * assertion, a token-exchange subject token) is scrubbed by naming its parameter here.
 *
 * @internal
 */
export const secretParams: ReadonlySet<string> = new Set([
  "client_secret",
  "client_assertion",
  "password",
  "code",
  "code_verifier",
  "device_code",
  "refresh_token",
  "access_token",
  "id_token",
  "token",
  "assertion",
  "subject_token",
  "actor_token"
])

// headers that carry credentials: Authorization, Proxy-Authorization, Cookie, X-Api-Key, X-Auth-Token, …
const secretHeader = /auth|token|secret|key|cookie|session|passw|credential/i

/**
 * Whether a header carries a credential (its value is then scrubbed from what the server says).
 *
 * @internal
 */
export const isSecretHeader = (name: string): boolean => secretHeader.test(name)

// --- the values a request carried ------------------------------------------------------------------

interface Needle {
  readonly codes: Uint16Array
  readonly table: Int32Array
}

const formEncode = (s: string): string => new URLSearchParams({ s }).toString().slice(2)

const formDecode = (s: string): string | undefined => {
  try {
    return decodeURIComponent(s.replaceAll("+", " "))
  } catch {
    return undefined
  }
}

const htmlEscape = (s: string): string =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll("\"", "&quot;")

/**
 * The base64 characters that encode `value` wherever it sits in a longer input: for each of the three
 * byte alignments, the characters whose six bits all come from `value` (a secret inside a Basic
 * header, or any base64 blob, shows as one of these three).
 */
const base64Fragments = (value: string): Array<string> => {
  const bytes = Buffer.from(value, "utf8")
  const out: Array<string> = []
  for (let offset = 0; offset < 3; offset++) {
    const padded = Buffer.concat([Buffer.alloc(offset), bytes, Buffer.alloc(2)])
    const start = Math.ceil((offset * 8) / 6)
    const end = Math.floor(((offset + bytes.length) * 8) / 6)
    out.push(padded.toString("base64").slice(start, end), padded.toString("base64url").slice(start, end))
  }
  return out
}

/** Every form a server could echo a value in: as is, URL- and form-encoded, JSON- and HTML-escaped, base64. */
const variants = (value: string): Array<string> => {
  const form = formEncode(value)
  return [
    value,
    encodeURIComponent(value),
    form,
    encodeURIComponent(form),
    JSON.stringify(value).slice(1, -1),
    htmlEscape(value),
    ...base64Fragments(value),
    ...base64Fragments(form)
  ]
}

// each UTF-16 code unit's lower case, where that is one code unit too (so indices stay the text's)
let foldTable: Uint16Array | undefined
const fold = (): Uint16Array => {
  if (foldTable === undefined) {
    foldTable = new Uint16Array(0x10000)
    for (let c = 0; c < 0x10000; c++) {
      const lower = String.fromCharCode(c).toLowerCase()
      foldTable[c] = lower.length === 1 ? lower.charCodeAt(0) : c
    }
  }
  return foldTable
}

// the text's code units, lower-cased
const loweredCodes = (text: string): Uint16Array => {
  const table = fold()
  const codes = new Uint16Array(text.length)
  for (let i = 0; i < text.length; i++) codes[i] = table[text.charCodeAt(i)]!
  return codes
}

// Knuth-Morris-Pratt: for each prefix of the needle, the length of its longest proper border
const failureTable = (p: Uint16Array): Int32Array => {
  const table = new Int32Array(p.length)
  let k = 0
  for (let i = 1; i < p.length; i++) {
    while (k > 0 && p[i] !== p[k]) k = table[k - 1]!
    if (p[i] === p[k]) k++
    table[i] = k
  }
  return table
}

/**
 * The values one request carried (client secret, password, refresh token, code, PKCE verifier,
 * Basic value, client assertion, current and previous access tokens), kept `Redacted`. Their
 * searchable forms are computed on first use, which is on a failure path only. Prints as `<redacted>`.
 *
 * @internal
 */
export class Sent {
  readonly #values: ReadonlyArray<Redacted.Redacted<string>>
  #needles: ReadonlyArray<Needle> | undefined

  private constructor(values: ReadonlyArray<Redacted.Redacted<string>>) {
    this.#values = values
  }

  /** Nothing sent worth scrubbing. */
  static readonly empty: Sent = new Sent([])

  /** The given values (undefined ones skipped). */
  static of(values: Iterable<Redacted.Redacted<string> | undefined>): Sent {
    const kept: Array<Redacted.Redacted<string>> = []
    for (const value of values) if (value !== undefined) kept.push(value)
    return new Sent(kept)
  }

  /**
   * What a request carried in its form and headers: the value of every parameter named in
   * `secretParams`, and of every credential-bearing header (with its credentials part, and for Basic
   * the decoded `id:secret` and secret), plus `also` (the access tokens in play).
   */
  static fromRequest(options: {
    readonly params?: ReadonlyArray<readonly [string, string]> | undefined
    readonly headers?: Readonly<Record<string, string>> | undefined
    readonly also?: ReadonlyArray<Redacted.Redacted<string> | undefined> | undefined
  }): Sent {
    const values: Array<string> = []
    for (const [name, value] of options.params ?? []) if (secretParams.has(name)) values.push(value)
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      if (isSecretHeader(name)) values.push(...headerValues(value))
    }
    return Sent.of([...values.map((v) => Redacted.make(v)), ...(options.also ?? [])])
  }

  /** These values and `more`. */
  plus(more: Iterable<Redacted.Redacted<string> | undefined>): Sent {
    return Sent.of([...this.#values, ...more])
  }

  /** How many values are held. */
  get size(): number {
    return this.#values.length
  }

  /** @internal */
  needles(): ReadonlyArray<Needle> {
    if (this.#needles === undefined) {
      const texts = new Set<string>()
      for (const value of this.#values) {
        for (const text of variants(Redacted.value(value))) {
          // matched against normalized text, so normalized the same way
          const needle = normalize(text)
          if (needle.length >= MIN_NEEDLE) texts.add(needle)
        }
      }
      this.#needles = [...texts].map((text) => {
        const codes = loweredCodes(text)
        return { codes, table: failureTable(codes) }
      })
    }
    return this.#needles
  }

  toString(): string {
    return "<redacted>"
  }

  toJSON(): unknown {
    return "<redacted>"
  }

  [Inspectable.NodeInspectSymbol](): unknown {
    return "<redacted>"
  }
}

/** A credential header's value, its credentials part, and for Basic what it decodes to. */
const headerValues = (value: string): Array<string> => {
  const out = [value]
  const space = value.indexOf(" ")
  if (space < 0) return out
  const credentials = value.slice(space + 1).trim()
  out.push(credentials)
  if (value.slice(0, space).toLowerCase() === "basic") {
    const decoded = Buffer.from(credentials, "base64").toString("utf8")
    const colon = decoded.indexOf(":")
    if (colon >= 0) {
      const secret = decoded.slice(colon + 1)
      out.push(decoded, secret)
      const plain = formDecode(secret)
      if (plain !== undefined) out.push(plain)
    }
  }
  return out
}

/**
 * Replaces every occurrence of a sent value (any case, any of its encodings) with `***`. When the
 * text was cut, a value's beginning at its end is masked as well.
 */
const scrubSent = (text: string, sent: Sent, truncated: boolean): string => {
  const needles = sent.needles()
  if (needles.length === 0 || text.length === 0) return text
  const lowered = loweredCodes(text)
  const n = lowered.length
  // +1 where a masked range starts, -1 where it ends: O(1) per match, however matches overlap
  const delta = new Int32Array(n + 1)
  let any = false
  for (const { codes: p, table } of needles) {
    const m = p.length
    let q = 0
    for (let i = 0; i < n; i++) {
      const c = lowered[i]!
      while (q > 0 && c !== p[q]) q = table[q - 1]!
      if (c === p[q]) q++
      if (q === m) {
        delta[i + 1 - m]!++
        delta[i + 1]!--
        any = true
        q = table[q - 1]!
      }
    }
    if (truncated && q >= MIN_NEEDLE) {
      delta[n - q]!++
      delta[n]!--
      any = true
    }
  }
  if (!any) return text
  let out = ""
  let depth = 0
  let masking = false
  let from = 0
  for (let i = 0; i < n; i++) {
    depth += delta[i]!
    if (depth > 0 && !masking) {
      out += text.slice(from, i) + MASK
      masking = true
    } else if (depth === 0 && masking) {
      masking = false
      from = i
    }
  }
  return masking ? out : out + text.slice(from)
}

// --- what looks like a credential -------------------------------------------------------------------

// C0/C1 controls, and the invisible ones that reorder, hide or break a line when printed (zero-width
// characters, bidi overrides, line and paragraph separators, BOM)
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g

const NAMES =
  /(?:access|refresh|id|subject|actor)_token|client_secret|client_assertion|code_verifier|device_code|password|passwd|secret|token|code|assertion|api[_-]?key/gi
const SCHEMES = /\b(?:bearer|basic|dpop|mac|negotiate)\b/gi
const RUN = /[\w.~+/=-]+/g

const isWordChar = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)

/** Prose after a loose `name:` ("token: expired", "code: 400") is kept; anything else is masked. */
const isProse = (value: string): boolean => /^[a-z]{1,16}$/i.test(value) || /^\d{1,3}$/.test(value)

const startsWithAt = (text: string, at: number, prefix: string): boolean =>
  text.slice(at, at + prefix.length).toLowerCase() === prefix

const QUOTES = ["\\\"", "%22", "\"", "'"] as const
const SEPARATORS = [["=", true], ["%3d", true], [":", false], ["%3a", false]] as const

const skipSpaces = (text: string, at: number): number => {
  let i = at
  while (i < text.length && i - at < 8 && (text[i] === " " || text[i] === "\t")) i++
  return i
}

const quoteAt = (text: string, at: number): string | undefined => QUOTES.find((q) => startsWithAt(text, at, q))

// an unquoted value ends at whitespace, a quote, or a delimiter of forms, headers, JSON and HTML; in a
// form encoded twice (`name%3Dvalue`), at an encoded "&" too
const endsValue = (text: string, i: number, encoded: boolean): boolean => {
  const c = text[i]!
  return c === " " || c === "\"" || c === "'" || c === "&" || c === "," || c === ";" || c === "<" ||
    c === ">" || c === ")" || c === "]" || c === "}" || c === "\\" || (encoded && startsWithAt(text, i, "%26"))
}

/**
 * Masks, after each match of `pattern`, the value `valueAt` finds there (`[start, end)`, or nothing).
 * Matching resumes after a value, so each character is looked at a bounded number of times.
 */
const maskAfter = (
  pattern: RegExp,
  valueAt: (text: string, at: number) => readonly [start: number, end: number] | undefined
) =>
(text: string): string => {
  let out = ""
  let from = 0
  pattern.lastIndex = 0
  let match: RegExpExecArray | null
  while ((match = pattern.exec(text)) !== null) {
    const at = match.index + match[0].length
    const value = at < from ? undefined : valueAt(text, at)
    if (value === undefined) continue
    const [start, end] = value
    pattern.lastIndex = Math.max(pattern.lastIndex, end)
    if (end === start || text.slice(start, end) === MASK) continue
    out += text.slice(from, start) + MASK
    from = end
  }
  return from === 0 ? text : out + text.slice(from)
}

/**
 * Masks the value after a credential's name: `name=value`, `name = value`, `name%3Dvalue`,
 * `"name": "value"`, `name: value`. A quoted value is masked up to its closing quote (a debugging proxy
 * quotes the decoded form, where a secret may hold `&`, `,` or `;`), an unquoted one up to the next
 * delimiter.
 */
const maskNamed = maskAfter(NAMES, (text, at) => {
  // the name's closing quote, if it was quoted
  let i = at + (quoteAt(text, at)?.length ?? 0)
  i = skipSpaces(text, i)
  const separator = SEPARATORS.find(([s]) => startsWithAt(text, i, s))
  if (separator === undefined) return undefined
  i = skipSpaces(text, i + separator[0].length)
  const quote = quoteAt(text, i)
  if (quote !== undefined) {
    const start = i + quote.length
    let end = start
    while (end < text.length && !startsWithAt(text, end, quote)) end += text[end] === "\\" && quote === "\"" ? 2 : 1
    return [start, Math.min(end, text.length)]
  }
  let end = i
  const encoded = separator[0].startsWith("%")
  while (end < text.length && !endsValue(text, end, encoded)) end++
  // `token: expired` is prose; `token=expired` is not
  return !separator[1] && isProse(text.slice(i, end)) ? undefined : [i, end]
})

/** Masks the credentials after an authentication scheme, in any case: `Bearer x`, `basic x`, `Bearer%20x`. */
const maskSchemes = maskAfter(SCHEMES, (text, at) => {
  let start = at
  while (start < text.length && start - at < 12) {
    if (text[start] === " " || text[start] === "\t" || text[start] === "+") start++
    else if (startsWithAt(text, start, "%20")) start += 3
    else break
  }
  if (start === at) return undefined
  let end = start
  while (end < text.length && (isWordChar(text.charCodeAt(end)) || "-._~+/=%".includes(text[end]!))) end++
  return isProse(text.slice(start, end)) ? undefined : [start, end]
})

/** A JWT (a JOSE header starts `{"`, so `ey`) or a long run of letters and digits, as a token is. */
const looksLikeToken = (run: string): boolean => {
  const firstDot = run.indexOf(".")
  if (run.startsWith("ey") && firstDot >= 10 && run.indexOf(".", firstDot + 1) > firstDot + 10) return true
  for (const segment of run.split(/[./]/)) {
    if (segment.length >= 20 && /\d/.test(segment) && /[a-z]/i.test(segment)) return true
  }
  return false
}

/** Masks bare credentials: JWTs and long opaque tokens, wherever they stand. */
const maskBare = (text: string): string =>
  text.replace(RUN, (run) => run.length >= 20 && looksLikeToken(run) ? MASK : run)

/** Control characters become spaces, and every run of white space one space. */
const normalize = (text: string): string => text.replace(CONTROL, " ").replace(/\s+/g, " ")

const cut = (text: string, maxLength: number): string => {
  if (text.length <= maxLength) return text
  // never half a surrogate pair
  const end = /[\ud800-\udbff]/.test(text[maxLength - 1]!) ? maxLength - 1 : maxLength
  return text.slice(0, end) + "…"
}

/**
 * A server's text as errors and logs may hold it: cut to `MAX_INPUT`, control characters replaced,
 * the sent values and anything shaped like a credential masked, white space collapsed, cut to
 * `maxLength` (with "…").
 *
 * @internal
 */
export const clean = (text: string, sent: Sent, maxLength: number): string => {
  const truncated = text.length > MAX_INPUT
  const input = truncated ? text.slice(0, MAX_INPUT).replace(/[\ud800-\udbff]$/, "") : text
  // normalized before scrubbing, so that nothing after it can join the pieces of a secret back together
  const scrubbed = scrubSent(normalize(input), sent, truncated)
  return cut(maskBare(maskSchemes(maskNamed(scrubbed))).trim(), maxLength)
}

/**
 * `clean` for an optional field: anything but a string, and a string that cleans to nothing, is
 * `undefined`.
 *
 * @internal
 */
export const cleanOptional = (text: unknown, sent: Sent, maxLength: number): string | undefined => {
  if (typeof text !== "string") return undefined
  const cleaned = clean(text, sent, maxLength)
  return cleaned === "" ? undefined : cleaned
}

/**
 * Whether a value can go into an HTTP header as a token or credential: visible ASCII, no spaces.
 *
 * @internal
 */
export const isHeaderSafe = (value: string): boolean => /^[\x21-\x7e]+$/.test(value)
