import { MAX_INPUT } from "./scrub.js"

const isTokenChar = (c: string) => c !== "" && !" \t,=\"".includes(c)

/**
 * The auth-params of a `WWW-Authenticate` header (RFC 9110 section 11.6.1), first occurrence of each
 * name, names lower-cased: `Bearer realm="x", error="invalid_token", error_description="expired"`. One
 * pass over at most `MAX_INPUT` characters. The values are the server's: clean them before use.
 *
 * @internal
 */
export const challengeParams = (header: string): Map<string, string> => {
  const text = header.slice(0, MAX_INPUT)
  const params = new Map<string, string>()
  let i = 0
  const skipSpaces = () => {
    while (text[i] === " " || text[i] === "\t") i++
  }
  while (i < text.length) {
    const start = i
    while (i < text.length && isTokenChar(text[i]!)) i++
    if (i === start) {
      i++
      continue
    }
    const name = text.slice(start, i).toLowerCase()
    skipSpaces()
    if (text[i] !== "=") continue
    i++
    skipSpaces()
    let value = ""
    if (text[i] === "\"") {
      for (i++; i < text.length && text[i] !== "\""; i++) {
        if (text[i] === "\\") i++
        value += text[i] ?? ""
      }
      i++
    } else {
      const from = i
      while (i < text.length && text[i] !== "," && text[i] !== " ") i++
      value = text.slice(from, i)
    }
    if (!params.has(name)) params.set(name, value)
  }
  return params
}
