/**
 * The cleaning rules of `internal/scrub`, one by one: what every server string goes through before an
 * error, a log line or a span holds it.
 */
import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc, Redacted } from "effect"
import * as Util from "node:util"
import { challengeParams } from "../src/internal/challenge.js"
import { clean, MAX_INPUT, Sent } from "../src/internal/scrub.js"
import { ACCESS, CLIENT_SECRET, OPAQUE_ACCESS, PASSWORD, REFRESH } from "./secrets.js"

const none = Sent.empty
const sentOf = (...values: ReadonlyArray<string>) => Sent.of(values.map((v) => Redacted.make(v)))
const form = (s: string) => new URLSearchParams({ s }).toString().slice(2)
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64")
const long = (text: string) => clean(text, none, 10_000)

// lower-cased code unit by code unit, as the scrubber compares
const lower = (s: string) => [...s].map((c) => c.toLowerCase().length === c.length ? c.toLowerCase() : c).join("")

describe("internal/scrub", () => {
  describe("control characters, white space and length", () => {
    it("control characters, bidi overrides, zero-width characters and a BOM become one space", () => {
      assert.strictEqual(long("a\u0000b\r\nc\u001b[31md\u009be\u202ef\u200bg\ufeffh\u2028i"), "a b c [31md e f g h i")
    })

    it("is cut to the length asked, with an ellipsis, never inside a surrogate pair", () => {
      assert.strictEqual(clean("x".repeat(300), none, 256), "x".repeat(256) + "…")
      assert.strictEqual(clean("x".repeat(255) + "😀😀", none, 256), "x".repeat(255) + "…")
    })

    it("reads at most MAX_INPUT characters of its input", () => {
      const cleaned = clean("y".repeat(MAX_INPUT) + "z".repeat(10), none, 10 * MAX_INPUT)
      assert.strictEqual(cleaned, "y".repeat(MAX_INPUT))
    })
  })

  describe("the values a request sent", () => {
    const secret = "s3cr&t with \"quotes\" ü"
    const sent = sentOf(secret)
    const forms: ReadonlyArray<readonly [string, string]> = [
      ["as is", secret],
      ["upper case", secret.toUpperCase()],
      ["URL-encoded", encodeURIComponent(secret)],
      ["form-encoded", form(secret)],
      ["encoded twice", encodeURIComponent(form(secret))],
      ["JSON-escaped", JSON.stringify(secret).slice(1, -1)],
      ["HTML-escaped", secret.replaceAll("&", "&amp;").replaceAll("\"", "&quot;")],
      ["with its spaces doubled", secret.replaceAll(" ", "  \t")]
    ]
    for (const [name, text] of forms) {
      it(`are scrubbed ${name}`, () => {
        assert.strictEqual(clean(`before ${text} after`, sent, 500), "before *** after")
      })
    }

    it("are scrubbed in base64, wherever the value sits in the encoded input", () => {
      for (const prefix of ["", "a", "ab", "client:"]) {
        const cleaned = long(`x ${b64(`${prefix}${CLIENT_SECRET}:rest`)} y`)
        assert.notInclude(cleaned, b64(`${prefix}${CLIENT_SECRET}`).slice(4, -4), prefix)
        const url = long(`x ${Buffer.from(`${prefix}${CLIENT_SECRET}`).toString("base64url")} y`)
        assert.notInclude(url, Buffer.from(`${prefix}${CLIENT_SECRET}`).toString("base64url").slice(4, -4), prefix)
      }
      assert.include(clean(`x ${b64(`ab${CLIENT_SECRET}`)} y`, sentOf(CLIENT_SECRET), 500), "***")
    })

    it("a Basic header's value, its credentials, what they decode to and the secret in them are all sent values", () => {
      const header = `Basic ${b64(`client:${form(PASSWORD)}`)}`
      const sent = Sent.fromRequest({ headers: { authorization: header, accept: "application/json" } })
      for (const text of [header, b64(`client:${form(PASSWORD)}`), `client:${form(PASSWORD)}`, PASSWORD]) {
        assert.strictEqual(clean(`[${text}]`, sent, 500), "[***]", text)
      }
      // accept is no credential: its value stays
      assert.strictEqual(clean("application/json", sent, 500), "application/json")
    })

    it("form parameters are sent values when their name is a secret's, and only then", () => {
      const sent = Sent.fromRequest({
        params: [["client_secret", CLIENT_SECRET], ["refresh_token", REFRESH], ["scope", "read-write-admin"]],
        also: [Redacted.make(OPAQUE_ACCESS), undefined]
      })
      assert.strictEqual(sent.size, 3)
      assert.strictEqual(
        clean(`${CLIENT_SECRET} ${REFRESH} ${OPAQUE_ACCESS} read-write-admin`, sent, 500),
        "*** *** *** read-write-admin"
      )
    })

    it("a value cut in two by the input cap is masked from where it starts", () => {
      const text = "y ".repeat(MAX_INPUT / 2 - 5) + CLIENT_SECRET
      const cleaned = clean(text, sentOf(CLIENT_SECRET), 2 * MAX_INPUT)
      assert.isTrue(cleaned.endsWith(" ***"), cleaned.slice(-30))
      assert.notInclude(cleaned, CLIENT_SECRET.slice(0, 8))
    })

    it("values shorter than 6 characters are not scrubbed: they cannot be told from prose", () => {
      assert.strictEqual(clean("pass the password", sentOf("pass"), 500), "pass the password")
    })

    it("a Sent prints as <redacted>, every way", () => {
      const sent = sentOf(CLIENT_SECRET)
      for (const text of [String(sent), JSON.stringify({ sent }), Util.inspect(sent, { depth: 5 }), `${sent}`]) {
        assert.notInclude(text, CLIENT_SECRET)
        assert.include(text, "<redacted>")
      }
    })

    it.prop(
      "no sent value survives, whatever surrounds it and however it is cased",
      [fc.string(), fc.string({ minLength: 6, maxLength: 40 }).filter((s) => !s.includes("*")), fc.string()],
      ([before, secret, after]) => {
        const sent = sentOf(secret)
        for (const text of [secret, secret.toUpperCase(), form(secret)]) {
          const cleaned = lower(clean(`${before}${text}${after}`, sent, 100_000))
          const needle = lower(secret.replace(/[\s\u0000-\u001f\u007f-\u009f]+/g, " ").trim())
          if (needle.length >= 6) assert.notInclude(cleaned, needle)
        }
      }
    )
  })

  describe("what looks like a credential", () => {
    const masked: ReadonlyArray<readonly [string, string]> = [
      ["password=hunter2x&grant_type=password", "password=***&grant_type=password"],
      ["client_secret = abc123", "client_secret = ***"],
      ["Client_Secret: abc123", "Client_Secret: ***"],
      ["refresh_token%3Dabc123%26scope%3Dx", "refresh_token%3D***%26scope%3Dx"],
      ["\"access_token\": \"a \\\"b\\\" c\"", "\"access_token\": \"***\""],
      ["{\\\"id_token\\\":\\\"abc\\\"}", "{\\\"id_token\\\":\\\"***\\\"}"],
      ["'api_key': 'k-1'", "'api_key': '***'"],
      ["bearer abc.def-123", "bearer ***"],
      ["BASIC Zm9vOmJhcg==", "BASIC ***"],
      ["DPoP eyJ0eXAi", "DPoP ***"],
      ["Authorization: Bearer%20abc123", "Authorization: Bearer%20***"],
      [`bare ${ACCESS} here`, "bare *** here"],
      ["opaque rt_8xLOxBtZp8WqK2nR5vY7 here", "opaque *** here"],
      ["code=400", "code=***"]
    ]
    for (const [input, expected] of masked) {
      it(`masks ${JSON.stringify(input)}`, () => assert.strictEqual(long(input), expected))
    }

    const kept: ReadonlyArray<string> = [
      "token: expired",
      "the bearer token expired",
      "code: 400",
      "REPRESENTATION_MISSING_REQUIRED_FIELD",
      "see https://docs.example.com/errors/400 for more",
      "invalid_grant: the refresh token was revoked",
      "AADSTS700016: application not found"
    ]
    for (const input of kept) {
      it(`keeps the prose ${JSON.stringify(input)}`, () => assert.strictEqual(long(input), input))
    }
  })

  describe("WWW-Authenticate", () => {
    it("reads quoted and token auth-params, first of each name, in one pass", () => {
      const params = challengeParams(
        "Bearer realm=\"api\", error=invalid_token, error_description=\"the \\\"token\\\" expired\", error=\"second\""
      )
      assert.strictEqual(params.get("realm"), "api")
      assert.strictEqual(params.get("error"), "invalid_token")
      assert.strictEqual(params.get("error_description"), "the \"token\" expired")
    })

    it("an unclosed quote runs to the end; nothing after MAX_INPUT is read", () => {
      assert.strictEqual(challengeParams("Bearer error=\"open").get("error"), "open")
      assert.isUndefined(challengeParams("x".repeat(MAX_INPUT) + " error=late").get("error"))
    })
  })
})
