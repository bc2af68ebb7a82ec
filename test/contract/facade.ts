/**
 * The Promise facade as effects, for the contract suites: `get` fails with the source's error itself
 * (the facade rejects with it, not a wrapper), `invalidate` as the facade does it.
 */
import { Effect } from "effect"
import type { AccessToken, TokenClient, TokenError } from "tokenwarden"

/** The facade's `get` and `invalidate` as effects. */
export const facadeFace = (client: TokenClient.TokenClient) => ({
  get: Effect.tryPromise({ try: () => client.get(), catch: (error) => error as TokenError.TokenError }),
  invalidate: (token: AccessToken.AccessToken) => Effect.promise(() => client.invalidate(token))
})
