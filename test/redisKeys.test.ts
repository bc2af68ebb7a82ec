import { assert, describe, it } from "@effect/vitest"
import { makeKeys } from "../src/internal/redisKeys.js"

describe("the Redis store's key names", () => {
  it("are the prefix's token, lease, fence and changes names", () => {
    const { channelPrefix, keys } = makeKeys("tw:")
    assert.deepStrictEqual(keys("k"), {
      token: "tw:token:k",
      lease: "tw:lease:k",
      fence: "tw:fence:k",
      channel: "tw:changes:k"
    })
    assert.strictEqual(channelPrefix, "tw:changes:")
  })

  it("remember the most recently used keys only, for the reconnect notices", () => {
    const { keys, used } = makeKeys("tw:", 3)
    for (const key of ["a", "b", "c"]) keys(key)
    // `a` used again: `b` is now the least recently used, and goes first
    keys("a")
    keys("d")
    assert.deepStrictEqual([...used], ["c", "a", "d"])
    for (let i = 0; i < 1000; i++) keys(`tenant-${i}`)
    assert.strictEqual(used.size, 3)
  })
})
