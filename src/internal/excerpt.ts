const MAX_EXCERPT = 200
const MAX_DESCRIPTION = 256

// a proxy page can echo the request, so anything shaped like a credential is masked before quoting;
// a quoted value is masked up to its closing quote (a debugging proxy quotes the decoded form as JSON,
// where a secret may hold "&", "," or ";"), an unquoted one up to the next delimiter
const credentialPatterns: ReadonlyArray<RegExp> = [
  /((?:access|refresh|id)_token|client_secret|password|secret|token|code|code_verifier|assertion|api[_-]?key)(["']?\s*[:=]\s*["']?)((?<=")(?:\\.|[^"\\])*|(?<=')(?:\\.|[^'\\])*|[^\s"'&,;<>]+)/gi,
  /\b(Bearer|Basic|Token)(\s+)([A-Za-z0-9._~+/=-]+)/gi,
  /()()([A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)/g,
  /()()([A-Za-z0-9+/_=-]{24,})/g
]

/**
 * Masks anything in a text that looks like a credential.
 *
 * @internal
 */
export const mask = (text: string): string =>
  credentialPatterns.reduce((acc, pattern) => acc.replace(pattern, (_m, name, sep) => `${name}${sep}***`), text)

/**
 * A short, single-line, credential-masked excerpt of a body that is not JSON.
 *
 * @internal
 */
export const excerpt = (body: string): string => {
  // mask before cutting, so a secret cut in half by the cap is still recognised
  const flat = mask(stripControl(body).replace(/\s+/g, " ").trim())
  return flat.length > MAX_EXCERPT ? flat.slice(0, MAX_EXCERPT) + "…" : flat
}

/**
 * Removes control characters (a server's text must not forge log lines or terminal escapes).
 *
 * @internal
 */
export const stripControl = (text: string): string =>
  // C0/C1 controls, and the invisible ones that reorder or break a line when printed (bidi overrides,
  // line and paragraph separators)
  text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, " ")

// a server that echoes the request in its description would put our secret in the error: mask the
// echoed forms (`name=value`, `"name": "value"`, `Bearer value`), not prose such as "token: expired"
const echoedCredential =
  /((?:access|refresh|id)_token|client_secret|password|secret|token|code|code_verifier|assertion|api[_-]?key)(=|"\s*:\s*")([^\s"&,;<>]+)/gi
const echoedAuthorization = /\b(Bearer|Basic)(\s+)([A-Za-z0-9._~+/=-]{8,})/g

/**
 * A server's `error_description` as errors keep it: control characters removed, length capped.
 *
 * @internal
 */
export const cleanDescription = (text: string | undefined): string | undefined => {
  if (text === undefined) return undefined
  const clean = stripControl(text).trim()
    .replace(echoedCredential, (_m, name, sep) => `${name}${sep}***`)
    .replace(echoedAuthorization, (_m, name, sep) => `${name}${sep}***`)
  if (clean === "") return undefined
  return clean.length > MAX_DESCRIPTION ? clean.slice(0, MAX_DESCRIPTION) + "…" : clean
}
