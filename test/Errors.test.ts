import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Effect, FastCheck, Schema } from "effect"
import * as Tokenwarden from "tokenwarden"
import { TokenError } from "tokenwarden"
import * as Testing from "tokenwarden/testing"

type ErrorClass = Schema.Schema<any, any, never> & { readonly identifier: string; readonly _tag: string }

// every class the package exports whose instances are Errors, found by walking the public modules,
// so an error class added later without the common base fails here
const exportedErrors = (): Array<{ readonly module: string; readonly name: string; readonly cls: ErrorClass }> => {
  const found: Array<{ module: string; name: string; cls: ErrorClass }> = []
  for (const [module, namespace] of [...Object.entries(Tokenwarden), ...Object.entries(Testing)]) {
    for (const [name, value] of Object.entries(namespace as Record<string, unknown>)) {
      if (typeof value === "function" && value.prototype instanceof Error) {
        found.push({ module, name, cls: value as unknown as ErrorClass })
      }
    }
  }
  return found
}

describe("errors: one base for every module", () => {
  const errors = exportedErrors()

  it("the public modules export the errors a user meets", () => {
    const names = new Set(errors.map((e) => `${e.module}.${e.name}`))
    for (
      const expected of [
        "TokenError.InvalidGrant",
        "TokenError.AccessDenied",
        "TokenError.DeviceCodeExpired",
        "TokenError.ReauthorizationRequired",
        "AuthorizedClient.Unauthorized",
        "AuthorizedClient.ForeignOrigin",
        "Discovery.IssuerMismatch",
        "Discovery.MetadataNotFound",
        "Baack.Forbidden",
        "Baack.NotFound",
        "Baack.RepresentationMissingRequiredField",
        "TokenStore.StoreError"
      ]
    ) {
      assert.isTrue(names.has(expected), `${expected} is exported`)
    }
  })

  for (const { cls, module, name } of errors) {
    it(`${module}.${name}: marked, transient a boolean, identified as tokenwarden/<Module>/<Name>`, () => {
      const samples = FastCheck.sample(Arbitrary.make(cls), { numRuns: 5, seed: 42 })
      assert.isAbove(samples.length, 0)
      for (const error of samples) {
        assert.isTrue(TokenError.isTokenwardenError(error), "isTokenwardenError")
        assert.strictEqual(typeof error.transient, "boolean")
        assert.strictEqual(typeof error.message, "string")
        assert.notMatch(error.message, /^\{ /, "a message of its own, not Schema's list of fields")
        assert.strictEqual(error._tag, name)
        assert.isTrue(error instanceof (cls as any))
      }
      // the module an error is defined in, whichever public module re-exports it
      const match = /^tokenwarden\/([A-Za-z]+)\/([A-Za-z]+)$/.exec(cls.identifier)
      assert.isNotNull(match, cls.identifier)
      assert.strictEqual(match![2], name)
      assert.isTrue(match![1]! in Tokenwarden || match![1]! in Testing, `${match![1]} is a public module`)
    })
  }

  it("isTokenError is the token endpoint's union only; isTokenwardenError covers every module", () => {
    const fields = { method: "GET", url: "https://api.example.com/x", status: 403 }
    const forbidden = new Tokenwarden.Baack.Forbidden(fields)
    const grant = new TokenError.InvalidGrant({ ...fields, status: 400, error: "invalid_grant" })
    const store = new Tokenwarden.TokenStore.StoreError({ store: "file", reason: "Io", detail: "EIO" })
    assert.isTrue(TokenError.isTokenwardenError(forbidden))
    assert.isFalse(TokenError.isTokenError(forbidden))
    assert.isTrue(TokenError.isTokenError(grant))
    assert.isTrue(TokenError.isTokenwardenError(store))
    assert.isTrue(store.transient, "an I/O failure of a store may pass")
    assert.isFalse(new Tokenwarden.TokenStore.StoreError({ ...store, reason: "Corrupted" }).transient)
    for (const other of [new Error("x"), { _tag: "InvalidGrant" }, null, "InvalidGrant", undefined]) {
      assert.isFalse(TokenError.isTokenwardenError(other))
      assert.isFalse(TokenError.isTokenError(other))
    }
  })

  it.effect("catchTag reaches an error of any module by its _tag", () =>
    Effect.gen(function*() {
      const caught = yield* Effect.fail(
        new Tokenwarden.Discovery.IssuerMismatch({ url: "https://a/x", expected: "https://a", actual: "https://b" })
      ).pipe(Effect.catchTag("IssuerMismatch", (e) => Effect.succeed(e.actual)))
      assert.strictEqual(caught, "https://b")
    }))

  it("every error survives its Schema encoding, as it does across processes", () => {
    for (const { cls } of errors) {
      for (const error of FastCheck.sample(Arbitrary.make(cls), { numRuns: 3, seed: 7 })) {
        const decoded = Schema.decodeUnknownSync(cls)(Schema.encodeSync(cls)(error))
        assert.isTrue(decoded instanceof (cls as any))
        assert.strictEqual(decoded.message, error.message)
      }
    }
  })
})
