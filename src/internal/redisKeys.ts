/**
 * The Redis key names of a store's keys, and the keys a process used most recently (for the notices
 * it sends itself after a reconnect).
 *
 * @internal
 */
/**
 * How many keys a store remembers for its reconnect notices (the most recently used): a process of
 * weeks whose pool sees tenants come and go must not keep every key it ever used. A key forgotten
 * misses only that notice: its next refresh reads the stored entry first and adopts a newer one.
 *
 * @internal
 */
export const REMEMBERED_KEYS = 100_000

/**
 * The Redis keys of a store's key, remembering the keys this process used most recently.
 *
 * @internal
 */
export const makeKeys = (prefix: string, remembered = REMEMBERED_KEYS) => {
  // the keys this process used (a name each, no subscription), least recently used first: told to
  // re-read after a reconnect, when writes may have gone unheard
  const used = new Set<string>()
  const keys = (key: string) => {
    // moved to the end: a Set iterates in insertion order
    used.delete(key)
    used.add(key)
    if (used.size > remembered) used.delete(used.values().next().value!)
    return {
      token: `${prefix}token:${key}`,
      lease: `${prefix}lease:${key}`,
      fence: `${prefix}fence:${key}`,
      channel: `${prefix}changes:${key}`
    }
  }
  return { used, keys, channelPrefix: `${prefix}changes:` }
}
